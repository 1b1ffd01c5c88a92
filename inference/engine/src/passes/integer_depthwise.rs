//! Finding a static int8 model's depthwise convolutions that [`IntegerDepthwise`] computes, for
//! [`super::integer_conv`]'s rewrite (the same stage and the same evidence as its convolutions).
//!
//! After declutter a QDQ model's depthwise convolution is tract's grouped `Conv` (one group per
//! channel) over a dequantized u8/i8 image, its filters an f32 constant. It is taken on planar
//! (CHW) images only: on wasm tract's declutter moves depthwise convolutions of sixteen channels
//! or more channels-last, where an int8 kernel through pairs of columns measured no faster than
//! the f32 one (`benchmarks/NOTES.md`), so those stay f32. It is taken when the filters are exactly the
//! ONNX graph's int8 initializer dequantized (per tensor or per channel, zero point 0:
//! [`crate::onnx::quantized_weights`]), so the rewrite never guesses, and when the kernel covers
//! its window ([`covered`]); the others stay [`crate::ops::depthwise::Depthwise`] in f32
//! ([`super::float_conv`]).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::conv::KernelFormat;
use tract_onnx::tract_core::ops::cnn::Conv;

use super::integer_conv::{dequantized, pool_geometry, tensor_floats, Side};
use crate::kernels::depthwise::integer::{covered, IntegerFilters};
use crate::kernels::integer_conv::pack::Layout;
use crate::onnx::quantized_weights::QuantizedWeights;
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
    let [kh, kw] = geometry.kernel;
    if conv.group != channels || onnx.shape[..] != [channels, 1, kh, kw] || !covered(&geometry) {
        return Ok(None);
    }
    let taps = kh * kw;
    let scale = |c: usize| onnx.scales[if onnx.scales.len() == 1 { 0 } else { c }];
    if onnx.scales.len() != 1 && onnx.scales.len() != channels {
        return Ok(None);
    }
    let expected: Vec<f32> = onnx.values.iter().enumerate().map(|(i, v)| *v as f32 * scale(i / taps)).collect();
    let Some(kernel) = model.outlet_fact(node.inputs[1])?.konst.as_ref() else { return Ok(None) };
    if kernel.datum_type() != f32::datum_type() || tensor_floats(kernel)? != expected {
        return Ok(None);
    }
    let Some(bias) = model.outlet_fact(node.inputs[2])?.konst.as_ref() else { return Ok(None) };
    let bias = match (bias.datum_type(), bias.len()) {
        (DatumType::F32, 1) => vec![tensor_floats(bias)?[0]; channels],
        (DatumType::F32, n) if n == channels => tensor_floats(bias)?,
        _ => return Ok(None),
    };
    let scales = (0..channels).map(|c| dequantize.scale * scale(c)).collect();
    let values = onnx.values.iter().map(|v| *v as i16).collect();
    let filters = IntegerFilters::new(geometry, dequantize.zero_point, values, scales, bias);
    Ok(Some((x, IntegerDepthwise { batch: side.batch, filters: filters.into() })))
}
