//! Operators we add to tract: registered with tract-onnx's parser for what onnxruntime's tools
//! emit and tract lacks, and passes over tract's models.
//!
//! - [`qoperator`]: the `com.microsoft` QLinear* contrib operators of onnxruntime's QOperator
//!   quantization format (QLinearAdd, QLinearMul, QGemm, QLinearSoftmax, …).
//! - [`quantized_softmax`]: a pass on the typed model that keeps tract's declutter from folding
//!   a quantized Softmax into a per-element lookup table (all ones).
//! - [`qlinear_conv`]: a rewrite of the ONNX graph that gives `QLinearConv` the QDQ form of the
//!   same node, so it runs on tract's f32 convolution like the QDQ models do.
//! - [`dynamic_quantize`]: `DynamicQuantizeLinear` with simd128, bit-identical to tract's.
//! - [`integer_conv`]: int8 convolutions (static and dynamic) computed on the int8 values with
//!   simd128 dot products, instead of on dequantized f32 copies or tract's integer path.
//! - [`qdq`]: quantize and dequantize with wasm simd128, and quantize → dequantize pairs fused,
//!   replacing tract's per-element loops in the optimised plan.

pub mod dynamic_quantize;
mod initializers;
pub mod integer_conv;
pub mod qdq;
pub mod qlinear_conv;
pub mod qoperator;
pub mod quantized_softmax;

use tract_onnx::model::OnnxOpRegister;

/// Adds our operators to a parser's register.
pub fn register(register: &mut OnnxOpRegister) {
    qoperator::register(register);
}
