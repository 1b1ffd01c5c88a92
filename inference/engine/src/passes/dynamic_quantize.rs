//! Replaces tract's `DynamicQuantizeLinearU8` nodes of an optimised model with
//! [`SimdDynamicQuantize`] (same inputs, same outputs, bit-identical results; its loops are
//! [`crate::kernels::dynamic_quantize`]).

use tract_onnx::prelude::*;

use super::{swap_operators, Context, Pass, Stage};
use crate::ops::dynamic_quantize::SimdDynamicQuantize;

/// The pass: [`accelerate`], after optimisation.
pub struct DynamicQuantizeAccelerate;

impl Pass for DynamicQuantizeAccelerate {
    fn name(&self) -> &'static str {
        "dynamic quantize accelerate"
    }

    fn stage(&self) -> Stage {
        Stage::Optimized
    }

    fn run(&self, model: &mut TypedModel, _: &Context) -> TractResult<usize> {
        accelerate(model)
    }
}

/// Replaces tract's `DynamicQuantizeLinearU8` nodes of an optimised model with ours (same
/// inputs, same outputs); returns how many. Matched by name: tract-onnx keeps the op's type
/// private.
pub fn accelerate(model: &mut TypedModel) -> TractResult<usize> {
    swap_operators(model, |_, node| {
        Ok((node.op.name() == "DynamicQuantizeLinearU8" && node.outputs.len() == 3).then_some(SimdDynamicQuantize))
    })
}
