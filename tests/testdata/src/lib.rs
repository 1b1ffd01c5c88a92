//! Reads the bundled models' test cases: `models/<model>/testdata/<variant>/case.json`, its
//! input and onnxruntime's output as `.npy`; [`onnx`] builds small synthetic graphs.

pub mod onnx;

use std::path::{Path, PathBuf};

/// One named f32 tensor of a test case.
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

pub struct Case {
    pub model: Vec<u8>,
    /// The first input (most models have one).
    pub input_name: String,
    pub input_shape: Vec<usize>,
    pub input: Vec<f32>,
    /// onnxruntime's first output.
    pub expected: Vec<f32>,
    /// Every input, in the model's order.
    pub inputs: Vec<Tensor>,
    /// Every output onnxruntime produced, in the model's order.
    pub outputs: Vec<Vec<f32>>,
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

pub fn case(model: &str, variant: &str) -> Case {
    let dir = models_dir().join(model).join("testdata").join(variant);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
    let model_path = dir.join(json["model"].as_str().unwrap());
    let strings =
        |key: &str| json[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect::<Vec<_>>();
    let inputs: Vec<Tensor> = strings("inputs")
        .iter()
        .zip(strings("input_names"))
        .map(|(file, name)| {
            let (shape, data) = npy_with_shape(&dir.join(file));
            Tensor { name, shape, data }
        })
        .collect();
    let outputs: Vec<Vec<f32>> = strings("outputs").iter().map(|file| npy_with_shape(&dir.join(file)).1).collect();
    Case {
        model: std::fs::read(&model_path).unwrap_or_else(|e| panic!("{}: {e}", model_path.display())),
        input_name: inputs[0].name.clone(),
        input_shape: inputs[0].shape.clone(),
        input: inputs[0].data.clone(),
        expected: outputs[0].clone(),
        inputs,
        outputs,
    }
}

/// The case's inputs as a model's declared inputs: names and shapes, f32 (as every bundled
/// case's inputs are).
pub fn specs(case: &Case) -> Vec<inference_api::TensorSpec> {
    let spec = |t: &Tensor| inference_api::TensorSpec {
        name: t.name.clone(),
        shape: t.shape.iter().map(|&d| d as i64).collect(),
        dtype: inference_api::DType::F32,
        max_shape: None,
    };
    case.inputs.iter().map(spec).collect()
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

/// A tabular model's test case (`models/tabular/testdata/<name>/`): 256 rows, scikit-learn's
/// own answers for them, and onnxruntime's outputs.
pub struct Tabular {
    pub model: Vec<u8>,
    pub input_name: String,
    /// [rows, features].
    pub input_shape: Vec<usize>,
    pub input: Vec<f32>,
    /// Class labels, for a classifier.
    pub classlabels: Vec<i64>,
    /// scikit-learn's `predict`: labels for a classifier (as i64)…
    pub sklearn_labels: Vec<i64>,
    /// …or values for a regressor.
    pub sklearn_predictions: Vec<f32>,
    /// onnxruntime's label output (classifiers).
    pub onnxruntime_labels: Vec<i64>,
    /// onnxruntime's scores (classifiers) or values (regressors).
    pub onnxruntime_scores: Vec<f32>,
}

/// The tabular models bundled in `models/tabular`, classifiers first.
pub const TABULAR_CLASSIFIERS: [&str; 8] = [
    "random_forest",
    "extra_trees",
    "gradient_boosting",
    "gradient_boosting_binary",
    "xgboost",
    "lightgbm",
    "svm_pipeline",
    "logistic_regression",
];
pub const TABULAR_REGRESSORS: [&str; 2] = ["random_forest_regressor", "gradient_boosting_regressor"];

fn npy_i64(path: &Path) -> Vec<i64> {
    let array: Result<ndarray::ArrayD<i64>, _> = ndarray_npy::read_npy(path);
    array.unwrap_or_else(|e| panic!("{}: {e}", path.display())).into_raw_vec_and_offset().0
}

pub fn tabular(name: &str) -> Tabular {
    let dir = models_dir().join("tabular/testdata").join(name);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
    let file = |key: &str| json[key].as_str().map(|f| dir.join(f));
    let outputs: Vec<PathBuf> =
        json["outputs"].as_array().unwrap().iter().map(|v| dir.join(v.as_str().unwrap())).collect();
    let (input_shape, input) = npy_with_shape(&dir.join(json["inputs"][0].as_str().unwrap()));
    let classifier = outputs.len() == 2;
    Tabular {
        model: std::fs::read(dir.join(json["model"].as_str().unwrap())).unwrap(),
        input_name: json["input_names"][0].as_str().unwrap().to_string(),
        input_shape,
        input,
        classlabels: json["classlabels"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_i64().unwrap()).collect())
            .unwrap_or_default(),
        sklearn_labels: file("sklearn_labels").map(|p| npy_i64(&p)).unwrap_or_default(),
        sklearn_predictions: file("sklearn_predictions").map(|p| npy_with_shape(&p).1).unwrap_or_default(),
        onnxruntime_labels: if classifier { npy_i64(&outputs[0]) } else { vec![] },
        onnxruntime_scores: npy_with_shape(&outputs[if classifier { 1 } else { 0 }]).1,
    }
}

/// The text models of `models/text` (made by tools/prepare/text_models.py).
pub mod text {
    use super::{models_dir, npy_i64, npy_with_shape};

    /// `models/text/<file>`'s bytes.
    pub fn file(name: &str) -> Vec<u8> {
        let path = models_dir().join("text").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Each sample text's token ids, by tokenizer name.
    pub type TokenIds = Vec<(String, Vec<Vec<u32>>)>;

    /// The sample texts and the ids Python's `tokenizers` gives them, per tokenizer
    /// (`wordpiece`, `bpe`, `unigram`, `all_minilm_l6`).
    pub fn golden_tokens() -> (Vec<String>, TokenIds) {
        let json: serde_json::Value = serde_json::from_slice(&file("tokens.json")).unwrap();
        let sample = json["sample"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
        let ids = json["ids"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, texts)| {
                let texts = texts
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|ids| ids.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect())
                    .collect();
                (name.clone(), texts)
            })
            .collect();
        (sample, ids)
    }

    /// A text model's golden case: the sample's inputs as the canister pads them, and
    /// onnxruntime's outputs for them.
    pub struct TextCase {
        pub model: Vec<u8>,
        /// (name, [rows, tokens], values) in the model's input order.
        pub inputs: Vec<(String, Vec<usize>, Vec<i64>)>,
        /// (name, shape, values).
        pub outputs: Vec<(String, Vec<usize>, Vec<f32>)>,
    }

    pub fn case(name: &str) -> TextCase {
        let dir = models_dir().join("text").join("testdata").join(name);
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
        let names = |key: &str| {
            json[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect::<Vec<_>>()
        };
        let inputs = names("inputs")
            .into_iter()
            .map(|n| {
                let path = dir.join(format!("{n}.npy"));
                (n, shape_of(&path), npy_i64(&path))
            })
            .collect();
        let outputs = names("outputs")
            .into_iter()
            .map(|n| {
                let (shape, values) = npy_with_shape(&dir.join(format!("{n}.npy")));
                (n, shape, values)
            })
            .collect();
        TextCase { model: file(json["model"].as_str().unwrap()), inputs, outputs }
    }

    fn shape_of(path: &std::path::Path) -> Vec<usize> {
        let array: ndarray::ArrayD<i64> = ndarray_npy::read_npy(path).unwrap();
        array.shape().to_vec()
    }
}
