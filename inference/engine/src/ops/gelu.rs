//! [`Gelu`]: tract's f32 `GeluExact` (`x · ½ · (1 + erf(x / √2))`, a transformer's feed-forward
//! activation) in one pass of [`crate::kernels::gelu`], the same values as tract's in the
//! canister, bit for bit (see that module).
//!
//! Wired by [`crate::passes::gelu`].

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::gelu::gelu_in_place;

/// GELU of every value of an f32 tensor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Gelu;

impl Op for Gelu {
    fn name(&self) -> StaticName {
        "Gelu".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Gelu {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1, "Gelu: {} inputs", inputs.len());
        // In place, as tract's elementwise operators are: a copy only when the value is shared.
        let mut tensor = inputs.remove(0).into_tensor();
        {
            let mut plain = tensor.try_as_plain_ram_mut()?;
            gelu_in_place(plain.as_slice_mut::<f32>()?);
        }
        Ok(tvec!(tensor.into_tvalue()))
    }
}

impl TypedOp for Gelu {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type(), "Gelu of {:?}", inputs[0].datum_type);
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}
