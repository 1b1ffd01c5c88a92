//! Operators we register with tract-onnx's parser, for what onnxruntime's tools emit and tract
//! lacks.
//!
//! - [`qoperator`]: the `com.microsoft` QLinear* contrib operators of onnxruntime's QOperator
//!   quantization format (QLinearAdd, QLinearMul, QGemm, QLinearSoftmax, …).
//! - [`quantized_softmax`]: a pass on the typed model that keeps tract's declutter from folding
//!   a quantized Softmax into a per-element lookup table (all ones).

pub mod qoperator;
pub mod quantized_softmax;

use tract_onnx::model::OnnxOpRegister;

/// Adds our operators to a parser's register.
pub fn register(register: &mut OnnxOpRegister) {
    qoperator::register(register);
}
