//! [`PlanarMaxPool`]: tract's 2-D max pool of a planar (CHW) f32 image, one output row at a
//! time over the window's rows and columns, instead of tract's per-output visit of the window.
//!
//! tract's generic path folds each output's window through an iterator and a tuple compare,
//! about 50 instructions per window element under the IC's cost table (97 M for opennsfw's one
//! pool, `benchmarks/profile.md`). This keeps tract's semantics exactly: each output starts at
//! `f32::MIN`, takes a value when it is greater (`<`, so NaN is skipped and the first of equal
//! values is kept), visits the window in (kernel row, kernel column) order and skips padding.
//! The outputs whose windows lie inside the image are [`crate::kernels::max_pool`]'s (four
//! outputs a vector on wasm, each window folded whole before its outputs are stored).
//! Wired by [`crate::passes::max_pool`].
//!
//! The same operator pools u8 or i8 images, each output its window's greatest byte
//! ([`crate::kernels::byte_pool`]), where [`crate::passes::byte_max_pool`] moves a QDQ model's
//! pool from the f32 values between a dequantize and a quantize onto the bytes they come from.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::byte_pool::{self, BytePoolKernels};
use crate::kernels::integer_conv::pack::Geometry;
use crate::kernels::max_pool::{Best, MaxPoolKernels, Windows};

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
    /// The pool of one image `x` into `out` (`[C, oh, ow]`): per output row, the outputs whose
    /// windows lie inside the image's columns by the kernel ([`Best::windows`]), the few at the
    /// edges (their windows cut by the padding) one at a time here.
    pub fn image(&self, x: &[f32], out: &mut [f32]) {
        let g = &self.geometry;
        let ([h, w], [kh, kw], [oh, ow], sx, dx) = (g.input, g.kernel, g.output, g.strides[1], g.dilations[1]);
        assert!(x.len() >= g.channels * h * w && out.len() >= g.channels * oh * ow);
        // The outputs every kernel column reads inside the image: those the first column does
        // from its first, to those the last column does up to its end (divisions, done once).
        let (inner, _, start) = g.columns_inside(0);
        let inner_end = if kw == 0 { inner } else { g.columns_inside(kw - 1).1.max(inner) };
        let windows = Windows { start, step: sx, taps: kw, dilation: dx };
        let mut rows: Vec<&[f32]> = Vec::with_capacity(kh);
        for c in 0..g.channels {
            let plane = &x[c * h * w..][..h * w];
            for oy in 0..oh {
                rows.clear();
                rows.extend((0..kh).filter_map(|ky| g.input_row(oy, ky)).map(|iy| &plane[iy * w..][..w]));
                let row_out = &mut out[(c * oh + oy) * ow..][..ow];
                Best::windows(&rows, windows, &mut row_out[inner..inner_end]);
                for ox in (0..inner).chain(inner_end..ow) {
                    row_out[ox] = edge(g, &rows, ox);
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
        let dt = input.datum_type();
        ensure!(matches!(dt, DatumType::F32 | DatumType::U8 | DatumType::I8), "PlanarMaxPool: a {dt:?} input");
        // SAFETY: f32, u8 and i8 are plain types; `image` fills each image's whole output before
        // folding into it, and the byte kernel writes each plane's every output, so every
        // element is written before the tensor is read.
        let mut output = unsafe { Tensor::uninitialized_dt(dt, &self.output_shape(batch))? };
        let view = input.try_as_plain_ram()?;
        let mut plain = output.try_as_plain_ram_mut()?;
        if dt == DatumType::F32 {
            let (x, out) = (view.as_slice::<f32>()?, plain.as_slice_mut::<f32>()?);
            for n in 0..batch {
                self.image(&x[n * image_in..][..image_in], &mut out[n * image_out..][..image_out]);
            }
        } else {
            // Every plane of every image, one after the other.
            let (x, out) = (view.as_bytes(), plain.as_bytes_mut());
            let (plane_in, plane_out) = (h * w, oh * ow);
            for p in 0..batch * self.geometry.channels {
                let (x, out) = (&x[p * plane_in..][..plane_in], &mut out[p * plane_out..][..plane_out]);
                byte_pool::Best::plane(x, &self.geometry, dt == DatumType::U8, out);
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for PlanarMaxPool {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let batch: TDim = if self.batch { inputs[0].shape[0].clone() } else { 1.into() };
        Ok(tvec!(inputs[0].datum_type.fact(self.output_shape(batch))))
    }

    as_op!();
}

/// Output `ox`'s window over `rows`, skipping the columns outside the image: tract's fold in
/// (row, column) order.
fn edge(g: &Geometry, rows: &[&[f32]], ox: usize) -> f32 {
    let mut max = f32::MIN;
    for row in rows {
        for kx in 0..g.kernel[1] {
            let ix = (ox * g.strides[1] + kx * g.dilations[1]) as isize - g.pad_before[1] as isize;
            if let Some(&v) = usize::try_from(ix).ok().and_then(|ix| row.get(ix)) {
                if max < v {
                    max = v;
                }
            }
        }
    }
    max
}
