//! Tabular models on the real canister (#14): a 256-row batch through one `classify` gives one
//! classification per row, with scikit-learn's own label for each, for a random forest, a
//! gradient-boosting model and a scaled SVM pipeline; a regressor's batch through `infer`.

use canister_harness::deploy::Deployment;
use canister_harness::user;
use inference_api::{ClassifyRequest, InputTensor, TensorData};
use inference_client::calls;
use model_testdata::tabular;

const CALLER: u8 = 5;

fn deployment() -> Deployment {
    let mut d = Deployment::new("tabular");
    d.as_admin(calls::allow_caller(user(CALLER))).unwrap();
    d
}

fn publish(d: &mut Deployment, name: &str, bytes: &[u8]) {
    let info = d.upload_as(d.maintainer, name, bytes, vec![], None, 1 << 20).expect("upload");
    assert_eq!(info.inputs[0].shape[0], -1, "{name}: the batch stays symbolic");
    let maintainer = d.maintainer;
    d.call(maintainer, calls::activate(name, info.version)).0.unwrap().expect("activate");
}

fn rows(case: &model_testdata::Tabular) -> InputTensor {
    InputTensor {
        shape: case.input_shape.iter().map(|&d| d as u64).collect(),
        data: TensorData::F32(case.input.clone()),
    }
}

#[test]
fn a_batch_of_256_rows_gets_scikit_learns_label_for_each() {
    let mut d = deployment();
    for name in ["random_forest", "gradient_boosting", "svm_pipeline"] {
        let case = tabular(name);
        publish(&mut d, name, &case.model);
        let request = ClassifyRequest { model: name.into(), version: None, input: rows(&case), top_k: Some(2) };
        let answer = d.call(user(CALLER), calls::classify(&request)).0.unwrap().expect("classify");
        assert_eq!(answer.records.len(), 256, "{name}");
        let labels: Vec<i64> = answer.records.iter().map(|r| r.label.as_deref().unwrap().parse().unwrap()).collect();
        assert_eq!(labels, case.sklearn_labels, "{name}");
        // Scores are named by the model's class labels, best first.
        for (record, expected) in
            answer.records.iter().zip(case.onnxruntime_scores.chunks_exact(case.classlabels.len()))
        {
            let best = &record.scores[0];
            assert_eq!(best.label, case.classlabels[best.index as usize].to_string());
            assert!((best.score - expected[best.index as usize]).abs() <= 1e-6, "{name}");
        }
        assert_eq!(answer.labels, answer.records[0].scores);
        eprintln!("{name}: 256 rows in {} messages, {} instructions", answer.messages, answer.instructions);
    }
}

#[test]
fn a_regressor_answers_a_value_per_row() {
    let mut d = deployment();
    let case = tabular("gradient_boosting_regressor");
    publish(&mut d, "regressor", &case.model);
    let out = d.call(user(CALLER), calls::infer("regressor", None, &[rows(&case)])).0.unwrap().expect("infer");
    assert_eq!(out.outputs[0].shape, vec![256, 1]);
    let values = out.outputs[0].data.as_f32().unwrap();
    let worst = values.iter().zip(&case.sklearn_predictions).map(|(a, b)| (a - b).abs() / b.abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-5, "relative difference {worst}");
}

/// A classifier with text class labels (skl2onnx's export of a classifier trained on text
/// targets): `classify` names each record's label and scores by the texts, and `infer` gives
/// the label output as text.
#[test]
fn text_class_labels_come_back_as_text() {
    use model_testdata::onnx::{text_label_tree_model, TEXT_LABELS};
    let mut d = deployment();
    let info = d.upload_as(d.maintainer, "animals", &text_label_tree_model(), vec![], None, 1 << 20).expect("upload");
    assert_eq!(info.labels, TEXT_LABELS, "the classifier's labels are the version's");
    assert_eq!(info.outputs[0].dtype, inference_api::DType::Text);
    let maintainer = d.maintainer;
    d.call(maintainer, calls::activate("animals", info.version)).0.unwrap().expect("activate");
    let input = InputTensor { shape: vec![3, 2], data: TensorData::F32(vec![0.9, 0.9, 0.1, 0.9, 0.1, 0.1]) };
    let request = ClassifyRequest { model: "animals".into(), version: None, input: input.clone(), top_k: Some(1) };
    let answer = d.call(user(CALLER), calls::classify(&request)).0.unwrap().expect("classify");
    let labels: Vec<&str> = answer.records.iter().map(|r| r.label.as_deref().unwrap()).collect();
    assert_eq!(labels, ["bird", "dog", "cat"]);
    let best: Vec<&str> = answer.records.iter().map(|r| r.scores[0].label.as_str()).collect();
    assert_eq!(best, labels, "the scores are named by the same texts");
    let out = d.call(user(CALLER), calls::infer("animals", None, &[input])).0.unwrap().expect("infer");
    assert_eq!(out.outputs[0].data, TensorData::Text(vec!["bird".into(), "dog".into(), "cat".into()]));
}
