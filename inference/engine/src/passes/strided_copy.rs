//! Gives an optimised model's f32, u8 and i8 `Downsample` nodes (strided 1×1 convolutions'
//! inputs, see [`StridedCopy`]) a row-by-row copy, node for node.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::Downsample;

use super::{swap_operators, Context, Pass, Stage};
use crate::ops::strided_copy::StridedCopy;

/// The pass: [`replace`], after optimisation.
pub struct StridedCopyAccelerate;

impl Pass for StridedCopyAccelerate {
    fn name(&self) -> &'static str {
        "strided copy accelerate"
    }

    fn stage(&self) -> Stage {
        Stage::Optimized
    }

    fn run(&self, model: &mut TypedModel, _: &Context) -> TractResult<usize> {
        replace(model)
    }
}

/// Replaces each f32, u8 or i8 `Downsample` with a positive stride by [`StridedCopy`]; answers
/// how many.
pub fn replace(model: &mut TypedModel) -> TractResult<usize> {
    swap_operators(model, |model, node| {
        let Some(d) = node.op_as::<Downsample>() else { return Ok(None) };
        let dt = model.outlet_fact(node.inputs[0])?.datum_type;
        let copies = d.stride > 0 && [DatumType::F32, DatumType::U8, DatumType::I8].contains(&dt);
        Ok(copies.then_some(StridedCopy { axis: d.axis, stride: d.stride as usize, modulo: d.modulo }))
    })
}
