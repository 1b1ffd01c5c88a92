//! Depthwise f32 convolutions onto [`Depthwise`], before tract's declutter.
//!
//! On wasm, tract's declutter moves every depthwise convolution of sixteen channels or more to
//! channels-last (HWC), for its own channel-inner kernel (`Conv::suggested_axis_changes` in
//! tract-core 0.23.9), and the layout change spreads through the graph: the 1×1 convolutions
//! around them then run on interleaved images, where [`crate::ops::float_conv::FloatConv`] takes
//! narrower tiles or transposes. With our own kernel the reason is gone, so this pass replaces the
//! depthwise convolutions whose filters and bias are constants while the model is typed, or
//! computed by one node from constants (a QDQ model's, dequantized from int8: [`folded_floats`]):
//! the graph stays planar (CHW) and [`super::float_conv`] folds the batch normalisation and the
//! activation that follow into them after declutter ([`fused`]), or, over a dequantized int8
//! image, [`super::integer_depthwise`] computes them on the bytes. Any other is replaced after
//! declutter, in the layout tract chose.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::conv::KernelFormat;
use tract_onnx::tract_core::ops::cnn::Conv;

use super::float_conv::{activation_after, affine_after, constant_floats, fold_affine};
use super::integer_conv::{pool_geometry, Side};
use super::{Context, Pass, Stage};
use crate::kernels::depthwise::{vectorised, Activation};
use crate::ops::depthwise::Depthwise;

/// The pass: [`rewrite`], on the typed model.
pub struct DepthwiseRewrite;

impl Pass for DepthwiseRewrite {
    fn name(&self) -> &'static str {
        "f32 depthwise convolutions"
    }

    fn stage(&self) -> Stage {
        Stage::Typed
    }

    fn run(&self, model: &mut TypedModel, _context: &Context) -> TractResult<usize> {
        rewrite(model)
    }
}

/// A depthwise `Conv` (one group per channel, one filter per group) over an f32 image with
/// constant filters and bias (or ones [`folded_floats`] computes), in a window [`vectorised`]
/// covers, as [`Depthwise`] (no activation).
pub(super) fn depthwise_of(model: &TypedModel, node: &TypedNode, conv: &Conv) -> TractResult<Option<Depthwise>> {
    if conv.q_params.is_some() || node.inputs.len() != 3 || conv.kernel_fmt != KernelFormat::OIHW {
        return Ok(None);
    }
    let (x, side) = (node.inputs[0], Side::of_format(conv.pool_spec.data_format));
    if model.outlet_fact(x)?.datum_type != f32::datum_type() || conv.pool_spec.rank() != 2 {
        return Ok(None);
    }
    let Some((channels, size)) = side.image(model, x)? else { return Ok(None) };
    let geometry = pool_geometry(&conv.pool_spec, channels, size);
    // The filters' shape is known before their values are computed.
    let filter_shape = model.outlet_fact(node.inputs[1])?.shape.as_concrete().map(|s| s.to_vec());
    let one_per_channel = filter_shape == Some(vec![channels, 1, geometry.kernel[0], geometry.kernel[1]]);
    if conv.group != channels || !one_per_channel || !vectorised(&geometry) {
        return Ok(None);
    }
    let Some((_, filters)) = folded_floats(model, node.inputs[1])? else { return Ok(None) };
    let Some((_, bias)) = folded_floats(model, node.inputs[2])? else { return Ok(None) };
    // tract's declutter leaves a convolution without bias a scalar zero.
    let bias = match bias.len() {
        1 => vec![bias[0]; channels],
        n if n == channels => bias,
        _ => return Ok(None),
    };
    Ok(Some(Depthwise::new(side.batch, side.layout, geometry, filters, bias, Activation::Identity)))
}

/// The f32 values of `outlet` when it is a constant, or computed out of plan by one node from
/// constants: before declutter folds them, a QDQ model's filters are the dequantize of an int8
/// initializer. Replacing its depthwise convolutions there too keeps the graph planar on wasm,
/// where declutter would move those of sixteen channels or more channels-last for tract's kernel
/// ([`super::integer_depthwise`] then computes them on the int8 image).
fn folded_floats(model: &TypedModel, outlet: OutletId) -> TractResult<Option<(TVec<usize>, Vec<f32>)>> {
    if let Some(found) = constant_floats(model, outlet)? {
        return Ok(Some(found));
    }
    let node = model.node(outlet.node);
    let mut inputs = tvec![];
    for input in &node.inputs {
        let Some(k) = model.outlet_fact(*input)?.konst.clone() else { return Ok(None) };
        inputs.push(TValue::from_const(k));
    }
    // An operator that cannot be evaluated here leaves the convolution to tract.
    let Ok(Some(outputs)) = node.op.eval_out_of_plan(inputs) else { return Ok(None) };
    let value = &outputs[outlet.slot];
    if value.datum_type() != f32::datum_type() {
        return Ok(None);
    }
    Ok(Some((value.shape().into(), value.try_as_plain_ram()?.as_slice::<f32>()?.to_vec())))
}

/// `op` (whose output is `outlet`) with the per-channel `Mul`s and `Add`s that read it folded
/// into its filters and bias, then a ReLU or a HardSwish that follows fused, and the output it
/// then replaces (`outlet` when nothing follows that it can take).
pub(super) fn fused(model: &TypedModel, outlet: OutletId, op: Depthwise) -> TractResult<(Depthwise, OutletId)> {
    // One scaled at run time was wired with what follows it already (`super::integer_conv`).
    if op.activation != Activation::Identity || op.scaled {
        return Ok((op, outlet));
    }
    let side = Side { batch: op.batch, layout: op.layout };
    let (mut weights, mut bias) = (op.filters.weights.clone(), op.filters.bias.clone());
    let mut replaces = outlet;
    while let Some((out, scale, shift)) = affine_after(model, replaces, side, bias.len())? {
        fold_affine(&mut weights, &mut bias, &scale, &shift);
        replaces = out;
    }
    let mut activation = Activation::Identity;
    if let Some((fused, out)) = activation_after(model, replaces)? {
        (activation, replaces) = (fused, out);
    }
    if replaces == outlet {
        return Ok((op, outlet));
    }
    Ok((Depthwise::new(op.batch, op.layout, op.geometry, weights, bias, activation), replaces))
}

/// Replaces each depthwise convolution [`depthwise_of`] takes; returns how many. A patch taps its
/// input from the model as it was, so a convolution reading another's output waits for the next
/// round: rounds repeat until one finds nothing.
pub fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut total = 0;
    loop {
        let mut patches = vec![];
        let mut replaced = vec![];
        for node in model.nodes() {
            let Some(conv) = node.op_as::<Conv>() else { continue };
            if replaced.contains(&node.inputs[0]) {
                continue;
            }
            let Some(op) = depthwise_of(model, node, conv)? else { continue };
            let mut patch = TypedModelPatch::new(format!("f32 depthwise convolution {}", node.name));
            let wire = patch.tap_model(model, node.inputs[0])?;
            let out = patch.wire_node(&node.name, op, &[wire])?[0];
            patch.shunt_outside(model, OutletId::new(node.id, 0), out)?;
            patches.push(patch);
            replaced.push(OutletId::new(node.id, 0));
        }
        match super::apply_all(model, patches)? {
            0 => return Ok(total),
            count => total += count,
        }
    }
}
