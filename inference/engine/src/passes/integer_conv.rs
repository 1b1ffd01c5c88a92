//! Finding the convolutions [`IntegerConv`] computes in a decluttered model and wiring it in
//! their place; and moving a dynamic int8 model's grouped and depthwise convolutions off tract's
//! integer path, after [`ZeroPointShift`], onto our [`Depthwise`] or tract's f32 convolution.
//!
//! It runs on the decluttered model, after tract has chosen its layouts (batch axis dropped, HWC
//! around its wasm depthwise kernel). It takes each one-group 2-D convolution whose input is a
//! dequantize of a u8/i8 tensor and whose weights are an int8 initializer dequantized with zero
//! points 0 (per tensor or per output channel): a `Conv` (k×k), or the `EinSum` and bias `Add`
//! tract declutters a 1×1 convolution into. It wires [`IntegerConv`] on the int8 tensor itself,
//! in the layouts tract chose for the input and the output. A `Downsample` tract pulled up onto
//! the convolution's output becomes the convolution's stride ([`downsampled`]), and an NHWC
//! model input moved to NCHW for it is read as it was. The int8 weights come from the ONNX
//! graph ([`Context::weights`], read by [`crate::onnx::quantized_weights`]); the rewrite only
//! fires where tract's f32 constants are exactly those weights dequantized, so it never guesses.
//!
//! Dynamic int8 models (`DynamicQuantizeLinear` → `ConvInteger` → `Cast`) reach tract as its
//! integer `Conv`/`EinSum` over u8 with a zero point computed per inference; tract 0.23.9 runs
//! them with an eager `Im2col`, column sums (`QSumB`) and a widened-i32 kernel. The pass replaces
//! each one-group one (with its cast to f32, and the multiply by the scale and the bias add that
//! follow) by [`IntegerConv`] taking the zero point and the scale as inputs, with the weights'
//! own zero point subtracted once at build.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::conv::KernelFormat;
use tract_onnx::tract_core::ops::cnn::{Conv, PoolSpec};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::ops::quant::DequantizeLinearF32;
use tract_onnx::tract_core::ops::Downsample;

use super::float_conv::{activation_after, interleaved_source};
use super::integer_depthwise::{integer_at_run_time, integer_depthwise, integer_of_ours};
use super::{Context, Pass, Stage};
use crate::kernels::activation::Activation;
use crate::kernels::depthwise::vectorised;
use crate::kernels::integer_conv::pack::{Epilogue, Geometry, Layout, PackedWeights};
use crate::kernels::integer_conv::winograd::WinogradWeights;
use crate::onnx::quantized_weights::{ConvWeights, QuantizedWeights};
use crate::ops::depthwise::Depthwise;
use crate::ops::integer_conv::{IntegerConv, Runtime};
use crate::ops::layout::ZeroPointShift;

/// The pass: [`rewrite`], after declutter.
pub struct IntegerConvRewrite;

impl Pass for IntegerConvRewrite {
    fn name(&self) -> &'static str {
        "integer convolutions"
    }

    fn stage(&self) -> Stage {
        Stage::Decluttered
    }

    fn run(&self, model: &mut TypedModel, context: &Context) -> TractResult<usize> {
        rewrite(model, context.weights)
    }
}

