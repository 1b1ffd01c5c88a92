//! Administration: settings, roles, install arguments, and what the canister reports about its
//! own build.

use candid::{CandidType, Deserialize, Principal};

use crate::ConfigError;

/// Settings admins can change; kept in stable memory.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Instructions an inference may use in one message before yielding to a new one. The
    /// IC's limit is 40 B; the default keeps a 10 B margin for the largest node and the reply.
    pub update_budget: u64,
    /// The same for queries (limit 5 B).
    pub query_budget: u64,
    /// Inference jobs in flight at once; beyond it callers get `Busy`.
    pub max_jobs: u32,
    /// Largest input accepted, in elements.
    pub max_input_elements: u64,
}

impl Config {
    /// The most an update message may be given: a margin under the IC's 40 B-instruction limit
    /// for the node that crosses the budget and the reply.
    pub const MAX_UPDATE_BUDGET: u64 = 35_000_000_000;
    /// The same under the IC's 5 B-instruction limit of a query.
    pub const MAX_QUERY_BUDGET: u64 = 4_500_000_000;

    /// Every setting within what the IC can run; the first one that is not, named.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |field: &str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange { field: field.into(), value, min, max })
            }
        };
        check("update_budget", self.update_budget, 1, Self::MAX_UPDATE_BUDGET)?;
        check("query_budget", self.query_budget, 0, Self::MAX_QUERY_BUDGET)?;
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config { update_budget: 30_000_000_000, query_budget: 4_000_000_000, max_jobs: 32, max_input_elements: 4 << 20 }
    }
}

/// Who holds which role (controllers, the admins, are not listed: the IC knows them).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Roles {
    pub maintainers: Vec<Principal>,
    pub callers: Vec<Principal>,
}

/// Which of tract's kernels a canister computes with.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Kernels {
    /// The best tract has here: its hand-written wasm simd128 kernels.
    #[default]
    Best,
    /// tract's generic Rust kernels, for benchmarking the SIMD kernels' gain (the rest of the
    /// code is the same build: LLVM may still vectorise the generic loops itself).
    Generic,
}

/// Install and upgrade argument; everything in it is optional (`dfx deploy` needs none).
#[derive(CandidType, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct InitArgs {
    /// `Generic` computes with tract's generic kernels instead of its simd128 ones — for the
    /// benchmarks' side-by-side baseline, never for serving. Lasts until the next upgrade (pass
    /// it again there to keep it).
    pub kernels: Option<Kernels>,
}

/// Which tract kernels the canister runs with.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PlatformInfo {
    pub isa: String,
    pub mmm_kernels: Vec<String>,
    pub sigmoid_f32_kernel: Option<String>,
    pub routines_registered: u64,
    pub wasm_simd_active: bool,
}

/// What the self-test computed, and what it cost in this message.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct SelfTestReport {
    pub output_sha256: String,
    pub output_sum: f32,
    pub plan: Vec<String>,
    pub instructions: u64,
}
