//! Candid types of the public interface and their conversions from engine types.

use candid::CandidType;
use inference_engine::platform::PlatformReport;
use serde::Deserialize;

/// Which tract kernels the canister runs with.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PlatformInfo {
    pub isa: String,
    pub mmm_kernels: Vec<String>,
    pub sigmoid_f32_kernel: Option<String>,
    pub routines_registered: u64,
    pub wasm_simd_active: bool,
}

impl From<PlatformReport> for PlatformInfo {
    fn from(r: PlatformReport) -> Self {
        PlatformInfo {
            wasm_simd_active: r.has_wasm_simd_kernels(),
            isa: r.isa,
            mmm_kernels: r.mmm_kernels,
            sigmoid_f32_kernel: r.sigmoid_f32_kernel,
            routines_registered: r.routines_registered as u64,
        }
    }
}

/// What the self-test computed, and what it cost in this message.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct SelfTestReport {
    pub output_sha256: String,
    pub output_sum: f32,
    pub plan: Vec<String>,
    pub instructions: u64,
}

/// Errors of the engine, as candid variants.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// tract could not build or run a graph; the text is tract's own chain of context.
    Tract(String),
}

pub(crate) fn self_test_report() -> Result<SelfTestReport, EngineError> {
    let outcome =
        inference_engine::selftest::run().map_err(|e| EngineError::Tract(format!("{e:?}")))?;
    Ok(SelfTestReport {
        output_sha256: hex(&outcome.output_sha256),
        output_sum: outcome.output_sum,
        plan: outcome.plan,
        instructions: ic_cdk::api::performance_counter(0),
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who holds which role (controllers, the admins, are not listed: the IC knows them).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Roles {
    pub maintainers: Vec<candid::Principal>,
    pub callers: Vec<candid::Principal>,
}