pub(super) fn tensor_floats(t: &Tensor) -> TractResult<Vec<f32>> {
    Ok(t.try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
}

/// The int8 input of a dequantize node: its wire and parameters, if `outlet` is one.
pub(super) fn dequantized(
    model: &TypedModel,
    outlet: OutletId,
) -> TractResult<Option<(OutletId, DequantizeLinearF32)>> {
    let node = model.node(outlet.node);
    let Some(op) = node.op_as::<DequantizeLinearF32>() else { return Ok(None) };
    let dt = model.outlet_fact(node.inputs[0])?.datum_type;
    Ok((dt == u8::datum_type() || dt == i8::datum_type()).then(|| (node.inputs[0], op.clone())))
}

/// A node of the decluttered model that [`IntegerConv`] computes.
struct Match {
    /// The operator's inputs: the int8 tensor, then the [`Runtime`] parameters it takes.
    inputs: TVec<OutletId>,
    op: IntegerConv,
    /// The f32 output it replaces: the convolution's, or that of the last node it absorbs (a 1×1
    /// convolution's bias add; a dynamic convolution's cast, scale multiply and bias add).
    replaces: OutletId,
    /// Whether the image is one pixel whose two unit axes tract took away
    /// ([`vector_einsum_geometry`]): the output loses them too.
    flat: bool,
}

/// The operator for `onnx`'s weights over an input dequantized by `dequantize`, when tract's
/// folded f32 kernel is exactly those weights dequantized (so the node is that convolution,
/// unchanged).
fn build(
    model: &TypedModel,
    dequantize: &DequantizeLinearF32,
    onnx: &ConvWeights,
    kernel: OutletId,
    geometry: Geometry,
    bias: Vec<f32>,
    sides: [Side; 2],
) -> TractResult<Option<IntegerConv>> {
    let Some(kernel) = model.outlet_fact(kernel)?.konst.as_ref() else { return Ok(None) };
    let (m, depth) = (onnx.shape[0], geometry.depth());
    let scale = |o: usize| onnx.scales[if onnx.scales.len() == 1 { 0 } else { o }];
    let expected: Vec<f32> = onnx.values.iter().enumerate().map(|(i, v)| *v as f32 * scale(i / depth)).collect();
    let shape_fits = onnx.shape[1] == geometry.channels && onnx.shape[2..] == geometry.kernel && bias.len() == m;
    if !shape_fits || kernel.datum_type() != f32::datum_type() || tensor_floats(kernel)? != expected {
        return Ok(None);
    }
    let epilogue = Epilogue {
        zero_point: dequantize.zero_point,
        scales: (0..m).map(|o| dequantize.scale * scale(o)).collect(),
        bias,
        raw: false,
    };
    let values: Vec<i16> = onnx.values.iter().map(|v| *v as i16).collect();
    Ok(Some(operator(&values, geometry, epilogue, sides, Runtime::default())))
}

pub(super) fn operator(
    weights: &[i16],
    geometry: Geometry,
    epilogue: Epilogue,
    [input, output]: [Side; 2],
    runtime: Runtime,
) -> IntegerConv {
    let channels = epilogue.scales.len();
    let winograd = WinogradWeights::new(weights, &geometry, channels).map(Arc::new);
    let mut weights = PackedWeights::for_image(weights, &geometry, channels);
    if winograd.is_some() {
        // Winograd's transforms never run the direct path: its packed weights need not stay in
        // the heap beside the transformed ones.
        weights.panels = Vec::new();
    }
    IntegerConv {
        input_batch: input.batch,
        output_batch: output.batch,
        input_layout: input.layout,
        output_layout: output.layout,
        runtime,
        geometry,
        weights: Arc::new(weights),
        winograd,
        epilogue: Arc::new(epilogue),
        activation: Activation::Identity,
        lookup: None,
    }
}

/// How one side of a convolution holds its image: with or without a batch axis, CHW or HWC.
#[derive(Clone, Copy, Debug)]
pub(super) struct Side {
    pub(super) batch: bool,
    pub(super) layout: Layout,
}

impl Side {
    /// The side of an image in tract's data format `format`.
    pub(super) fn of_format(format: DataFormat) -> Side {
        match format {
            DataFormat::NCHW => Side { batch: true, layout: Layout::Planar },
            DataFormat::CHW => Side { batch: false, layout: Layout::Planar },
            DataFormat::NHWC => Side { batch: true, layout: Layout::Interleaved },
            DataFormat::HWC => Side { batch: false, layout: Layout::Interleaved },
        }
    }

    /// From an einsum's axes for one image, `channel` naming its channel axis: `[N]CHW` or
    /// `[N]HWC` spelled with tract's letters (`I` or `O` for C).
    fn of_axes(axes: &str, channel: char) -> Option<Side> {
        let (batch, image) = match axes.strip_prefix('N') {
            Some(rest) => (true, rest),
            None => (false, axes),
        };
        let layout = if image == format!("{channel}HW") {
            Layout::Planar
        } else if image == format!("HW{channel}") {
            Layout::Interleaved
        } else {
            return None;
        };
        Some(Side { batch, layout })
    }

    /// Whether a constant added to an image held this way varies along its channels alone.
    pub(super) fn along_channels(&self, b: &Tensor) -> bool {
        // The channel axis counted from the end (constants broadcast from the right).
        let channel_from_end = match self.layout {
            Layout::Planar => 3,
            Layout::Interleaved => 1,
        };
        let rank = b.rank();
        b.shape().iter().enumerate().all(|(axis, d)| *d == 1 || rank - axis == channel_from_end)
    }

    /// The channel count and spatial size of an image held this way.
    pub(super) fn image(&self, model: &TypedModel, x: OutletId) -> TractResult<Option<(usize, [usize; 2])>> {
        let Some(shape) = model.outlet_fact(x)?.shape.as_concrete().map(|s| s.to_vec()) else { return Ok(None) };
        let image = if self.batch { shape.get(1..) } else { Some(&shape[..]) };
        Ok(match (self.layout, image) {
            (Layout::Planar, Some(&[c, h, w])) | (Layout::Interleaved, Some(&[h, w, c])) => Some((c, [h, w])),
            _ => None,
        })
    }
}

/// The side and geometry of a one-group 2-D `Conv` over the image `x`.
pub(super) fn conv_geometry(model: &TypedModel, conv: &Conv, x: OutletId) -> TractResult<Option<(Side, Geometry)>> {
    let spec = &conv.pool_spec;
    let side = Side::of_format(spec.data_format);
    if conv.group != 1 || conv.kernel_fmt != KernelFormat::OIHW || spec.rank() != 2 {
        return Ok(None);
    }
    let Some((channels, size)) = side.image(model, x)? else { return Ok(None) };
    Ok(Some((side, pool_geometry(spec, channels, size))))
}

/// The geometry of a 2-D window (a convolution's or a pool's) over `channels` × `[h, w]` images.
pub(super) fn pool_geometry(spec: &PoolSpec, channels: usize, [h, w]: [usize; 2]) -> Geometry {
    let padding = spec.computed_padding(&[h, w]);
    Geometry {
        channels,
        input: [h, w],
        kernel: [spec.kernel_shape[0], spec.kernel_shape[1]],
        strides: [spec.stride(0), spec.stride(1)],
        dilations: [spec.dilation(0), spec.dilation(1)],
        pad_before: [padding[0].pad_before, padding[1].pad_before],
        output: [padding[0].convoluted, padding[1].convoluted],
    }
}

/// The axes of an `EinSum` by `[O, I]` weights (a 1×1 convolution's; a quantized einsum's
/// scalar inputs have no axes): its image input's and its output's, as tract spells them.
fn product_axes(einsum: &EinSum) -> Option<(String, String)> {
    let expression = einsum.axes.to_string();
    let (inputs, output) = expression.split_once("->")?;
    let inputs: Vec<&str> = inputs.split(',').collect();
    if inputs.len() < 2 || inputs[1] != "OI" || inputs[2..].iter().any(|axes| !axes.is_empty()) {
        return None;
    }
    Some((inputs[0].to_string(), output.to_string()))
}

/// The sides and geometry of a 1×1 convolution's `EinSum` (`[N]IHW,OI->[N]OHW` or the HWC
/// spellings; a quantized einsum's scalar inputs have no axes) over the image `x`.
pub(super) fn einsum_geometry(
    model: &TypedModel,
    einsum: &EinSum,
    x: OutletId,
) -> TractResult<Option<([Side; 2], Geometry)>> {
    let Some((image, output)) = product_axes(einsum) else { return Ok(None) };
    let (Some(input), Some(output)) = (Side::of_axes(&image, 'I'), Side::of_axes(&output, 'O')) else {
        return Ok(None);
    };
    let Some((channels, size)) = input.image(model, x)? else { return Ok(None) };
    Ok(Some((
        [input, output],
        Geometry {
            channels,
            input: size,
            kernel: [1, 1],
            strides: [1, 1],
            dilations: [1, 1],
            pad_before: [0, 0],
            output: size,
        },
    )))
}

/// A 1×1 convolution of a one-pixel image as tract declutters it, the image's unit axes gone
/// from its output (`[N]I[HW],OI->[N]O`: a classifier's head after its global pool): the image
/// as one interleaved pixel (the same memory as planar for one pixel, and the channel axis last,
/// as the flat tensor's is, for [`Side::along_channels`]) and its geometry.
pub(super) fn vector_einsum_geometry(
    model: &TypedModel,
    einsum: &EinSum,
    x: OutletId,
) -> TractResult<Option<([Side; 2], Geometry)>> {
    let Some((image, output)) = product_axes(einsum) else { return Ok(None) };
    // The input may keep its unit image axes (`NIHW`) where the output lost them.
    let (batch, image_axes) = match (&*image, &*output) {
        ("NI", "NO") => (true, false),
        ("I", "O") => (false, false),
        ("NIHW", "NO") => (true, true),
        ("IHW", "O") => (false, true),
        _ => return Ok(None),
    };
    let Some(shape) = model.outlet_fact(x)?.shape.as_concrete().map(|s| s.to_vec()) else { return Ok(None) };
    let channel = batch as usize;
    let rank = channel + 1 + 2 * image_axes as usize;
    if shape.len() != rank || shape[channel + 1..].iter().any(|&d| d != 1) {
        return Ok(None);
    }
    let side = Side { batch, layout: Layout::Interleaved };
    let one = [1, 1];
    let geometry = Geometry {
        channels: shape[channel],
        input: one,
        kernel: one,
        strides: one,
        dilations: one,
        pad_before: [0, 0],
        output: one,
    };
    Ok(Some(([side, side], geometry)))
}

/// A k×k convolution of a static int8 model: tract's `Conv` over a dequantized input.
fn conv_match(
    model: &TypedModel,
    node: &TypedNode,
    conv: &Conv,
    weights: &QuantizedWeights,
) -> TractResult<Option<Match>> {
    let Some(onnx) = weights.get(&node.name) else { return Ok(None) };
    if conv.q_params.is_some() || node.inputs.len() != 3 {
        return Ok(None);
    }
    let Some(x) = dequantized(model, node.inputs[0])? else { return Ok(None) };
    let Some((side, mut geometry)) = conv_geometry(model, conv, x.0)? else { return Ok(None) };
    let last = downsampled(model, node, side, &mut geometry)?;
    let Some(bias) = model.outlet_fact(node.inputs[2])?.konst.as_ref() else { return Ok(None) };
    let bias = match (bias.datum_type(), bias.len()) {
        (DatumType::F32, 1) => vec![tensor_floats(bias)?[0]; onnx.shape[0]],
        (DatumType::F32, _) => tensor_floats(bias)?,
        _ => return Ok(None),
    };
    let op = build(model, &x.1, onnx, node.inputs[1], geometry, bias, [side, side])?;
    Ok(op.map(|op| Match { inputs: tvec!(x.0), op, replaces: OutletId::new(last.id, 0), flat: false }))
}

/// A 1×1 convolution, which tract declutters into `EinSum` (named `<conv>.einsum`) over the
/// channel axis, followed by its bias `Add` (named `<conv>`); without a bias, the `EinSum` alone
/// (named `<conv>`). Of a one-pixel image too, whose unit axes the product drops.
fn einsum_match(
    model: &TypedModel,
    node: &TypedNode,
    einsum: &EinSum,
    weights: &QuantizedWeights,
) -> TractResult<Option<Match>> {
    // A convolution without a bias declutters into its einsum alone, under the convolution's name.
    let conv = node.name.strip_suffix(".einsum").unwrap_or(&node.name);
    let Some(onnx) = weights.get(conv) else { return Ok(None) };
    if einsum.q_params.is_some() || node.inputs.len() != 2 {
        return Ok(None);
    }
    let Some(x) = dequantized(model, node.inputs[0])? else { return Ok(None) };
    // A one-pixel image's product (a classifier's head after its global pool) writes the flat
    // `[N,] M` the graph reads.
    let (([input, output], mut geometry), flat) = match einsum_geometry(model, einsum, x.0)? {
        Some(found) => (found, false),
        None => match vector_einsum_geometry(model, einsum, x.0)? {
            Some(found) => (found, true),
            None => return Ok(None),
        },
    };
    let last = downsampled(model, node, output, &mut geometry)?;
    let m = onnx.shape[0];
    // The bias add, when it is the einsum's (or its downsample's) only reader and adds one
    // constant per channel.
    let bias_add = model.single_succ(last.id)?.filter(|add| {
        add.name == node.name.trim_end_matches(".einsum")
            && add.op_as::<TypedBinOp>().is_some_and(|op| op.0.name() == "Add")
            && add.inputs[0] == OutletId::new(last.id, 0)
    });
    let bias = bias_add
        .and_then(|add| model.outlet_fact(add.inputs[1]).ok()?.konst.clone())
        .filter(|b| b.datum_type() == f32::datum_type() && b.len() == m && output.along_channels(b));
    let (bias, replaces) = match (bias, bias_add) {
        (Some(b), Some(add)) => (tensor_floats(&b)?, OutletId::new(add.id, 0)),
        _ => (vec![0.0; m], OutletId::new(last.id, 0)),
    };
    let op = build(model, &x.1, onnx, node.inputs[1], geometry, bias, [input, output])?;
    Ok(op.map(|op| Match { inputs: tvec!(x.0), op, replaces, flat }))
}

/// The `Downsample`s tract's declutter pulled up onto a convolution's output from a strided
/// reader (a residual block's output read by the next stage's stride-2 convolutions): each keeps
/// every k-th output row or column from the first, which is the same convolution at k times its
/// stride, computing a k-th of the outputs (and of the bias add and everything after them) with
/// no copy. Folds each one that is the only reader of the node before it into `geometry`;
/// answers the last node folded (`node` itself if none).
pub(super) fn downsampled<'m>(
    model: &'m TypedModel,
    node: &'m TypedNode,
    output: Side,
    geometry: &mut Geometry,
) -> TractResult<&'m TypedNode> {
    // The output's first image axis: after the batch axis, and after the channel axis if planar.
    let rows_axis = output.batch as usize + (output.layout == Layout::Planar) as usize;
    let mut last = node;
    while let Some(next) = model.single_succ(last.id)? {
        let Some(d) = next.op_as::<Downsample>() else { break };
        let image_axis = d.axis.checked_sub(rows_axis).filter(|axis| *axis < 2);
        let (Some(axis), true) = (image_axis, d.stride > 0 && d.modulo == 0) else { break };
        let k = d.stride as usize;
        geometry.strides[axis] *= k;
        geometry.output[axis] = geometry.output[axis].div_ceil(k);
        last = next;
    }
    Ok(last)
}

