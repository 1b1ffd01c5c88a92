//! Models whose weights are stored in f16 computed in f32: tract's own `f16_to_f32` transform,
//! run on the decluttered model for [`WeightFormat::F16`] models only, then tract's declutter
//! again.

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
        Stage::Decluttered
    }

    /// Answers 1 when it transformed the model (tract's transform does not count nodes).
    fn run(&self, model: &mut TypedModel, context: &Context) -> TractResult<usize> {
        if context.weight_format != Some(WeightFormat::F16) {
            return Ok(0);
        }
        let Some(transform) = tract_onnx::tract_core::transform::get_transform("f16_to_f32")? else { return Ok(0) };
        transform.transform(model)?;
        // Declutter again: the widened weights become constants (the casts fold) and the
        // batch normalisations after convolutions fold into them, as in the f32 model, so the
        // passes that follow see the same graph.
        *model = model.clone().into_decluttered()?;
        Ok(1)
    }
}
