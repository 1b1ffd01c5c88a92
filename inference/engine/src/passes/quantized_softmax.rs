//! Keeps tract's declutter from turning a quantized Softmax into a lookup table.
//!
//! tract 0.23.9's `DequantizeLinearF32::declutter` follows the chain of single successors after a
//! dequantization and, when it reaches a quantization through operators whose axes mapping is
//! "natural", replaces the whole chain by a 256-entry lookup table applied to each element.
//! Softmax declares a natural axes mapping but is not element-wise: it normalises along its
//! axis. As a table it becomes the softmax of one element, 1.0 everywhere — which is what
//! tract returns for onnxruntime's default static quantization of every classifier
//! (`DequantizeLinear → Softmax → QuantizeLinear`) and for QOperator's QLinearSoftmax.
//!
//! The fix works on the typed model before declutter: a `DequantizeLinearF32` whose chain of
//! single successors reaches a Softmax is rewired as the same arithmetic spelled out,
//! `(f32(x) − zero_point) · scale`, which no declutter rule folds into a table. Results are then
//! onnxruntime's, quantization step included; the rest of the graph keeps its fusions.

use tract_onnx::tract_core::ops::cast::cast;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::math::{mul, sub};
use tract_onnx::tract_core::ops::nn::Softmax;
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearI8, QuantizeLinearU8};
use tract_onnx::tract_hir::internal::*;

use super::{Context, Pass, Stage};

/// The pass: [`guard`], on the typed model before declutter.
pub struct QuantizedSoftmaxGuard;

impl Pass for QuantizedSoftmaxGuard {
    fn name(&self) -> &'static str {
        "quantized softmax guard"
    }

    fn stage(&self) -> Stage {
        Stage::Typed
    }

    fn run(&self, model: &mut TypedModel, _: &Context) -> TractResult<usize> {
        guard(model)
    }
}

/// Rewires every dequantization that would be folded with a following Softmax; returns how many.
pub fn guard(model: &mut TypedModel) -> TractResult<usize> {
    let exposed: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|node| node.op_is::<DequantizeLinearF32>() && reaches_softmax(model, node.id))
        .map(|node| node.id)
        .collect();
    for &id in &exposed {
        spell_out(model, id)?;
    }
    Ok(exposed.len())
}

/// Follows the chain tract's declutter follows: single successors that map their axes like an
/// element-wise unary operator, up to the first quantization.
fn reaches_softmax(model: &TypedModel, from: usize) -> bool {
    let mut current = from;
    while let Ok(Some(next)) = model.single_succ(current) {
        if next.op_is::<Softmax>() {
            return true;
        }
        if is_quantization(next) || !maps_axes_element_wise(model, next) {
            return false;
        }
        current = next.id;
    }
    false
}

fn is_quantization(node: &TypedNode) -> bool {
    node.op_as::<ElementWiseOp>().is_some_and(|op| {
        op.0.downcast_ref::<QuantizeLinearU8>().is_some() || op.0.downcast_ref::<QuantizeLinearI8>().is_some()
    })
}

fn maps_axes_element_wise(model: &TypedModel, node: &TypedNode) -> bool {
    let Ok((inputs, outputs)) = model.node_facts(node.id) else { return false };
    node.op.axes_mapping(&inputs, &outputs).is_ok_and(|mapping| mapping.is_element_wise_unary())
}

fn spell_out(model: &mut TypedModel, id: usize) -> TractResult<()> {
    let node = &model.nodes()[id];
    let op = node.op_as::<DequantizeLinearF32>().context("not a DequantizeLinearF32")?;
    let rank = model.outlet_fact(node.inputs[0])?.rank();
    let name = node.name.clone();
    let mut patch = TypedModelPatch::default();
    let x = patch.tap_model(model, node.inputs[0])?;
    let zero_point =
        patch.add_const(format!("{name}.zero_point"), tensor0(op.zero_point as f32).broadcast_into_rank(rank)?)?;
    let scale = patch.add_const(format!("{name}.scale"), tensor0(op.scale).broadcast_into_rank(rank)?)?;
    let x = patch.wire_node(format!("{name}.cast"), cast(f32::datum_type()), &[x])?;
    let x = patch.wire_node(format!("{name}.sub"), sub(), &[x[0], zero_point])?;
    let x = patch.wire_node(format!("{name}.mul"), mul(), &[x[0], scale])?;
    patch.shunt_outside(model, id.into(), x[0])?;
    patch.apply(model)
}
