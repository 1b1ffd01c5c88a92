//! [`PlanarMaxPool`]: tract's 2-D max pool of a planar (CHW) f32 image, one output row at a
//! time over the window's rows and columns, instead of tract's per-output visit of the window.
//!
//! tract's generic path folds each output's window through an iterator and a tuple compare,
//! about 50 instructions per window element under the IC's cost table (97 M for opennsfw's one
//! pool, `benchmarks/profile.md`). This keeps tract's semantics exactly: each output starts at
//! `f32::MIN`, takes a value when it is greater (`<`, so NaN is skipped and the first of equal
//! values is kept), visits the window in (kernel row, kernel column) order and skips padding.
//! Each row segment's fold is [`crate::kernels::max_pool`]'s (four outputs a vector on wasm).
//! Wired by [`crate::passes::max_pool`].

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::integer_conv::pack::Geometry;
use crate::kernels::max_pool::{Best, MaxPoolKernels};

/// A max pool over planar images (see the module's documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanarMaxPool {
    /// Whether the input has a leading batch axis (NCHW) or is one image (CHW).
    pub batch: bool,
    pub geometry: Geometry,
}

impl Op for PlanarMaxPool {
    fn name(&self) -> StaticName {
        "PlanarMaxPool".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}", self.geometry)])
    }

    op_as_typed_op!();
}

impl PlanarMaxPool {
    /// The pool of one image `x` into `out` (`[C, oh, ow]`).
    pub fn image(&self, x: &[f32], out: &mut [f32]) {
        let g = &self.geometry;
        let ([h, w], [kh, kw], [oh, ow], sx) = (g.input, g.kernel, g.output, g.strides[1]);
        assert!(x.len() >= g.channels * h * w && out.len() >= g.channels * oh * ow);
        out[..g.channels * oh * ow].fill(f32::MIN);
        // Each kernel column's output columns, once: their divisions cost more than a row's fold.
        let columns: Vec<_> = (0..kw).map(|kx| g.columns_inside(kx)).filter(|(first, end, _)| first < end).collect();
        for c in 0..g.channels {
            for oy in 0..oh {
                let row_out = &mut out[(c * oh + oy) * ow..][..ow];
                for ky in 0..kh {
                    let Some(iy) = g.input_row(oy, ky) else { continue };
                    let row_in = &x[(c * h + iy) * w..][..w];
                    for &(first, end, start) in &columns {
                        Best::fold(&row_in[start..], sx, &mut row_out[first..end]);
                    }
                }
            }
        }
    }

    fn output_shape<D: Clone + From<usize>>(&self, batch: D) -> TVec<D> {
        let [oh, ow] = self.geometry.output;
        let image: TVec<D> = tvec!(self.geometry.channels.into(), oh.into(), ow.into());
        if self.batch {
            std::iter::once(batch).chain(image).collect()
        } else {
            image
        }
    }
}

impl EvalOp for PlanarMaxPool {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let batch = if self.batch { input.shape()[0] } else { 1 };
        let [h, w] = self.geometry.input;
        let [oh, ow] = self.geometry.output;
        let (image_in, image_out) = (self.geometry.channels * h * w, self.geometry.channels * oh * ow);
        ensure!(input.len() == batch * image_in, "PlanarMaxPool: input of shape {:?}", input.shape());
        // SAFETY: f32 is a plain type; `image` fills each image's whole output before folding
        // into it, so every element is written before the tensor is read.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&self.output_shape(batch))? };
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        let mut plain = output.try_as_plain_ram_mut()?;
        let out = plain.as_slice_mut::<f32>()?;
        for n in 0..batch {
            self.image(&x[n * image_in..][..image_in], &mut out[n * image_out..][..image_out]);
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for PlanarMaxPool {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let batch: TDim = if self.batch { inputs[0].shape[0].clone() } else { 1.into() };
        Ok(tvec!(f32::fact(self.output_shape(batch))))
    }

    as_op!();
}
