//! [`ZeroPointShift`]: the input of a dynamic int8 model's grouped convolution (a depthwise one
//! only where [`crate::ops::integer_depthwise::IntegerDepthwise`] does not take it) that
//! [`crate::passes::integer_conv`] computes in f32, where sums of at most 256 products of small
//! integers are exact: `x − zero_point` as f32, the zero point an input computed per inference.
//!
//! Its loop is the dequantize of [`crate::kernels::qdq`], with scale 1.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::qdq::{Best as Qdq, Dequantize, QdqKernels};

/// `x − zero_point` as f32, in the input's shape and layout.
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
        let view = input.try_as_plain_ram()?;
        // SAFETY: f32 is a plain type; the dequantize writes every element (the output has the
        // input's shape) before the tensor is read, or the eval fails and drops it.
        let mut out = unsafe { Tensor::uninitialized::<f32>(input.shape())? };
        let mut plain = out.try_as_plain_ram_mut()?;
        let ys = plain.as_slice_mut::<f32>()?;
        match input.datum_type() {
            DatumType::U8 => Qdq::dequantize(&shift, view.as_slice::<u8>()?, ys),
            DatumType::I8 => Qdq::dequantize(&shift, view.as_slice::<i8>()?, ys),
            dt => bail!("ZeroPointShift reads u8 or i8, not {dt:?}"),
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for ZeroPointShift {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.to_tvec())))
    }

    as_op!();
}
