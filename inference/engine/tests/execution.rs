//! Running the bundled models natively against onnxruntime's outputs, and the resumable
//! executor's bit-for-bit determinism across budgets.

use model_testdata as support;

use inference_engine::executor::{run_to_end, Job, Progress};
use inference_engine::model::{inspect, load};
use inference_engine::types::{DType, TensorSpec};
use tract_onnx::prelude::*;

fn outputs(model: &str, variant: &str, split: Option<usize>) -> (Vec<f32>, support::Case) {
    let case = support::case(model, variant);
    let info = inspect(&case.model).unwrap();
    let spec = TensorSpec { name: info.inputs[0].name.clone(), shape: case.input_shape.iter().map(|&d| d as i64).collect(), dtype: DType::F32 };
    let loaded = load(&case.model, &[spec], info.weight_format).unwrap();
    let input = Tensor::from_shape(&case.input_shape, &case.input).unwrap();
    let out = match split {
        None => run_to_end(&loaded.plan, tvec!(input.into())).unwrap(),
        Some(nodes_per_message) => {
            let mut job = Job::new(&loaded.plan, tvec!(input.into())).unwrap();
            let mut messages = 0;
            loop {
                let mut ran = 0;
                messages += 1;
                match job.advance(|| { ran += 1; ran > nodes_per_message }).unwrap() {
                    Progress::Finished(out) => break out,
                    Progress::Paused { .. } => assert!(messages < 10_000),
                }
            }
        }
    };
    let view = out[0].try_as_plain_ram().unwrap();
    (view.as_slice::<f32>().unwrap().to_vec(), case)
}

#[test]
fn f32_model_matches_onnxruntime() {
    let (got, case) = outputs("rapidocr_cls", "fp32", None);
    assert_eq!(got.len(), case.expected.len());
    for (g, e) in got.iter().zip(&case.expected) {
        assert!((g - e).abs() <= 1e-5, "{got:?} vs {:?}", case.expected);
    }
    assert_eq!(support::argmax(&got), support::argmax(&case.expected));
}

#[test]
fn output_bits_do_not_depend_on_the_split() {
    let (whole, _) = outputs("rapidocr_cls", "fp32", None);
    for nodes in [1, 3, 17] {
        let (split, _) = outputs("rapidocr_cls", "fp32", Some(nodes));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&split), bits(&whole), "{nodes} nodes per message");
    }
}
