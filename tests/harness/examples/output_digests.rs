//! Prints a sha256 of every output bit of every bundled model variant (the image and signal models,
//! then the tabular ones on their 256 rows, then the text encoders on 64 token ids), as the inference canister
//! computes it on the local replica: run it on two builds and diff the lines to show that a
//! change left every answer bit-identical.
//!
//! ```sh
//! cargo run -p canister-harness --example output_digests -- [inference_canister.wasm]   # default: this build
//! ```

use canister_harness::deploy::Deployment;
use canister_harness::{canister_wasm, user, LocalBackend};
use inference_api::{DType, InputTensor, Kernels, Pooling, TensorData, TextTask, Truncation};
use inference_client::calls;
use model_testdata::{case, models_dir, tabular, variants, TABULAR_CLASSIFIERS, TABULAR_REGRESSORS};
use sha2::{Digest, Sha256};

fn main() {
    let wasm = match std::env::args().nth(1) {
        Some(path) => std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
        None => canister_wasm("inference_canister"),
    };
    let mut models: Vec<String> = std::fs::read_dir(models_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        // The tabular models' test data has a form of its own (read below), and the text
        // encoders' another (their inputs are texts, `model_testdata::text`).
        .filter(|e| e.path().join("testdata").is_dir() && e.file_name() != "tabular" && e.file_name() != "text")
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    models.sort();
    for model in models {
        let mut d = Deployment::with_module(Box::new(LocalBackend::new()), &model, Kernels::Best, &wasm);
        d.as_admin(calls::allow_caller(user(5))).unwrap();
        for variant in variants(&model) {
            let c = case(&model, &variant);
            let name = format!("{model}.{variant}");
            d.publish(&name, &c, &[]);
            let inputs = canister_harness::cases::inputs(&c);
            println!("{name} {}", digest(&mut d, &name, &inputs));
        }
    }
    // The tabular models, each with its 256 rows as one batch.
    let mut d = Deployment::with_module(Box::new(LocalBackend::new()), "tabular", Kernels::Best, &wasm);
    d.as_admin(calls::allow_caller(user(5))).unwrap();
    for name in TABULAR_CLASSIFIERS.iter().chain(&TABULAR_REGRESSORS) {
        let case = tabular(name);
        let maintainer = d.maintainer;
        let info = d.upload_as(maintainer, name, &case.model, vec![], None, 1 << 20).expect("upload");
        d.call(maintainer, calls::activate(name, info.version)).0.unwrap().expect("activate");
        let rows = InputTensor {
            shape: case.input_shape.iter().map(|&d| d as u64).collect(),
            data: TensorData::F32(case.input.clone()),
        };
        println!("tabular/{name} {}", digest(&mut d, name, &[rows]));
    }
    // The text encoders, on the inference canister's tensor endpoint: 64 varied token ids.
    let mut d = Deployment::with_module(Box::new(LocalBackend::new()), "text", Kernels::Best, &wasm);
    d.as_admin(calls::allow_caller(user(5))).unwrap();
    for (model, tokenizer) in [
        ("bert_l6.dyn_u8.onnx", "wordpiece.json"),
        ("bert_l6.qdq.onnx", "wordpiece.json"),
        ("all_minilm_l6.int8w.onnx", "all_minilm_l6.tokenizer.json"),
    ] {
        let name = model.trim_end_matches(".onnx").replace('.', "_");
        let embed = TextTask::Embed { pooling: Pooling::Mean, normalize: true };
        let info = d.publish_text(&name, model, tokenizer, 512, Truncation::Refuse, embed, &[]);
        let tokens = 64u64;
        let inputs: Vec<InputTensor> = info
            .inputs
            .iter()
            .map(|spec| {
                assert!(matches!(spec.dtype, DType::I64), "{} is not i64", spec.name);
                let value = |i: u64| match spec.name.as_str() {
                    "input_ids" => 100 + (i * 37) % 900,
                    "attention_mask" => 1,
                    _ => 0,
                };
                InputTensor {
                    shape: vec![1, tokens],
                    data: TensorData::I64((0..tokens).map(|i| value(i) as i64).collect()),
                }
            })
            .collect();
        println!("text/{model} {}", digest(&mut d, &name, &inputs));
    }
}

/// The sha256 of every output's bytes of one inference of `name`, in hex.
fn digest(d: &mut Deployment, name: &str, inputs: &[InputTensor]) -> String {
    let out = d.call(user(5), calls::infer(name, None, inputs)).0.unwrap().unwrap();
    let mut digest = Sha256::new();
    for o in &out.outputs {
        digest.update(o.data.to_le_bytes());
    }
    digest.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
