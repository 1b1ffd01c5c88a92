//! Gives an optimised model's quantize and dequantize nodes our simd128 loops: each becomes a
//! [`Qdq`] node, and a quantize whose only reader is a dequantize (possibly through reshapes)
//! becomes a single quantize-dequantize pass with no int8 tensor in between.
//!
//! tract 0.23.9 computes `QuantizeLinearU8`/`I8` and `DequantizeLinearF32` one element at a time,
//! which under the IC's cost table made them most of a static int8 model's inference (see
//! [`crate::kernels::qdq`] and `benchmarks/profile.md`). The results are tract's, bit for bit.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::change_axes::{AxisOp, IntoShape};
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearI8, QuantizeLinearU8};

use super::{swap_operators, Context, Pass, Stage};
use crate::kernels::qdq::{Dequantize, Quantize};
use crate::ops::qdq::{Conversion, Qdq};

/// The pass: [`accelerate`], after optimisation.
pub struct QdqAccelerate;

impl Pass for QdqAccelerate {
    fn name(&self) -> &'static str {
        "qdq accelerate"
    }

    fn stage(&self) -> Stage {
        Stage::Optimized
    }

    fn run(&self, model: &mut TypedModel, _: &Context) -> TractResult<usize> {
        accelerate(model)
    }
}

/// The quantize of an optimised-model node, if it is tract's f32 → u8/i8 quantize.
fn as_quantize(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Quantize>> {
    let Some(op) = node.op_as::<ElementWiseOp>() else { return Ok(None) };
    if model.outlet_fact(node.inputs[0])?.datum_type != f32::datum_type() {
        return Ok(None);
    }
    Ok(if let Some(q) = op.0.downcast_ref::<QuantizeLinearU8>() {
        Some(Quantize { inv_scale: q.scale, zero_point: q.zero_point as i32, dt: u8::datum_type() })
    } else {
        op.0.downcast_ref::<QuantizeLinearI8>().map(|q| Quantize {
            inv_scale: q.scale,
            zero_point: q.zero_point as i32,
            dt: i8::datum_type(),
        })
    })
}

/// The dequantize of an optimised-model node, if it is tract's u8/i8 → f32 dequantize.
fn as_dequantize(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Dequantize>> {
    let Some(op) = node.op_as::<DequantizeLinearF32>() else { return Ok(None) };
    let dt = model.outlet_fact(node.inputs[0])?.datum_type;
    Ok((dt == u8::datum_type() || dt == i8::datum_type())
        .then_some(Dequantize { scale: op.scale, zero_point: op.zero_point }))
}

/// Replaces tract's quantize and dequantize nodes of an optimised model with [`Qdq`] nodes,
/// fusing each quantize whose only reader is a dequantize (directly or through reshapes).
/// Returns how many nodes it replaced or fused.
pub fn accelerate(model: &mut TypedModel) -> TractResult<usize> {
    let mut changed = 0;
    // Fuse first: one patch per pair, each on the model as the previous left it.
    while let Some(patch) = next_fusion(model)? {
        patch.apply(model)?;
        changed += 1;
    }
    changed += swap_operators(model, |model, node| {
        Ok(match (as_quantize(model, node)?, as_dequantize(model, node)?) {
            (Some(q), _) => Some(Qdq(Conversion::Quantize(q))),
            (_, Some(d)) => Some(Qdq(Conversion::Dequantize(d))),
            _ => None,
        })
    })?;
    if changed > 0 {
        *model = model.clone().into_compact()?;
    }
    Ok(changed)
}

/// A patch fusing the first quantize → [reshapes] → dequantize chain whose intermediate values
/// nothing else reads, into one quantize-dequantize pass followed by the same reshapes.
fn next_fusion(model: &TypedModel) -> TractResult<Option<TypedModelPatch>> {
    let outputs: Vec<OutletId> = model.output_outlets()?.to_vec();
    for &id in model.eval_order()?.iter() {
        let node = model.node(id);
        let Some(q) = as_quantize(model, node)? else { continue };
        let mut chain = vec![];
        let mut current = node;
        let dequantize = loop {
            if outputs.contains(&OutletId::new(current.id, 0)) {
                break None;
            }
            let Some(next) = model.single_succ(current.id)? else { break None };
            if let Some(d) = as_dequantize(model, next)? {
                break Some((d, next));
            }
            if next.op_as::<AxisOp>().is_some() || next.op_as::<IntoShape>().is_some() {
                chain.push(next);
                current = next;
            } else {
                break None;
            }
        };
        let Some((d, dq)) = dequantize else { continue };
        let mut patch = TypedModelPatch::new(format!("fuse {} into {}", node.name, dq.name));
        let mut wire = patch.tap_model(model, node.inputs[0])?;
        wire = patch.wire_node(&dq.name, Qdq(Conversion::Both(q, d)), &[wire])?[0];
        for reshape in chain {
            wire = patch.wire_node(&reshape.name, reshape.op.clone(), &[wire])?[0];
        }
        patch.shunt_outside(model, OutletId::new(dq.id, 0), wire)?;
        return Ok(Some(patch));
    }
    Ok(None)
}
