//! Reads the bundled models' test cases: `models/<model>/testdata/<variant>/case.json`, its
//! input and onnxruntime's output as `.npy`; [`onnx`] builds small synthetic graphs.

pub mod onnx;

use std::path::{Path, PathBuf};

pub struct Case {
    pub model: Vec<u8>,
    pub input_name: String,
    pub input_shape: Vec<usize>,
    pub input: Vec<f32>,
    pub expected: Vec<f32>,
}

pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// A `.npy` file of f32: its shape and its data in row-major order.
pub fn npy_with_shape(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let array: Result<ndarray::ArrayD<f32>, _> = ndarray_npy::read_npy(path);
    let array = array.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (array.shape().to_vec(), array.into_raw_vec_and_offset().0)
}

fn npy(path: &Path) -> Vec<f32> {
    let array: Result<ndarray::ArrayD<f32>, _> = ndarray_npy::read_npy(path);
    array.unwrap_or_else(|e| panic!("{}: {e}", path.display())).into_raw_vec_and_offset().0
}

pub fn case(model: &str, variant: &str) -> Case {
    let dir = models_dir().join(model).join("testdata").join(variant);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
    let model_path = dir.join(json["model"].as_str().unwrap());
    let input_shape = json["input_shapes"][0].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    Case {
        input_name: json["input_names"][0].as_str().unwrap().to_string(),
        model: std::fs::read(&model_path).unwrap_or_else(|e| panic!("{}: {e}", model_path.display())),
        input_shape,
        input: npy(&dir.join(json["inputs"][0].as_str().unwrap())),
        expected: npy(&dir.join(json["outputs"][0].as_str().unwrap())),
    }
}

pub fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap()
}

/// Variants of a bundled model that have a test case, in a stable order.
pub fn variants(model: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(models_dir().join(model).join("testdata"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Largest difference from onnxruntime accepted per variant: float variants compute the same
/// arithmetic; quantized ones differ by rounding in the integer kernels (a step of the int8 grid
/// moves an activation, and it propagates).
pub fn tolerance(variant: &str) -> f32 {
    match variant {
        "fp32" => 1e-5,
        "f16" => 5e-3,
        "dyn_u8" => 1e-2,
        _ => 2e-2,
    }
}

