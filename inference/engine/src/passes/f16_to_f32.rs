//! Models whose weights are stored in f16 computed in f32: tract's own `f16_to_f32` transform,
//! run on the typed model for [`WeightFormat::F16`] models only, before every pass that looks for
//! f32 convolutions and their constants: [`super::depthwise`] then takes the depthwise
//! convolutions before declutter as in the f32 model, and [`super::float_conv`] finds a spelled-out
//! HardSwish's constants as plain f32 (`benchmarks/NOTES.md`).

use tract_onnx::prelude::*;

use super::{Context, Pass, Stage};
use crate::types::WeightFormat;

/// The pass.
pub struct F16ToF32;

impl Pass for F16ToF32 {
    fn name(&self) -> &'static str {
        "f16 to f32"
    }

    fn stage(&self) -> Stage {
        Stage::Typed
    }

    /// Answers 1 when it transformed the model (tract's transform does not count nodes).
    fn run(&self, model: &mut TypedModel, context: &Context) -> TractResult<usize> {
        if context.weight_format != Some(WeightFormat::F16) {
            return Ok(0);
        }
        let Some(transform) = tract_onnx::tract_core::transform::get_transform("f16_to_f32")? else { return Ok(0) };
        transform.transform(model)?;
        Ok(1)
    }
}
