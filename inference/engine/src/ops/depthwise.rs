//! [`Depthwise`]: a 2-D f32 depthwise convolution (one filter per channel) of planar (CHW) or
//! channels-last (HWC) images, computed by [`crate::kernels::depthwise`] instead of tract's
//! `DepthWiseConv`, which costs about five of the IC's instructions per multiply-accumulate on
//! wasm (`benchmarks/profile.md`), with the activation that followed it fused.
//!
//! [`crate::passes::depthwise`] wires it before declutter (so the graph stays planar) and
//! [`crate::passes::float_conv`] after it (a QDQ model's, in the layout tract chose), in place of
//! tract's grouped `Conv`s with one group per channel and constant filters, the batch
//! normalisation after them folded in, where the kernel has a vector loop for the window.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::depthwise::{
    block_bias, block_weights, planar, Activation, Best, Blocked, DepthwiseKernels, Padded,
};
use crate::kernels::integer_conv::pack::{Geometry, Layout};

/// A depthwise convolution by constant filters (see the module's documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct Depthwise {
    /// Whether the input and output have a leading batch axis or are one image.
    pub batch: bool,
    /// The input's and the output's.
    pub layout: Layout,
    pub geometry: Geometry,
    pub filters: Arc<DepthwiseFilters>,
    pub activation: Activation,
    /// Whether a second input, one f32 computed per inference, scales each output's sum before
    /// the bias is added (a dynamic int8 convolution's dequantize: the sums are of integers, so
    /// exact; planar images only): [`Depthwise::scaled_at_run_time`].
    pub scaled: bool,
}

/// A depthwise convolution's weights and bias, as the passes fold into them and as the kernel
/// reads them.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthwiseFilters {
    /// Per channel, its window's `kh · kw` weights, row-major.
    pub weights: Vec<f32>,
    /// One per channel.
    pub bias: Vec<f32>,
    /// `weights` packed per block of four channels ([`block_weights`]) and `bias` padded to
    /// whole blocks ([`block_bias`]), as the kernel reads channels-last images.
    pub blocks: (Vec<f32>, Vec<f32>),
}

impl Eq for Depthwise {}

impl Op for Depthwise {
    fn name(&self) -> StaticName {
        "Depthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let scaled = if self.scaled { ", scaled at run time" } else { "" };
        Ok(vec![format!("{:?}, {:?}, {:?}{scaled}", self.layout, self.geometry, self.activation)])
    }

    op_as_typed_op!();
}

impl Depthwise {
    /// The operator for `[C, kh · kw]` weights and a bias per channel, packed for `layout`.
    pub fn new(
        batch: bool,
        layout: Layout,
        geometry: Geometry,
        weights: Vec<f32>,
        bias: Vec<f32>,
        activation: Activation,
    ) -> Depthwise {
        let taps = geometry.kernel[0] * geometry.kernel[1];
        let blocks = (block_weights(&weights, geometry.channels, taps), block_bias(&bias));
        let filters = Arc::new(DepthwiseFilters { weights, bias, blocks });
        Depthwise { batch, layout, geometry, filters, activation, scaled: false }
    }

    /// The operator taking the scale of its sums as a second input (see [`Depthwise::scaled`]).
    pub fn scaled_at_run_time(self) -> Depthwise {
        Depthwise { scaled: true, ..self }
    }

    fn output_shape<D: Clone + From<usize>>(&self, batch: D) -> TVec<D> {
        let [oh, ow] = self.geometry.output;
        let c = self.geometry.channels;
        let image: TVec<D> = match self.layout {
            Layout::Planar => tvec!(c.into(), oh.into(), ow.into()),
            Layout::Interleaved => tvec!(oh.into(), ow.into(), c.into()),
        };
        if self.batch {
            std::iter::once(batch).chain(image).collect()
        } else {
            image
        }
    }
}

impl EvalOp for Depthwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let batch = if self.batch { input.shape()[0] } else { 1 };
        let g = &self.geometry;
        let (image_in, image_out) = (g.channels * g.input[0] * g.input[1], g.channels * g.pixels());
        ensure!(image_in > 0 && image_out > 0, "Depthwise: an empty image");
        ensure!(input.len() == batch * image_in, "Depthwise: input of shape {:?}", input.shape());
        let scale = match self.scaled {
            true => {
                ensure!(self.layout == Layout::Planar, "Depthwise: a scale for a channels-last image");
                ensure!(inputs.len() == 2 && inputs[1].len() == 1, "Depthwise: one scale, as a second input");
                Some(inputs[1].cast_to_scalar::<f32>()?)
            }
            false => None,
        };
        // SAFETY: f32 is a plain type; `image` writes every output of every channel of each of
        // the `batch` images (the whole tensor) before the tensor is read.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&self.output_shape(batch))? };
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        let mut plain = output.try_as_plain_ram_mut()?;
        let out = plain.as_slice_mut::<f32>()?;
        let images = x.chunks_exact(image_in).zip(out.chunks_exact_mut(image_out));
        match self.layout {
            Layout::Planar => {
                let (weights, bias) = (&self.filters.weights, &self.filters.bias);
                let mut padded = Padded::new(g);
                for (x, out) in images {
                    planar::<Best>(&mut padded, x, weights, bias, scale, self.activation, out);
                }
            }
            Layout::Interleaved => {
                let (weights, bias) = &self.filters.blocks;
                let mut blocked = Blocked::new(g);
                for (x, out) in images {
                    blocked.fill::<Best>(x);
                    Best::blocks(&blocked, weights, bias, self.activation, out);
                }
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Depthwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let batch: TDim = if self.batch { inputs[0].shape[0].clone() } else { 1.into() };
        Ok(tvec!(f32::fact(self.output_shape(batch))))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.geometry;
        let macs = g.channels * g.kernel[0] * g.kernel[1] * g.pixels();
        let batch = if self.batch { inputs[0].shape[0].clone() } else { 1.into() };
        Ok(tvec!((Cost::FMA(f32::datum_type()), batch * macs)))
    }

    as_op!();
}
