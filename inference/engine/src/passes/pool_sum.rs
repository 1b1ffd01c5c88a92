//! Gives an optimised model's f32 `Reduce<Sum>` over an image's pixels our [`PoolSum`], node
//! for node (the values are tract's, bit for bit, see its module).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};

use super::{swap_operators, Context, Pass, Stage};
use crate::ops::pool_sum::{PoolSum, Summed};

/// The pass: [`replace`], after optimisation.
pub struct PoolSumAccelerate;

impl Pass for PoolSumAccelerate {
    fn name(&self) -> &'static str {
        "pool sum accelerate"
    }

    fn stage(&self) -> Stage {
        Stage::Optimized
    }

    fn run(&self, model: &mut TypedModel, _: &Context) -> TractResult<usize> {
        replace(model)
    }
}

/// Which axes of a rank `rank` tensor a sum over sorted `axes` covers in [`PoolSum`]'s terms:
/// the first ones (not all of them) or the last two or more (not the first). A sum over the
/// last axis alone takes tract's own kernel, in another order.
fn summed(axes: &[usize], rank: usize) -> Option<Summed> {
    let n = axes.len();
    if n == 0 || n >= rank {
        return None;
    }
    if axes.iter().copied().eq(0..n) {
        Some(Summed::Leading(n))
    } else if n >= 2 && axes.iter().copied().eq(rank - n..rank) {
        Some(Summed::Trailing(n))
    } else {
        None
    }
}

/// Replaces each f32 sum [`summed`] covers; answers how many.
pub fn replace(model: &mut TypedModel) -> TractResult<usize> {
    swap_operators(model, |model, node| {
        let Some(reduce) = node.op_as::<Reduce>() else { return Ok(None) };
        let fact = model.outlet_fact(node.inputs[0])?;
        if reduce.reducer != Reducer::Sum || fact.datum_type != f32::datum_type() {
            return Ok(None);
        }
        let mut axes = reduce.axes.to_vec();
        axes.sort_unstable();
        Ok(summed(&axes, fact.rank()).map(|axes| PoolSum { axes }))
    })
}
