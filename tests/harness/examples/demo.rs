//! The main job on the local replica: install the inference canister and show what it runs and
//! what it costs. (Model upload and classification arrive with the model registry.)

use canister_harness::{backend, canister_wasm, canister_wasm_path, query_candid_as, update_candid_as, user};
use inference_canister::{EngineError, PlatformInfo, SelfTestReport};

fn main() {
    let wasm = canister_wasm("inference_canister");
    let mut ic = backend();
    println!("backend: {}", ic.backend_name());
    println!("module:  {} ({:.2} MiB)", canister_wasm_path("inference_canister").display(), wasm.len() as f64 / 1048576.0);
    let controller = user(1);
    let id = ic.create_canister(controller);
    ic.install_canister(id, &wasm, candid::encode_args(()).unwrap(), controller).expect("install");
    println!("installed inference canister {id}");

    let (platform, cost) = query_candid_as::<_, (PlatformInfo,)>(&mut *ic, id, user(2), "platform_report", ());
    let platform = platform.expect("platform_report").0;
    println!("tract ISA: {}  (wasm simd128 kernels active: {})", platform.isa, platform.wasm_simd_active);
    println!("matmul kernels: {}", platform.mmm_kernels.join(", "));
    println!("platform_report query: {} instructions", cost.instructions.map_or("n/a".into(), |i| i.to_string()));

    for message in 1..=3 {
        let (outcome, cost) =
            update_candid_as::<_, (Result<SelfTestReport, EngineError>,)>(&mut *ic, id, user(2), "self_test", ());
        let report = outcome.expect("self_test").0.expect("self_test succeeded");
        println!(
            "self_test #{message}: output sha256 {}…, sum {:.4}; instructions {} (canister) / {} (replica), messages {}, rounds {}, cycles {}",
            &report.output_sha256[..16],
            report.output_sum,
            report.instructions,
            cost.instructions.map_or("n/a".into(), |i| i.to_string()),
            cost.messages.map_or("n/a".into(), |i| i.to_string()),
            cost.rounds.map_or("n/a".into(), |i| i.to_string()),
            cost.cycles.map_or("n/a".into(), |i| i.to_string()),
        );
        if message == 1 {
            println!("  plan: {}", report.plan.join(" | "));
        }
    }
}