/// The weights of a dynamic int8 convolution with their own zero point subtracted, if they and
/// it are constants (one zero point for the tensor).
pub(super) fn shifted_kernel(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Tensor>> {
    let (Some(kernel), Some(zero_point)) =
        (model.outlet_fact(node.inputs[1])?.konst.clone(), model.outlet_fact(node.inputs[5])?.konst.clone())
    else {
        return Ok(None);
    };
    if zero_point.len() != 1 {
        return Ok(None);
    }
    let zero = zero_point.cast_to_scalar::<i32>()?;
    let mut values = kernel.cast_to::<i32>()?.into_owned();
    values.try_as_plain_ram_mut()?.as_slice_mut::<i32>()?.iter_mut().for_each(|v| *v -= zero);
    Ok(Some(values))
}

/// Whether a quantized `Conv`/`EinSum` is what `ConvInteger` becomes: nine inputs (`x, w, bias,
/// x_zp, x_scale, w_zp, w_scale, y_zp, y_scale`), a u8/i8 runtime input, no bias, unit scales, a
/// zero output zero point; answers the `Cast` to f32 that reads it.
pub(super) fn conv_integer<'m>(model: &'m TypedModel, node: &TypedNode) -> TractResult<Option<&'m TypedNode>> {
    if node.inputs.len() != 9 {
        return Ok(None);
    }
    let x = model.outlet_fact(node.inputs[0])?;
    if x.datum_type != u8::datum_type() && x.datum_type != i8::datum_type() || x.konst.is_some() {
        return Ok(None);
    }
    let units = [4, 6, 8].iter().all(|&i| scalar(model, node.inputs[i]) == Some(1.0));
    let zeros = [2, 7].iter().all(|&i| scalar(model, node.inputs[i]) == Some(0.0));
    let cast = model.single_succ(node.id)?.filter(|c| c.op_as::<Cast>().is_some_and(|c| c.to == f32::datum_type()));
    Ok(cast.filter(|_| units && zeros))
}

