//! The input and output of a dynamic int8 model's grouped or depthwise convolution that
//! [`crate::passes::integer_conv`] moves to tract's f32 convolution, where sums of at most 256
//! products of small integers are exact:
//! - [`ZeroPointShift`]: `x − zero_point` as f32, the zero point an input computed per
//!   inference, optionally written channels-last (HWC) for tract's wasm depthwise kernel, which
//!   is much cheaper there than on channel planes (see `benchmarks/profile.md`);
//! - [`ToPlanar`]: the convolution's HWC output back to the CHW the rest of the graph reads.
//!
//! Their loops are [`crate::kernels::layout`] (and the dequantize of [`crate::kernels::qdq`]).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::layout::{Best, LayoutKernels};
use crate::kernels::qdq::{Best as Qdq, Dequantize, QdqKernels};

/// `[N,] C, H, W` → `[N,] H, W, C`: the shape of a planar image held interleaved.
fn interleaved_shape<D: Clone>(shape: &[D], batch: bool) -> TVec<D> {
    let image = &shape[batch as usize..];
    shape[..batch as usize].iter().chain(&image[1..]).chain(&image[..1]).cloned().collect()
}

/// `[N,] H, W, C` → `[N,] C, H, W`.
fn planar_shape<D: Clone>(shape: &[D], batch: bool) -> TVec<D> {
    let image = &shape[batch as usize..];
    let last = image.len() - 1;
    shape[..batch as usize].iter().chain(&image[last..]).chain(&image[..last]).cloned().collect()
}

/// `x − zero_point` as f32; with `interleave`, a planar `[N,] C, H, W` input is written
/// `[N,] H, W, C`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZeroPointShift {
    /// `Some(batch)`: transpose to HWC (the input has a leading batch axis when `batch`).
    pub interleave: Option<bool>,
}

impl Op for ZeroPointShift {
    fn name(&self) -> StaticName {
        "ZeroPointShift".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ZeroPointShift {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (input, zero_point) = (&inputs[0], inputs[1].cast_to_scalar::<i32>()?);
        // Our simd128 dequantize with scale 1: exact, since u8/i8 values minus a zero point
        // are small integers.
        let shape = input.shape();
        let view = input.try_as_plain_ram()?;
        let Some(batch) = self.interleave else {
            let shift = Dequantize { scale: 1.0, zero_point };
            // SAFETY: f32 is a plain type; the dequantize writes every element (the output has
            // the input's shape) before the tensor is read, or the eval fails and drops it.
            let mut out = unsafe { Tensor::uninitialized::<f32>(shape)? };
            let mut plain = out.try_as_plain_ram_mut()?;
            let ys = plain.as_slice_mut::<f32>()?;
            match input.datum_type() {
                DatumType::U8 => Qdq::dequantize(&shift, view.as_slice::<u8>()?, ys),
                DatumType::I8 => Qdq::dequantize(&shift, view.as_slice::<i8>()?, ys),
                dt => bail!("ZeroPointShift reads u8 or i8, not {dt:?}"),
            }
            return Ok(tvec!(out.into_tvalue()));
        };
        let (channels, pixels) = (shape[batch as usize], shape[batch as usize + 1..].iter().product());
        // SAFETY: f32 is a plain type; the output holds the input's `channels × pixels` values
        // per image, all of which the transpose writes, before the tensor is read (or the eval
        // fails and drops it).
        let mut out = unsafe { Tensor::uninitialized::<f32>(&interleaved_shape(shape, batch))? };
        let mut plain = out.try_as_plain_ram_mut()?;
        let ys = plain.as_slice_mut::<f32>()?;
        match input.datum_type() {
            DatumType::U8 => Best::shift_interleave(view.as_slice::<u8>()?, ys, channels, pixels, zero_point),
            DatumType::I8 => Best::shift_interleave(view.as_slice::<i8>()?, ys, channels, pixels, zero_point),
            dt => bail!("ZeroPointShift reads u8 or i8, not {dt:?}"),
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for ZeroPointShift {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = inputs[0].shape.to_tvec();
        Ok(tvec!(f32::fact(match self.interleave {
            Some(batch) => interleaved_shape(&shape, batch),
            None => shape,
        })))
    }

    as_op!();
}

/// An f32 `[N,] H, W, C` tensor written `[N,] C, H, W`; with a `bias`, also multiplied by the
/// scale that is its second input and added the bias per channel (the scale multiply and bias
/// add a dynamic convolution's output goes through, folded into this pass).
#[derive(Clone, Debug, PartialEq)]
pub struct ToPlanar {
    pub batch: bool,
    pub bias: Option<std::sync::Arc<Vec<f32>>>,
}

impl Eq for ToPlanar {}

impl Op for ToPlanar {
    fn name(&self) -> StaticName {
        "ToPlanar".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ToPlanar {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let channels = *input.shape().last().context("ToPlanar: a scalar")?;
        let pixels = input.shape()[self.batch as usize..input.rank() - 1].iter().product();
        // SAFETY: f32 is a plain type; the output holds the input's values (`channels × pixels`
        // per image), all of which the transpose writes before the tensor is read (or the eval
        // fails and drops it).
        let mut out = unsafe { Tensor::uninitialized::<f32>(&planar_shape(input.shape(), self.batch))? };
        let scale = match &self.bias {
            Some(_) => Some(inputs.get(1).context("ToPlanar: the scale input")?.cast_to_scalar::<f32>()?),
            None => None,
        };
        let affine = scale.zip(self.bias.as_deref().map(|b| b.as_slice()));
        Best::to_planar(
            input.try_as_plain_ram()?.as_slice::<f32>()?,
            out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?,
            channels,
            pixels,
            affine,
        );
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for ToPlanar {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(planar_shape(&inputs[0].shape.to_tvec(), self.batch))))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_interleave_and_back() {
        let shape: TVec<TDim> = tvec!(1.into(), 3.into(), 4.into(), 5.into());
        assert_eq!(interleaved_shape(&shape, true), tvec!(1.to_dim(), 4.into(), 5.into(), 3.into()));
        assert_eq!(planar_shape(&interleaved_shape(&shape, true), true), shape);
        assert_eq!(interleaved_shape(&shape[1..], false), tvec!(4.to_dim(), 5.into(), 3.into()));
    }
}
