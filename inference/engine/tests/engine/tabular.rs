//! Tabular models (scikit-learn, XGBoost and LightGBM through skl2onnx) run natively on our
//! ONNX-ML operators: 256 rows in one batch give scikit-learn's own labels (or values) and
//! onnxruntime's scores.

use inference_engine::executor::run_to_end;
use inference_engine::model::{inspect, load};
use inference_engine::types::{DType, TensorSpec};
use model_testdata::{tabular, Tabular, TABULAR_CLASSIFIERS, TABULAR_REGRESSORS};
use tract_onnx::prelude::*;

fn run(case: &Tabular) -> TVec<TValue> {
    let info = inspect(&case.model).unwrap();
    assert!(info.unsupported.is_empty(), "{:?}", info.unsupported);
    assert_eq!(info.inputs[0].shape[0], -1, "the batch stays symbolic in the model's declaration");
    let spec = TensorSpec::new(&case.input_name, case.input_shape.iter().map(|&d| d as i64).collect(), DType::F32);
    let loaded = load(&case.model, &[spec], info.weight_format).unwrap();
    let input = Tensor::from_shape(&case.input_shape, &case.input).unwrap();
    run_to_end(&loaded.plan, tvec!(input.into())).unwrap()
}

fn f32s(v: &TValue) -> Vec<f32> {
    v.cast_to::<f32>().unwrap().try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
}

#[test]
fn classifiers_give_scikit_learns_labels_and_onnxruntimes_scores() {
    for name in TABULAR_CLASSIFIERS {
        let case = tabular(name);
        let out = run(&case);
        let labels = out[0].try_as_plain_ram().unwrap().as_slice::<i64>().unwrap().to_vec();
        assert_eq!(labels, case.sklearn_labels, "{name}: labels");
        assert_eq!(labels, case.onnxruntime_labels, "{name}: onnxruntime's labels");
        let scores = f32s(&out[1]);
        assert_eq!(scores.len(), case.onnxruntime_scores.len(), "{name}");
        let worst = scores.iter().zip(&case.onnxruntime_scores).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-5, "{name}: scores differ from onnxruntime's by {worst}");
        eprintln!("{name}: 256 labels equal, scores within {worst:.1e}");
    }
}

#[test]
fn regressors_give_scikit_learns_values() {
    for name in TABULAR_REGRESSORS {
        let case = tabular(name);
        let values = f32s(&run(&case)[0]);
        let worst = values.iter().zip(&case.onnxruntime_scores).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-4, "{name}: values differ from onnxruntime's by {worst}");
        let worst = values
            .iter()
            .zip(&case.sklearn_predictions)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0f32, f32::max);
        assert!(worst <= 1e-5, "{name}: values differ from scikit-learn's by {worst} (relative)");
    }
}

/// A classifier with text class labels (`classlabels_strings`, what skl2onnx writes for text
/// targets) answers the texts, and its labels become the version's.
#[test]
fn a_classifier_with_text_labels_answers_the_texts() {
    use model_testdata::onnx::{text_label_tree_model, TEXT_LABELS};
    let model = text_label_tree_model();
    let info = inspect(&model).unwrap();
    assert!(info.unsupported.is_empty(), "{:?}", info.unsupported);
    assert_eq!(info.class_labels, TEXT_LABELS);
    assert_eq!(info.outputs[0].dtype, DType::Text);
    let rows = [0.9f32, 0.9, 0.1, 0.9, 0.1, 0.1, 0.6, 0.0];
    let loaded = load(&model, &[TensorSpec::new("x", vec![4, 2], DType::F32)], info.weight_format).unwrap();
    let out = run_to_end(&loaded.plan, tvec!(Tensor::from_shape(&[4, 2], &rows).unwrap().into())).unwrap();
    let labels = out[0].try_as_plain_ram().unwrap().as_slice::<String>().unwrap().to_vec();
    assert_eq!(labels, ["bird", "dog", "cat", "bird"]);
    assert_eq!(f32s(&out[1]), [0., 0., 1., 0., 1., 0., 1., 0., 0., 0., 0., 1.]);
}
