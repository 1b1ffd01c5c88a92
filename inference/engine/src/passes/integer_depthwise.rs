//! Finding the int8 models' depthwise convolutions that [`IntegerDepthwise`] computes (a dynamic
//! model's: [`integer_at_run_time`]), for
//! [`super::integer_conv`]'s rewrite (the same stage and the same evidence as its convolutions).
//!
//! A QDQ model's depthwise convolution reads a dequantized u8/i8 image with filters dequantized
//! from an int8 initializer. [`super::depthwise`] replaces it before declutter with our f32
//! [`Depthwise`] (so the graph stays planar on wasm, where declutter would move those of sixteen
//! channels or more channels-last for tract's kernel); after declutter it is tract's grouped
//! `Conv` only where that pass could not take it. Either is taken here, on planar images (a
//! channels-last int8 kernel measured no faster than the f32 one: `benchmarks/NOTES.md`), when
//! its filters are exactly the ONNX graph's int8 initializer dequantized (per tensor or per
//! channel, zero point 0: [`crate::onnx::quantized_weights`]), so the rewrite never guesses, and
//! when the kernel covers its window ([`covered`]); the others stay in f32
//! ([`super::float_conv`]).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::conv::KernelFormat;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::quant::DequantizeLinearF32;

use super::integer_conv::{dequantized, pool_geometry, tensor_floats, Side};
use crate::kernels::activation::Activation;
use crate::kernels::depthwise::integer::{covered, IntegerFilters};
use crate::kernels::integer_conv::pack::Geometry;
use crate::kernels::integer_conv::pack::Layout;
use crate::onnx::quantized_weights::{ConvWeights, QuantizedWeights};
use crate::ops::depthwise::Depthwise;
use crate::ops::integer_depthwise::IntegerDepthwise;

/// The operator for the depthwise `Conv` `node` and the int8 tensor it reads, if it is one
/// (see the module's documentation).
pub(super) fn integer_depthwise(
    model: &TypedModel,
    node: &TypedNode,
    conv: &Conv,
    weights: &QuantizedWeights,
) -> TractResult<Option<(OutletId, IntegerDepthwise)>> {
    let Some(onnx) = weights.get(&node.name) else { return Ok(None) };
    let spec = &conv.pool_spec;
    if conv.q_params.is_some() || node.inputs.len() != 3 || conv.kernel_fmt != KernelFormat::OIHW || spec.rank() != 2 {
        return Ok(None);
    }
    let Some((x, dequantize)) = dequantized(model, node.inputs[0])? else { return Ok(None) };
    let side = Side::of_format(spec.data_format);
    if side.layout != Layout::Planar {
        return Ok(None);
    }
    let Some((channels, size)) = side.image(model, x)? else { return Ok(None) };
    let geometry = pool_geometry(spec, channels, size);
    if conv.group != channels {
        return Ok(None);
    }
    let Some(kernel) = model.outlet_fact(node.inputs[1])?.konst.as_ref() else { return Ok(None) };
    let Some(bias) = model.outlet_fact(node.inputs[2])?.konst.as_ref() else { return Ok(None) };
    if kernel.datum_type() != f32::datum_type() || bias.datum_type() != f32::datum_type() {
        return Ok(None);
    }
    let bias = match bias.len() {
        1 => vec![tensor_floats(bias)?[0]; channels],
        _ => tensor_floats(bias)?,
    };
    let Some(filters) = static_filters(onnx, &dequantize, geometry, &tensor_floats(kernel)?, bias) else {
        return Ok(None);
    };
    Ok(Some((x, IntegerDepthwise { batch: side.batch, filters: filters.into(), at_run_time: false, lookup: None })))
}

