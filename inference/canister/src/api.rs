//! What the canister reports about its own build: the kernels tract selected, and the
//! self-test's outcome.

use inference_api::{PlatformInfo, SelfTestError, SelfTestReport};
use inference_engine::platform::PlatformReport;

pub fn platform_info() -> PlatformInfo {
    let r = PlatformReport::current();
    PlatformInfo {
        wasm_simd_active: r.has_wasm_simd_kernels(),
        isa: r.isa,
        mmm_kernels: r.mmm_kernels,
        sigmoid_f32_kernel: r.sigmoid_f32_kernel,
        routines_registered: r.routines_registered as u64,
    }
}

pub fn self_test_report() -> Result<SelfTestReport, SelfTestError> {
    let outcome = inference_engine::selftest::run().map_err(|e| SelfTestError::Failed(format!("{e:#}")))?;
    Ok(SelfTestReport {
        output_sha256: hex(&outcome.output_sha256),
        output_sum: outcome.output_sum,
        plan: outcome.plan,
        instructions: ic_cdk::api::performance_counter(0),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
