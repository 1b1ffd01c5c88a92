//! `x − zero_point` as f32, with the zero point an input computed per inference: the input of
//! a dynamic int8 convolution that [`super::rewrite`] moves to tract's f32 convolution (its
//! grouped and depthwise ones), where sums of at most 256 products of such values are exact.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::super::qdq::{kernels, Dequantize};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZeroPointShift;

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
        let shift = Dequantize { scale: 1.0, zero_point };
        let mut out = unsafe { Tensor::uninitialized::<f32>(input.shape())? };
        let mut plain = out.try_as_plain_ram_mut()?;
        let ys = plain.as_slice_mut::<f32>()?;
        let view = input.try_as_plain_ram()?;
        match input.datum_type() {
            DatumType::U8 => kernels::dequantize(&shift, view.as_slice::<u8>()?, ys),
            DatumType::I8 => kernels::dequantize(&shift, view.as_slice::<i8>()?, ys),
            dt => bail!("ZeroPointShift reads u8 or i8, not {dt:?}"),
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for ZeroPointShift {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}
