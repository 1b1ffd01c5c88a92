//! [`IntegerDepthwise`]: a static int8 model's 2-D depthwise convolution (one filter per channel)
//! of planar (CHW) images, computed on the int8 values by
//! [`crate::kernels::depthwise::integer`] and dequantized as it writes each f32 output.
//!
//! [`crate::passes::integer_conv`] wires it after declutter in place of tract's grouped `Conv`
//! over a dequantized u8/i8 image whose filters are an int8 initializer dequantized (per tensor or
//! per channel, zero points 0), reading the bytes the dequantize read. Instead of the f32 sum of
//! the dequantized values it computes the exact integer sum, then `sum · (input scale · weight
//! scale) + bias`: onnxruntime's order for a quantized convolution.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::depthwise::integer::{Best, Byte, IntegerDepthwiseKernels, IntegerFilters};

/// An int8 depthwise convolution (see the module's documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct IntegerDepthwise {
    /// Whether the input and output have a leading batch axis or are one image.
    pub batch: bool,
    pub filters: Arc<IntegerFilters>,
}

impl Eq for IntegerDepthwise {}

impl Op for IntegerDepthwise {
    fn name(&self) -> StaticName {
        "IntegerDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}, zero point {}", self.filters.geometry, self.filters.zero_point)])
    }

    op_as_typed_op!();
}

impl IntegerDepthwise {
    fn output_shape<D: Clone + From<usize>>(&self, batch: D) -> TVec<D> {
        let g = &self.filters.geometry;
        let image: TVec<D> = tvec!(g.channels.into(), g.output[0].into(), g.output[1].into());
        if self.batch {
            std::iter::once(batch).chain(image).collect()
        } else {
            image
        }
    }

    fn images<T: Byte + Datum>(&self, input: &Tensor, out: &mut [f32]) -> TractResult<()> {
        let g = &self.filters.geometry;
        let (image_in, image_out) = (g.channels * g.input[0] * g.input[1], g.channels * g.pixels());
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<T>()?;
        for (x, out) in x.chunks_exact(image_in).zip(out.chunks_exact_mut(image_out)) {
            Best::image(&self.filters, x, out);
        }
        Ok(())
    }
}

impl EvalOp for IntegerDepthwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let batch = if self.batch { input.shape()[0] } else { 1 };
        let g = &self.filters.geometry;
        let (image_in, image_out) = (g.channels * g.input[0] * g.input[1], g.channels * g.pixels());
        ensure!(image_in > 0 && image_out > 0, "IntegerDepthwise: an empty image");
        ensure!(input.len() == batch * image_in, "IntegerDepthwise: input of shape {:?}", input.shape());
        // SAFETY: f32 is a plain type; `images` writes every output of each of the `batch`
        // images (the whole tensor) before the tensor is read, or the eval fails and drops it.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&self.output_shape(batch))? };
        {
            let mut plain = output.try_as_plain_ram_mut()?;
            let out = plain.as_slice_mut::<f32>()?;
            match input.datum_type() {
                DatumType::U8 => self.images::<u8>(input, out)?,
                DatumType::I8 => self.images::<i8>(input, out)?,
                dt => bail!("IntegerDepthwise reads u8 or i8, not {dt:?}"),
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for IntegerDepthwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let batch: TDim = if self.batch { inputs[0].shape[0].clone() } else { 1.into() };
        Ok(tvec!(f32::fact(self.output_shape(batch))))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.filters.geometry;
        let macs = g.channels * g.kernel[0] * g.kernel[1] * g.pixels();
        let batch = if self.batch { inputs[0].shape[0].clone() } else { 1.into() };
        Ok(tvec!((Cost::FMA(i32::datum_type()), batch * macs)))
    }

    as_op!();
}