/// The operator for our f32 [`Depthwise`] `node` (wired before declutter, so planar) over a
/// dequantized int8 image, when its filters are exactly the ONNX graph's int8 weights dequantized
/// and nothing was folded into them (no activation, no batch normalisation: in a QDQ model a
/// quantize follows it), and the int8 tensor it reads.
pub(super) fn integer_of_ours(
    model: &TypedModel,
    node: &TypedNode,
    op: &Depthwise,
    weights: &QuantizedWeights,
) -> TractResult<Option<(OutletId, IntegerDepthwise)>> {
    let Some(onnx) = weights.get(&node.name) else { return Ok(None) };
    if op.scaled || op.activation != Activation::Identity || op.layout != Layout::Planar || node.inputs.len() != 1 {
        return Ok(None);
    }
    let Some((x, dequantize)) = dequantized(model, node.inputs[0])? else { return Ok(None) };
    let (filters, bias) = (&op.filters.weights, op.filters.bias.clone());
    let Some(filters) = static_filters(onnx, &dequantize, op.geometry.clone(), filters, bias) else {
        return Ok(None);
    };
    Ok(Some((x, IntegerDepthwise { batch: op.batch, filters: filters.into(), at_run_time: false, lookup: None })))
}

/// The int8 filters of a depthwise convolution of `geometry` by `onnx`'s weights over an image
/// dequantized by `dequantize`, when `floats` (the f32 filters the graph computes with) are exactly
/// those weights dequantized, `bias` has one value per channel and the kernel covers the window.
fn static_filters(
    onnx: &ConvWeights,
    dequantize: &DequantizeLinearF32,
    geometry: Geometry,
    floats: &[f32],
    bias: Vec<f32>,
) -> Option<IntegerFilters> {
    let ([kh, kw], channels) = (geometry.kernel, geometry.channels);
    let scales_fit = onnx.scales.len() == 1 || onnx.scales.len() == channels;
    if onnx.shape[..] != [channels, 1, kh, kw] || !covered(&geometry) || !scales_fit || bias.len() != channels {
        return None;
    }
    let scale = |c: usize| onnx.scales[if onnx.scales.len() == 1 { 0 } else { c }];
    let taps = kh * kw;
    let expected: Vec<f32> = onnx.values.iter().enumerate().map(|(i, v)| *v as f32 * scale(i / taps)).collect();
    if floats != expected {
        return None;
    }
    let scales = (0..channels).map(|c| dequantize.scale * scale(c)).collect();
    let values = onnx.values.iter().map(|v| *v as i16).collect();
    Some(IntegerFilters::new(geometry, dequantize.zero_point, values, scales, bias))
}

/// A dynamic int8 depthwise convolution `node` (tract's integer `Conv` over the u8/i8 image a
/// dynamic quantize made) as the f32 [`Depthwise`] scaled at run time that
/// [`super::integer_conv`] found for it (`op`: the weights less their zero point, the bias and
/// the activation that follow), computed on the image's bytes instead: the zero point and the
/// scale become inputs ([`IntegerDepthwise::at_run_time`]). The sums are the same exact
/// integers, dequantized and activated by the same f32 operations, so the outputs are the same
/// bits.
pub(super) fn integer_at_run_time(
    model: &TypedModel,
    node: &TypedNode,
    op: &Depthwise,
) -> TractResult<Option<IntegerDepthwise>> {
    let dt = model.outlet_fact(node.inputs[0])?.datum_type;
    if !(dt == u8::datum_type() || dt == i8::datum_type()) || !op.scaled || op.layout != Layout::Planar {
        return Ok(None);
    }
    let weights: Vec<i16> = op.filters.weights.iter().map(|w| *w as i16).collect();
    let exact = weights.iter().zip(&op.filters.weights).all(|(i, f)| *i as f32 == *f);
    if !exact || !covered(&op.geometry) {
        return Ok(None);
    }
    let channels = op.geometry.channels;
    let filters = IntegerFilters::new(op.geometry.clone(), 0, weights, vec![1.0; channels], op.filters.bias.clone())
        .activated(op.activation);
    Ok(Some(IntegerDepthwise { batch: op.batch, filters: filters.into(), at_run_time: true, lookup: None }))
}