/// A grouped or depthwise convolution of a dynamic int8 model, computed in f32 over
/// `x − x_zp` ([`ZeroPointShift`]) with weights `w − w_zp`. Each output sums at most 256 products
/// of values within ±255, under 2^24: the f32 sums are the exact integers `ConvInteger` computes,
/// without tract's integer path (an eager `Im2col` and column sums, which dominated a dynamic
/// model's instructions; see `benchmarks/profile.md`).
///
/// A depthwise one our kernel covers becomes [`crate::ops::integer_depthwise::IntegerDepthwise`]
/// on the bytes themselves, the zero point and scale its inputs, the bias add and activation
/// that follow applied as it writes each output ([`scaled_depthwise`], then
/// [`integer_at_run_time`]); failing that, [`Depthwise`] scaled at run time over the shifted
/// values; another grouped one, tract's f32 convolution.
fn grouped_integer_patch(model: &TypedModel, node: &TypedNode) -> TractResult<Option<TypedModelPatch>> {
    let Some(conv) = node.op_as::<Conv>().filter(|c| c.q_params == Some(i32::datum_type()) && c.group > 1) else {
        return Ok(None);
    };
    let Some(cast) = conv_integer(model, node)? else { return Ok(None) };
    let Some(kernel) = shifted_kernel(model, node)? else { return Ok(None) };
    let depth = kernel.len() / kernel.shape()[0].max(1);
    if depth > 256 {
        return Ok(None);
    }
    let kernel = kernel.cast_to::<f32>()?.into_owned();
    let depthwise = scaled_depthwise(model, node, conv, cast, &kernel)?;
    if let Some((op, scale, replaces)) = &depthwise {
        if let Some(ours) = integer_at_run_time(model, node, op)? {
            let mut patch = TypedModelPatch::new(format!("int8 depthwise convolution {}", node.name));
            let inputs = [node.inputs[0], node.inputs[3], *scale].map(|i| patch.tap_model(model, i));
            let inputs = inputs.into_iter().collect::<TractResult<TVec<_>>>()?;
            let out = patch.wire_node(&node.name, ours, &inputs)?[0];
            patch.shunt_outside(model, *replaces, out)?;
            return Ok(Some(patch));
        }
    }
    let mut patch = TypedModelPatch::new(format!("grouped integer convolution {} in f32", node.name));
    let x = patch.tap_model(model, node.inputs[0])?;
    let zero_point = patch.tap_model(model, node.inputs[3])?;
    let shifted = patch.wire_node(format!("{}.shift", node.name), ZeroPointShift, &[x, zero_point])?[0];
    if let Some((op, scale, replaces)) = depthwise {
        let scale = patch.tap_model(model, scale)?;
        let out = patch.wire_node(&node.name, op, &[shifted, scale])?[0];
        patch.shunt_outside(model, replaces, out)?;
        return Ok(Some(patch));
    }
    let kernel = patch.add_const(format!("{}.kernel_f32", node.name), kernel)?;
    let bias = patch.add_const(format!("{}.bias_f32", node.name), tensor0(0f32))?;
    let op = Conv { q_params: None, ..conv.clone() };
    let out = patch.wire_node(&node.name, op, &[shifted, kernel, bias])?[0];
    patch.shunt_outside(model, OutletId::new(cast.id, 0), out)?;
    Ok(Some(patch))
}

