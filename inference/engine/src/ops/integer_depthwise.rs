//! [`IntegerDepthwise`]: an int8 model's 2-D depthwise convolution (one filter per channel)
//! of planar (CHW) images, computed on the int8 values by
//! [`crate::kernels::depthwise::integer`] and dequantized as it writes each f32 output.
//!
//! [`crate::passes::integer_conv`] wires it after declutter in place of tract's grouped `Conv`
//! over a dequantized u8/i8 image whose filters are an int8 initializer dequantized (per tensor or
//! per channel, zero points 0), reading the bytes the dequantize read. Instead of the f32 sum of
//! the dequantized values it computes the exact integer sum, then `sum · (input scale · weight
//! scale) + bias`: onnxruntime's order for a quantized convolution.
//!
//! A dynamic int8 model's depthwise `ConvInteger` reads the u8 image a `DynamicQuantizeLinear`
//! made, its zero point and scale computed per inference: [`IntegerDepthwise::at_run_time`] takes
//! them as inputs, and [`crate::passes::integer_conv`] wires it with the scale multiply, the bias
//! add and the activation that followed it (the same f32 operations on the same exact sums as
//! the f32 `Depthwise` scaled at run time that it replaces, so the same bits).
//!
//! A static model's HardSwish after it, a quantize read through a table of bytes, is fused by
//! [`crate::passes::conv_lookup`]: the output is then the table's bytes, written as each unit of
//! outputs is finished (`lookup`).

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::depthwise::integer::{Best, Byte, IntegerDepthwiseKernels, IntegerFilters};
use crate::kernels::qdq::ByteLookup;

/// An int8 depthwise convolution (see the module's documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct IntegerDepthwise {
    /// Whether the input and output have a leading batch axis or are one image.
    pub batch: bool,
    pub filters: Arc<IntegerFilters>,
    /// Whether the zero point (u8/i8 or i32) and the scale of the sums (f32) are inputs 1 and
    /// 2, computed per inference (a dynamic int8 model's), instead of the filters' own.
    pub at_run_time: bool,
    /// A quantize read through a table of bytes that followed the output (a static int8 model's
    /// HardSwish, [`crate::passes::conv_lookup`]): the output is then its bytes (u8, or i8 as the
    /// quantize's type), computed as each unit of outputs is finished.
    pub lookup: Option<Arc<ByteLookup>>,
}

impl Eq for IntegerDepthwise {}

impl Op for IntegerDepthwise {
    fn name(&self) -> StaticName {
        "IntegerDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let f = &self.filters;
        let table = if self.lookup.is_some() { ", then a table of bytes" } else { "" };
        Ok(vec![match self.at_run_time {
            true => format!("{:?}, {:?}, zero point and scale at run time{table}", f.geometry, f.activation),
            false => format!("{:?}, {:?}, zero point {}{table}", f.geometry, f.activation, f.zero_point),
        }])
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

    fn images<T: Byte + Datum>(&self, filters: &IntegerFilters, input: &Tensor, out: &mut [f32]) -> TractResult<()> {
        let g = &filters.geometry;
        let (image_in, image_out) = (g.channels * g.input[0] * g.input[1], g.channels * g.pixels());
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<T>()?;
        for (x, out) in x.chunks_exact(image_in).zip(out.chunks_exact_mut(image_out)) {
            Best::image(filters, x, out);
        }
        Ok(())
    }

    /// [`IntegerDepthwise::images`] through `lookup`, into the bytes of u8 or i8 outputs.
    fn images_looked_up<T: Byte + Datum>(
        &self,
        filters: &IntegerFilters,
        input: &Tensor,
        lookup: &ByteLookup,
        out: &mut [u8],
    ) -> TractResult<()> {
        let g = &filters.geometry;
        let (image_in, image_out) = (g.channels * g.input[0] * g.input[1], g.channels * g.pixels());
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<T>()?;
        for (x, out) in x.chunks_exact(image_in).zip(out.chunks_exact_mut(image_out)) {
            Best::image_looked_up(filters, x, lookup, out);
        }
        Ok(())
    }

    /// The output's element type: f32, or the lookup's bytes.
    fn output_type(&self) -> DatumType {
        self.lookup.as_ref().map_or(DatumType::F32, |l| l.quantize.dt)
    }
}

impl EvalOp for IntegerDepthwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let batch = if self.batch { input.shape()[0] } else { 1 };
        let filters = match self.at_run_time {
            true => {
                ensure!(
                    inputs.len() == 3 && inputs[1].len() == 1 && inputs[2].len() == 1,
                    "IntegerDepthwise: zero point and scale inputs"
                );
                Arc::new(
                    self.filters.at_run_time(inputs[1].cast_to_scalar::<i32>()?, inputs[2].cast_to_scalar::<f32>()?),
                )
            }
            false => self.filters.clone(),
        };
        let g = &self.filters.geometry;
        let (image_in, image_out) = (g.channels * g.input[0] * g.input[1], g.channels * g.pixels());
        ensure!(image_in > 0 && image_out > 0, "IntegerDepthwise: an empty image");
        ensure!(input.len() == batch * image_in, "IntegerDepthwise: input of shape {:?}", input.shape());
        // SAFETY: f32, u8 and i8 are plain types; `images` (or `images_looked_up`) writes every
        // output of each of the `batch` images (the whole tensor) before the tensor is read, or
        // the eval fails and drops it.
        let mut output = unsafe { Tensor::uninitialized_dt(self.output_type(), &self.output_shape(batch))? };
        {
            let mut plain = output.try_as_plain_ram_mut()?;
            match (&self.lookup, input.datum_type()) {
                (None, DatumType::U8) => self.images::<u8>(&filters, input, plain.as_slice_mut::<f32>()?)?,
                (None, DatumType::I8) => self.images::<i8>(&filters, input, plain.as_slice_mut::<f32>()?)?,
                (Some(l), DatumType::U8) => self.images_looked_up::<u8>(&filters, input, l, plain.as_bytes_mut())?,
                (Some(l), DatumType::I8) => self.images_looked_up::<i8>(&filters, input, l, plain.as_bytes_mut())?,
                (_, dt) => bail!("IntegerDepthwise reads u8 or i8, not {dt:?}"),
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for IntegerDepthwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let batch: TDim = if self.batch { inputs[0].shape[0].clone() } else { 1.into() };
        Ok(tvec!(self.output_type().fact(self.output_shape(batch))))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.filters.geometry;
        let macs = g.channels * g.kernel[0] * g.kernel[1] * g.pixels();
        let batch = if self.batch { inputs[0].shape[0].clone() } else { 1.into() };
        Ok(tvec!((Cost::FMA(i32::datum_type()), batch * macs)))
    }

    as_op!();
}
