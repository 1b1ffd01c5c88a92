//! Prints a sha256 of every output bit of every bundled model variant, as the inference canister
//! computes it on the local replica: run it on two builds and diff the lines to show that a
//! change left every answer bit-identical.
//!
//! ```sh
//! cargo run -p canister-harness --example output_digests -- [inference_canister.wasm]   # default: this build
//! ```

use canister_harness::deploy::Deployment;
use canister_harness::{canister_wasm, user, LocalBackend};
use inference_api::Kernels;
use inference_client::calls;
use model_testdata::{case, models_dir, variants};
use sha2::{Digest, Sha256};

fn main() {
    let wasm = match std::env::args().nth(1) {
        Some(path) => std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
        None => canister_wasm("inference_canister"),
    };
    let mut models: Vec<String> = std::fs::read_dir(models_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("testdata").is_dir())
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
            let out = d.call(user(5), calls::infer(&name, None, &inputs)).0.unwrap().unwrap();
            let mut digest = Sha256::new();
            for o in &out.outputs {
                digest.update(o.data.to_le_bytes());
            }
            let hex: String = digest.finalize().iter().map(|b| format!("{b:02x}")).collect();
            println!("{name} {hex}");
        }
    }
}