/// A dynamic int8 depthwise convolution (one filter per channel, `kernel` its shifted weights in
/// f32) over a planar image, in a window [`vectorised`] covers, followed by the scale multiply
/// and bias add of [`scale_and_bias`]: [`Depthwise`] scaled at run time with that bias, and the
/// ReLU or HardSwish that follows fused. The same f32 operations in the same order as tract's
/// nodes (the exact sum, times the scale, plus the bias, the activation), so the same bits.
/// Answers the operator, the scale's wire and the output it replaces.
fn scaled_depthwise(
    model: &TypedModel,
    node: &TypedNode,
    conv: &Conv,
    cast: &TypedNode,
    kernel: &Tensor,
) -> TractResult<Option<(Depthwise, OutletId, OutletId)>> {
    let (spec, side) = (&conv.pool_spec, Side::of_format(conv.pool_spec.data_format));
    if side.layout != Layout::Planar || spec.rank() != 2 || conv.kernel_fmt != KernelFormat::OIHW {
        return Ok(None);
    }
    let Some((channels, size)) = side.image(model, node.inputs[0])? else { return Ok(None) };
    let geometry = pool_geometry(spec, channels, size);
    let one_per_channel = kernel.shape() == [channels, 1, geometry.kernel[0], geometry.kernel[1]];
    if conv.group != channels || !one_per_channel || !vectorised(&geometry) {
        return Ok(None);
    }
    let Some((scale, bias, mut replaces)) = scale_and_bias(model, cast, channels, side)? else { return Ok(None) };
    let mut activation = Activation::Identity;
    if let Some((fused, out)) = activation_after(model, replaces)? {
        (activation, replaces) = (fused, out);
    }
    let weights = tensor_floats(kernel)?;
    let op = Depthwise::new(side.batch, Layout::Planar, geometry, weights, bias, activation).scaled_at_run_time();
    Ok(Some((op, scale, replaces)))
}

