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
    /// Inference jobs in flight at once for one caller, so one agency cannot hold every slot
    /// (`CallerBusy` beyond it; `max_jobs` still bounds the total).
    pub max_jobs_per_caller: u32,
    /// Polling-job records (running jobs and unfetched results) one caller may hold, so one
    /// agency cannot fill every record by never fetching.
    pub max_records_per_caller: u32,
    /// Unfinished uploads one maintainer may hold (each holds a model slot).
    pub max_uploads_per_maintainer: u32,
    /// An unfinished upload untouched for this long is dropped, freeing its slot.
    pub upload_ttl_ns: u64,
    /// Instructions one caller's inferences may use per `quota_window_ns`; beyond it new ones
    /// are refused with `QuotaExceeded` until the window ends (a running job finishes). Queries
    /// are refused once the quota is spent, but their own instructions cannot be counted: the IC
    /// discards every state change a query makes.
    pub instruction_quota_per_caller: u64,
    pub quota_window_ns: u64,
    /// Heap the cache of built plans may hold, estimated from the models' sizes; the least
    /// recently used plans are dropped beyond it and rebuilt on their next use.
    pub plan_cache_bytes: u64,
}

impl Config {
    /// The most an update message may be given: a margin under the IC's 40 B-instruction limit
    /// for the node that crosses the budget and the reply.
    pub const MAX_UPDATE_BUDGET: u64 = 35_000_000_000;
    /// The same under the IC's 5 B-instruction limit of a query.
    pub const MAX_QUERY_BUDGET: u64 = 4_500_000_000;
    /// A zero budget would silently refuse every query (or stall every update); any other
    /// budget serves (the smallest runs one node per message, which the determinism tests use).
    pub const MIN_BUDGET: u64 = 1;
    /// Jobs in flight at once: each holds its inputs and intermediate tensors in the heap.
    pub const MAX_JOBS: u32 = 256;
    /// An input of more elements cannot arrive in one inter-canister message (10 MiB) anyway.
    pub const MAX_INPUT_ELEMENTS: u64 = 10 << 20;
    /// As many uploads as there are model slots.
    pub const MAX_UPLOADS: u32 = 239;
    pub const MIN_UPLOAD_TTL_NS: u64 = 3_600 * 1_000_000_000;
    pub const MAX_UPLOAD_TTL_NS: u64 = 90 * 24 * 3_600 * 1_000_000_000;
    pub const MIN_QUOTA_WINDOW_NS: u64 = 1_000_000_000;
    pub const MAX_QUOTA_WINDOW_NS: u64 = 24 * 3_600 * 1_000_000_000;
    /// A plan larger than the budget is still kept while in use, so a small budget is safe.
    pub const MIN_PLAN_CACHE_BYTES: u64 = 4 << 20;
    /// Under the wasm32 heap's 4 GiB, with room for jobs and the stable-memory reads of a build.
    pub const MAX_PLAN_CACHE_BYTES: u64 = 3 << 30;

    /// Every setting within what the IC can run; the first one that is not, named.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |field: &str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange { field: field.into(), value, min, max })
            }
        };
        check("update_budget", self.update_budget, Self::MIN_BUDGET, Self::MAX_UPDATE_BUDGET)?;
        check("query_budget", self.query_budget, Self::MIN_BUDGET, Self::MAX_QUERY_BUDGET)?;
        check("max_jobs", self.max_jobs.into(), 1, Self::MAX_JOBS.into())?;
        check("max_input_elements", self.max_input_elements, 1, Self::MAX_INPUT_ELEMENTS)?;
        check("max_jobs_per_caller", self.max_jobs_per_caller.into(), 1, Self::MAX_JOBS.into())?;
        check("max_records_per_caller", self.max_records_per_caller.into(), 1, crate::MAX_JOB_RECORDS)?;
        check("max_uploads_per_maintainer", self.max_uploads_per_maintainer.into(), 1, Self::MAX_UPLOADS.into())?;
        check("upload_ttl_ns", self.upload_ttl_ns, Self::MIN_UPLOAD_TTL_NS, Self::MAX_UPLOAD_TTL_NS)?;
        check("instruction_quota_per_caller", self.instruction_quota_per_caller, 1, u64::MAX)?;
        check("quota_window_ns", self.quota_window_ns, Self::MIN_QUOTA_WINDOW_NS, Self::MAX_QUOTA_WINDOW_NS)?;
        check("plan_cache_bytes", self.plan_cache_bytes, Self::MIN_PLAN_CACHE_BYTES, Self::MAX_PLAN_CACHE_BYTES)?;
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            update_budget: 30_000_000_000,
            query_budget: 4_000_000_000,
            max_jobs: 32,
            max_input_elements: 4 << 20,
            max_jobs_per_caller: 8,
            max_records_per_caller: 256,
            max_uploads_per_maintainer: 4,
            upload_ttl_ns: 7 * 24 * 3_600 * 1_000_000_000,
            plan_cache_bytes: 1 << 30,
            // About 2 000 inferences of a 1 B-instruction model per caller and hour.
            instruction_quota_per_caller: 2_000_000_000_000,
            quota_window_ns: 3_600 * 1_000_000_000,
        }
    }
}

/// Who holds which role (controllers, the admins, are not listed: the IC knows them).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Roles {
    pub maintainers: Vec<Principal>,
    pub callers: Vec<Principal>,
    /// The other members of this canister's pool (`set_pool`).
    pub peers: Vec<Principal>,
    /// The text front canisters (`allow_front`).
    pub fronts: Vec<Principal>,
    /// They read the audit log.
    pub auditors: Vec<Principal>,
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

/// The plans the canister holds in its heap, against the configured budget.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PlanCacheReport {
    pub plans: u32,
    /// Estimated from the models' sizes (see `Config::plan_cache_bytes`).
    pub estimated_bytes: u64,
    pub budget_bytes: u64,
}
