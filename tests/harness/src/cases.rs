//! The bundled models' test cases (`model_testdata`) as the inference canister takes them.

use inference_api::{InputTensor, TensorData};
use model_testdata::Case;

/// The inputs' names and shapes, to pin at upload.
pub use model_testdata::specs;

/// As a client sends a large f32 tensor: its bytes ([`TensorData::f32_bytes`]).
fn tensor(shape: &[usize], data: &[f32]) -> InputTensor {
    InputTensor { shape: shape.iter().map(|&d| d as u64).collect(), data: TensorData::f32_bytes(data) }
}

/// The case's first input.
pub fn input(case: &Case) -> InputTensor {
    tensor(&case.input_shape, &case.input)
}

/// Every input of the case, in the model's order.
pub fn inputs(case: &Case) -> Vec<InputTensor> {
    case.inputs.iter().map(|t| tensor(&t.shape, &t.data)).collect()
}
