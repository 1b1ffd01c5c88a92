//! [`FloatConv`]: a 2-D f32 convolution computed by [`crate::kernels::float_conv`] instead of
//! tract's matrix product (`OptMatMul`), which costs about twice as many of the IC's
//! instructions per multiply-accumulate (`benchmarks/profile.md`).
//!
//! [`crate::passes::float_conv`] wires it, after declutter, in place of tract's one-group 2-D f32
//! convolutions with constant filters (a `Conv`, or the `EinSum` and bias `Add` tract declutters
//! a 1×1 convolution into), in the layouts tract chose, with a following ReLU or HardSwish fused.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::float_conv::im2col::{im2col, is_identity, transpose};
use crate::kernels::float_conv::{Activation, Best, FloatKernels, PackedFilters, LANES, ROWS};
use crate::kernels::integer_conv::pack::{Geometry, Layout};

/// A 2-D f32 convolution by constant filters (see the module's documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct FloatConv {
    /// Whether the input has a leading batch axis (NCHW/NHWC) or is one image.
    pub input_batch: bool,
    /// Whether the output has one (an output without it needs a batch of 1).
    pub output_batch: bool,
    pub input_layout: Layout,
    pub output_layout: Layout,
    pub geometry: Geometry,
    pub filters: Arc<PackedFilters>,
    /// Applied to every output (a ReLU or HardSwish that followed the convolution).
    pub activation: Activation,
    /// For a 1×1 convolution from and to interleaved images: the filters transposed, so the
    /// product runs pixel-major ([`PixelMajor`]).
    pub pixel_major: Option<Arc<PixelMajor>>,
}

/// A 1×1 convolution of an interleaved (HWC) image into an interleaved one is the product of
/// the image's `[pixels, C]` rows by the transposed filters `[C, M]`: the kernel then reads the
/// image as its packed left operand ([`PackedFilters::rows_of`]) and writes the output in place,
/// instead of transposing the image into an im2col matrix and the output back (which cost more
/// than the products on small convolutions, `benchmarks/profile.md`).
#[derive(Clone, Debug, PartialEq)]
pub struct PixelMajor {
    /// `[C, M]`, row-major.
    pub weights: Vec<f32>,
    /// One per output channel.
    pub bias: Vec<f32>,
}

impl PixelMajor {
    /// For a convolution of `geometry` from and to interleaved images, with ONNX's `[M, C]`
    /// filters (`m` of them, `m` a multiple of four: the output's rows are written as vectors)
    /// and bias, when it is 1×1 with unit strides and no padding.
    pub fn of(geometry: &Geometry, layouts: [Layout; 2], filters: &[f32], bias: &[f32]) -> Option<PixelMajor> {
        let (m, c) = (bias.len(), geometry.channels);
        let fits = layouts == [Layout::Interleaved, Layout::Interleaved]
            && geometry.kernel == [1, 1]
            && geometry.strides == [1, 1]
            && geometry.pad_before == [0, 0]
            && geometry.output == geometry.input
            && m.is_multiple_of(LANES)
            && filters.len() == m * c
            // The image's pixels are the packed rows, eight a block: fewer would leave most of
            // the block's products on padding (a one-pixel image takes the column tile instead).
            && geometry.pixels() >= ROWS;
        fits.then(|| PixelMajor {
            weights: (0..c * m).map(|i| filters[(i % m) * c + i / m]).collect(),
            bias: bias.to_vec(),
        })
    }
}

impl Eq for FloatConv {}

impl Op for FloatConv {
    fn name(&self) -> StaticName {
        "FloatConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{:?} → {:?}, {:?}, {} output channels, {:?}",
            self.input_layout, self.output_layout, self.geometry, self.filters.channels, self.activation
        )])
    }

    op_as_typed_op!();
}

impl FloatConv {
    /// One image: the kernel straight into a planar `out`, or into a planar scratch transposed
    /// into an interleaved one.
    fn image(&self, x: &[f32], out: &mut [f32]) {
        let (geometry, m) = (&self.geometry, self.filters.channels);
        if let Some(pixel_major) = &self.pixel_major {
            let (pixels, c) = (geometry.pixels(), geometry.channels);
            let rows = PackedFilters::rows_of(x, pixels, c, pixel_major.bias.clone());
            Best::multiply(&rows, &pixel_major.weights, m, m, self.activation, out, m);
            return;
        }
        let pixels = geometry.pixels();
        // One pixel is the same memory in either layout.
        let direct_out = self.output_layout == Layout::Planar || pixels == 1;
        let mut scratch = if direct_out { Vec::new() } else { vec![0f32; m * pixels] };
        let target: &mut [f32] = if direct_out { out } else { &mut scratch };
        if is_identity(geometry, self.input_layout) {
            Best::multiply(&self.filters, x, pixels, pixels, self.activation, target, pixels);
        } else {
            let matrix = im2col(x, geometry, self.input_layout);
            Best::multiply(&self.filters, &matrix, pixels, pixels, self.activation, target, pixels);
        }
        if !direct_out {
            transpose(&scratch, m, pixels, pixels, out);
        }
    }

    /// The output's shape: `[N,] M, OH, OW` or `[N,] OH, OW, M`.
    fn output_shape<D: Clone + From<usize>>(&self, batch: D) -> TVec<D> {
        let [oh, ow] = self.geometry.output;
        let m = self.filters.channels;
        let image: TVec<D> = match self.output_layout {
            Layout::Planar => tvec!(m.into(), oh.into(), ow.into()),
            Layout::Interleaved => tvec!(oh.into(), ow.into(), m.into()),
        };
        if self.output_batch {
            std::iter::once(batch).chain(image).collect()
        } else {
            image
        }
    }
}

impl EvalOp for FloatConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let batch = if self.input_batch { input.shape()[0] } else { 1 };
        ensure!(batch == 1 || self.output_batch, "FloatConv: a batch of {batch} into an output without a batch axis");
        let [h, w] = self.geometry.input;
        let image_in = self.geometry.channels * h * w;
        let image_out = self.filters.channels * self.geometry.pixels();
        ensure!(input.len() == batch * image_in, "FloatConv: input of shape {:?}", input.shape());
        let x = input.try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        // SAFETY: f32 is a plain type; `image` writes every output of each of the `batch` images
        // (the whole tensor: the kernel every channel row of every column, or the copy every
        // element) before the tensor is read.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&self.output_shape(batch))? };
        let mut plain = output.try_as_plain_ram_mut()?;
        let out = plain.as_slice_mut::<f32>()?;
        for n in 0..batch {
            self.image(&x[n * image_in..][..image_in], &mut out[n * image_out..][..image_out]);
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for FloatConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let batch: TDim = if self.input_batch { inputs[0].shape[0].clone() } else { 1.into() };
        Ok(tvec!(f32::fact(self.output_shape(batch))))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let macs = self.filters.channels * self.geometry.depth() * self.geometry.pixels();
        let batch = if self.input_batch { inputs[0].shape[0].clone() } else { 1.into() };
        Ok(tvec!((Cost::FMA(f32::datum_type()), batch * macs)))
    }

    as_op!();
}