/// A scalar constant's value as f64, if `outlet` is one.
fn scalar(model: &TypedModel, outlet: OutletId) -> Option<f64> {
    let k = model.outlet_fact(outlet).ok()?.konst.clone()?;
    (k.len() == 1).then(|| k.cast_to_scalar::<f64>().ok()).flatten()
}

/// A convolution of a dynamic int8 model: tract's integer `Conv` or `EinSum` (`q_params` set,
/// inputs `x, w, bias, x_zp, x_scale, w_zp, w_scale, y_zp, y_scale`) over the u8/i8 output of
/// `DynamicQuantizeLinear`, with constant u8/i8 weights, no bias, unit scales and a zero output
/// zero point, read back by a `Cast` to f32 (what `ConvInteger` becomes). The input's zero point
/// stays a wire; the kernel's f32 outputs are the exact i32 sums the cast would have made, and
/// the scale and bias that follow ([`scale_and_bias`]) move into the epilogue.
fn integer_match(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Match>> {
    let Some(cast) = conv_integer(model, node)? else { return Ok(None) };
    let x = node.inputs[0];
    let sides_and_geometry = if let Some(conv) = node.op_as::<Conv>().filter(|c| c.q_params == Some(i32::datum_type()))
    {
        conv_geometry(model, conv, x)?.map(|(side, geometry)| ([side, side], geometry, false))
    } else if let Some(einsum) = node.op_as::<EinSum>().filter(|e| e.q_params == Some(i32::datum_type())) {
        match einsum_geometry(model, einsum, x)? {
            Some((sides, geometry)) => Some((sides, geometry, false)),
            None => vector_einsum_geometry(model, einsum, x)?.map(|(sides, geometry)| (sides, geometry, true)),
        }
    } else {
        None
    };
    let Some((sides, geometry, flat)) = sides_and_geometry else { return Ok(None) };
    let Some(kernel) = shifted_kernel(model, node)? else { return Ok(None) };
    let m = kernel.shape().first().copied().unwrap_or(0);
    if m == 0 || kernel.len() != m * geometry.depth() {
        return Ok(None);
    }
    let values: Vec<i16> = kernel.try_as_plain_ram()?.as_slice::<i32>()?.iter().map(|v| *v as i16).collect();
    let mut inputs = tvec!(x, node.inputs[3]);
    let mut runtime = Runtime { zero_point: true, scale: false };
    let (bias, replaces) = match scale_and_bias(model, cast, m, sides[1])? {
        Some((scale, bias, replaces)) => {
            inputs.push(scale);
            runtime.scale = true;
            (bias, replaces)
        }
        None => (vec![0.0; m], OutletId::new(cast.id, 0)),
    };
    let epilogue = Epilogue { zero_point: 0, scales: vec![1.0; m], bias, raw: false };
    let op = operator(&values, geometry, epilogue, sides, runtime);
    Ok(Some(Match { inputs, op, replaces, flat }))
}

/// The node's other input, if it is the `TypedBinOp` named `op` reading `outlet` once.
pub(super) fn other_operand(node: &TypedNode, op: &str, outlet: OutletId) -> Option<OutletId> {
    node.op_as::<TypedBinOp>().filter(|b| b.0.name() == op)?;
    match node.inputs.as_slice() {
        [a, b] if *a == outlet && *b != outlet => Some(*b),
        [a, b] if *b == outlet && *a != outlet => Some(*a),
        _ => None,
    }
}

/// What follows a dynamic convolution's cast in onnxruntime's graph: a `Mul` by its one scale
/// (`x_scale · w_scale`, computed per inference), then an `Add` of a constant bias per channel.
/// The epilogue does the same two f32 operations in the same order, so the outputs stay tract's
/// bit for bit. Answers the scale's wire, the bias (zeros without the add) and the output they
/// replace.
pub(super) fn scale_and_bias(
    model: &TypedModel,
    cast: &TypedNode,
    m: usize,
    output: Side,
) -> TractResult<Option<(OutletId, Vec<f32>, OutletId)>> {
    let cast_out = OutletId::new(cast.id, 0);
    let shape = &model.outlet_fact(cast_out)?.shape;
    let Some(mul) = model.single_succ(cast.id)? else { return Ok(None) };
    let Some(scale) = other_operand(mul, "Mul", cast_out) else { return Ok(None) };
    let scale_fact = model.outlet_fact(scale)?;
    let mul_out = OutletId::new(mul.id, 0);
    if scale_fact.datum_type != f32::datum_type()
        || scale_fact.shape.volume() != 1.into()
        || model.outlet_fact(mul_out)?.shape != *shape
    {
        return Ok(None);
    }
    let add = model
        .single_succ(mul.id)?
        .filter(|add| model.outlet_fact(OutletId::new(add.id, 0)).is_ok_and(|f| f.shape == *shape));
    let bias = add.and_then(|add| {
        let b = model.outlet_fact(other_operand(add, "Add", mul_out)?).ok()?.konst.clone()?;
        (b.datum_type() == f32::datum_type() && (b.len() == m || b.len() == 1) && output.along_channels(&b))
            .then_some(b)
    });
    Ok(Some(match (add, bias) {
        (Some(add), Some(b)) => {
            let values = tensor_floats(&b)?;
            (scale, if values.len() == 1 { vec![values[0]; m] } else { values }, OutletId::new(add.id, 0))
        }
        _ => (scale, vec![0.0; m], mul_out),
    }))
}

/// Replaces each convolution of a decluttered model that [`IntegerConv`] computes; returns how
/// many.
///
/// It runs after declutter, so tract has already chosen its layouts (batch axis dropped,
/// 1×1 convolutions as einsums), which its depthwise convolutions depend on for speed.
pub fn rewrite(model: &mut TypedModel, weights: &QuantizedWeights) -> TractResult<usize> {
    let mut patches = vec![];
    for node in model.nodes() {
        let found = if let Some(conv) = node.op_as::<Conv>().filter(|c| c.q_params.is_none()) {
            conv_match(model, node, conv, weights)?
        } else if let Some(einsum) = node.op_as::<EinSum>().filter(|e| e.q_params.is_none()) {
            einsum_match(model, node, einsum, weights)?
        } else {
            integer_match(model, node)?
        };
        if let Some(patch) = grouped_integer_patch(model, node)? {
            patches.push(patch);
        }
        let depthwise = if let Some(conv) = node.op_as::<Conv>().filter(|c| c.group > 1) {
            integer_depthwise(model, node, conv, weights)?
        } else if let Some(ours) = node.op_as::<Depthwise>() {
            integer_of_ours(model, node, ours, weights)?
        } else {
            None
        };
        if let Some((x, op)) = depthwise {
            let mut patch = TypedModelPatch::new(format!("int8 depthwise convolution {}", node.name));
            let wire = patch.tap_model(model, x)?;
            let out = patch.wire_node(&node.name, op, &[wire])?[0];
            patch.shunt_outside(model, OutletId::new(node.id, 0), out)?;
            patches.push(patch);
        }
        if let Some(Match { mut inputs, mut op, mut replaces, flat }) = found {
            // An NHWC model input moved to NCHW for it is read as it was, as `FloatConv` does.
            let side = Side { batch: op.input_batch, layout: op.input_layout };
            if let Some((unmoved, side)) = interleaved_source(model, inputs[0], side) {
                (inputs[0], op.input_layout) = (unmoved, side.layout);
            }
            // A ReLU or HardSwish that reads the output alone is applied by the operator.
            if let Some((activation, out)) = activation_after(model, replaces)? {
                op.activation = activation;
                replaces = out;
            }
            let mut patch = TypedModelPatch::new(format!("integer convolution {}", node.name));
            let wires = inputs.iter().map(|i| patch.tap_model(model, *i)).collect::<TractResult<TVec<_>>>()?;
            let batch = op.output_batch as usize;
            let mut out = patch.wire_node(&node.name, op, &wires)?[0];
            if flat {
                // `[N,] 1, 1, M` to the flat `[N,] M` the graph reads.
                for axis in ["h", "w"] {
                    out = patch.wire_node(format!("{}.flat.{axis}", node.name), AxisOp::Rm(batch), &[out])?[0];
                }
            }
            patch.shunt_outside(model, replaces, out)?;
            patches.push(patch);
        }
    }
    super::apply_all(model, patches)
}
