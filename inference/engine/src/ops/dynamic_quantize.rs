//! [`SimdDynamicQuantize`]: `DynamicQuantizeLinear` (f32 → u8 with a scale and zero point from
//! the tensor's own range), in place of tract's `DynamicQuantizeLinearU8` (wired by
//! [`crate::passes::dynamic_quantize`]; its loops are [`crate::kernels::dynamic_quantize`]).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::dynamic_quantize::{scale_and_zero_point, Best, DynamicQuantizeKernels};

/// The op: the same inputs and outputs as tract's `DynamicQuantizeLinearU8`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimdDynamicQuantize;

impl Op for SimdDynamicQuantize {
    fn name(&self) -> StaticName {
        "SimdDynamicQuantizeLinearU8".into()
    }

    op_as_typed_op!();
}

impl EvalOp for SimdDynamicQuantize {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].cast_to::<f32>()?;
        let xs = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let (min, max) = Best::range(xs);
        let (scale, zero_point) = scale_and_zero_point(min, max);
        // SAFETY: u8 is a plain type; the kernel writes all of it (the output has the input's
        // shape) before it is read.
        let mut out = unsafe { Tensor::uninitialized_dt(u8::datum_type(), input.shape())? };
        Best::quantize(xs, scale, zero_point, out.try_as_plain_ram_mut()?.as_slice_mut::<u8>()?);
        Ok(tvec!(out.into_tvalue(), tensor0(scale).into_tvalue(), tensor0(zero_point).into_tvalue()))
    }
}

impl TypedOp for SimdDynamicQuantize {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(u8::fact(inputs[0].shape.clone()), f32::fact([0usize; 0]), u8::fact([0usize; 0])))
    }

    as_op!();
}
