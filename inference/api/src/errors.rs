//! The errors of each family of endpoints. Every variant is a state the caller can act on;
//! strings carry explanations for people (never Rust Debug output).

use candid::{CandidType, Deserialize, Principal};
use thiserror::Error;

use crate::{AuditError, ChunkRange, DType, ShapeMismatch};

/// The role an endpoint requires.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A controller of the canister.
    Admin,
    /// Granted by an admin: uploads and manages models.
    Maintainer,
    /// Allowed by an admin to run inference (an agency canister, or a principal allowed
    /// explicitly).
    Caller,
    /// The canister itself (its internal continuation and plan-building calls).
    ThisCanister,
    /// A fellow member of this canister's pool (set by an admin with `set_pool`): reads the
    /// registry and copies model versions from it.
    Peer,
    /// A text front canister (granted by an admin): tokenizes for allowed callers and runs the
    /// token endpoints on their behalf, under their access and quota.
    Front,
    /// Granted by an admin: reads the audit log.
    Auditor,
}

/// The one shape of every refusal for lack of a role.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Error)]
#[error("{caller} may not call this: it needs the {needs} role")]
pub struct NotAuthorized {
    pub caller: Principal,
    pub needs: Role,
}

/// Errors of the model registry's endpoints: each leaves the registry unchanged.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Error)]
pub enum RegistryError {
    #[error(transparent)]
    NotAuthorized(NotAuthorized),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("no upload {0} (finished, aborted, expired, or never started)")]
    UnknownUpload(u64),
    /// Only the maintainer who started an upload (or an admin) may change it.
    #[error("upload {upload_id} belongs to {owner}")]
    NotUploadOwner { upload_id: u64, owner: Principal },
    /// The caller holds as many unfinished uploads as a maintainer may: finish or abort one.
    #[error("you hold {limit} unfinished uploads, the most allowed: finish or abort one")]
    UploadQuotaExceeded { limit: u32 },
    /// The chunk size would split the model into more chunks than an upload tracks.
    #[error("{chunk_count} chunks are more than the {max} an upload may have: use larger chunks")]
    TooManyChunks { chunk_count: u64, max: u32 },
    #[error("chunk {index} is out of range: the upload has {chunk_count} chunks")]
    ChunkIndexOutOfRange { index: u32, chunk_count: u32 },
    #[error("a chunk of {size} bytes exceeds the limit of {max}")]
    ChunkTooLarge { size: u64, max: u64 },
    #[error("chunk {index} has {got} bytes; {expected} expected")]
    ChunkWrongSize { index: u32, expected: u64, got: u64 },
    #[error("chunk {index}'s bytes do not match its sha256")]
    ChunkHashMismatch { index: u32 },
    /// Found at finish: these chunks' bytes do not match their declared sha256. They were
    /// dropped from the upload; send them again (the uploader's resume does) and finish again.
    #[error("chunks {} were corrupt in stable memory and were dropped: send them again", list(indices))]
    CorruptChunks { indices: Vec<u32> },
    #[error("chunk {index} was already received with other bytes")]
    ConflictingChunk { index: u32 },
    #[error("chunks {} are still missing", ranges(missing))]
    ChunksMissing { missing: Vec<ChunkRange> },
    #[error("the model's sha256 does not match the declared one")]
    ModelHashMismatch { declared: Vec<u8>, actual: Vec<u8> },
    #[error("the model cannot be used: {0}")]
    InvalidModel(String),
    #[error("operators no parser here supports: {}", .0.join(", "))]
    UnsupportedOperators(Vec<String>),
    #[error("no model named \"{0}\"")]
    UnknownModel(String),
    #[error("model \"{name}\" has no version {version}")]
    UnknownVersion { name: String, version: u32 },
    #[error("\"{name}\" v{version} is active: activate or roll back to another version first")]
    VersionActive { name: String, version: u32 },
    #[error("\"{0}\" has no earlier version to roll back to")]
    NothingToRollBackTo(String),
    #[error("stable memory is full")]
    OutOfStableMemory,
    /// A pool member copying a version from `peer` (`replicate`) got no usable answer from it:
    /// the peer is unreachable, stopped, or refused (this canister must be one of its
    /// maintainers). The upload stays; replicating again resumes it.
    #[error("copying from {peer} failed: {message}")]
    PeerFailed { peer: Principal, message: String },
    /// A catch-up with the pool is already running (`catch_up`, or the one `set_pool` started).
    #[error("this canister is already catching up with its pool")]
    CatchUpRunning,
}

/// Errors of running a model (`classify`, `classify_query`, `infer`, `profile`, and a job's
/// failure).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Error)]
pub enum InferenceError {
    #[error(transparent)]
    NotAuthorized(NotAuthorized),
    #[error("no model named \"{0}\"")]
    UnknownModel(String),
    #[error("model \"{name}\" has no version {version}")]
    UnknownVersion { name: String, version: u32 },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// An input's shape does not fit the model's declaration of it (`declared`: -1 for a
    /// symbolic dimension; `max_shape`, when a maintainer bounded them).
    #[error("input \"{input}\" has shape {shape:?}, which does not fit {declared:?}: {mismatch}")]
    InputShape {
        input: String,
        shape: Vec<u64>,
        declared: Vec<i64>,
        max_shape: Option<Vec<u64>>,
        mismatch: ShapeMismatch,
    },
    /// An input's data are of another element type than the model takes.
    #[error("input \"{input}\" takes {expected} data, got {got}")]
    InputDType { input: String, expected: DType, got: DType },
    /// Too many inferences in flight; try again later.
    #[error("{in_flight} inferences are in flight, the limit is {limit}: try again later")]
    Busy { in_flight: u32, limit: u32 },
    /// The canister is stopping (e.g. for an upgrade); the inference was abandoned.
    #[error("the canister is stopping; try again once it runs again")]
    Stopping,
    /// The model does not fit a query's budget; use `classify`.
    #[error("the model needs more than a query's {budget} instructions: use the update call")]
    TooExpensiveForQuery { budget: u64 },
    /// The caller has as many inferences in flight as one caller may; try again later.
    #[error("you have {in_flight} inferences in flight, the most one caller may: try again later")]
    CallerBusy { in_flight: u32, limit: u32 },
    /// The caller spent its instruction quota for this window; try again after `retry_after_ns`.
    #[error("your instruction quota for this window is spent: try again in {retry_after_ns} ns")]
    QuotaExceeded { retry_after_ns: u64 },
    /// The version exists but neither is active nor was enabled by a maintainer.
    #[error("\"{name}\" v{version} is not serving: only the active version and versions maintainers enabled run")]
    VersionNotServing { name: String, version: u32 },
    /// The outputs would not fit in a reply; nothing is returned.
    #[error("the outputs take {bytes} bytes, more than a reply's {max}")]
    OutputTooLarge { bytes: u64, max: u64 },
    /// The model could not be built or run; tract's explanation.
    #[error("the engine failed: {0}")]
    Engine(String),
    /// Continuing in the next message failed.
    #[error("continuing in a new message failed: {0}")]
    CallFailed(String),
    /// The texts of `classify_text` or `embed_text` were refused.
    #[error(transparent)]
    Text(#[from] crate::TextError),
    /// A text front's call to its inference canister failed (rejected, or a reply that did not
    /// decode); nothing ran.
    #[error("the inference canister could not be reached: {0}")]
    Unreachable(String),
}

/// Errors of the polling endpoints (`submit`, `status`, `result`, `cancel`).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Error)]
pub enum JobError {
    /// Refused at submission, or the job's inference failed.
    #[error(transparent)]
    Inference(InferenceError),
    /// Every job record is taken (by running jobs and results not yet fetched); try later.
    #[error("all {limit} job records are taken: fetch or cancel results, or try later")]
    RecordsFull { limit: u32 },
    /// The caller holds as many job records as one caller may: fetch or cancel results.
    #[error("you hold {limit} job records, the most one caller may: fetch or cancel results")]
    CallerRecordsFull { limit: u32 },
    /// No job with this id belongs to the caller (never submitted, someone else's, or expired).
    #[error("no job {0} of yours (never submitted, someone else's, or expired)")]
    UnknownJob(u64),
    /// The job is still running; ask again later.
    #[error("the job is still running ({steps_done} of {steps_total} steps)")]
    Pending { steps_done: u32, steps_total: u32 },
    /// The job was cancelled by its submitter.
    #[error("the job was cancelled")]
    Cancelled,
    /// The job ended without finishing: one of its messages trapped, or the canister was
    /// upgraded while it ran. Nothing of it was kept; submit it again.
    #[error("the job was interrupted: {0}")]
    Interrupted(String),
}

/// Errors of granting and revoking roles.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Error)]
pub enum RoleError {
    #[error(transparent)]
    NotAuthorized(NotAuthorized),
    /// The anonymous principal can hold no role.
    #[error("the anonymous principal cannot hold a role")]
    AnonymousPrincipal,
}

/// Errors of `set_config`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error(transparent)]
    NotAuthorized(NotAuthorized),
    #[error("{field} = {value} is outside {min}..={max}")]
    OutOfRange { field: String, value: u64, min: u64, max: u64 },
}

/// Errors of the maintainers' self-test.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Error)]
pub enum SelfTestError {
    #[error(transparent)]
    NotAuthorized(NotAuthorized),
    /// A kernel check or the fixed graph failed; tract's or the check's explanation.
    #[error("the self-test failed: {0}")]
    Failed(String),
}

/// `[1, 2, 3]` for people, from a list of indices.
fn ranges(ranges: &[ChunkRange]) -> String {
    let items: Vec<String> = ranges.iter().map(ChunkRange::to_string).collect();
    format!("[{}]", items.join(", "))
}

fn list(indices: &[u32]) -> String {
    let items: Vec<String> = indices.iter().map(u32::to_string).collect();
    format!("[{}]", items.join(", "))
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin (controller)",
            Role::Maintainer => "maintainer",
            Role::Caller => "allowed caller",
            Role::ThisCanister => "this canister",
            Role::Peer => "pool member",
            Role::Front => "text front",
            Role::Auditor => "auditor",
        })
    }
}

/// Every endpoint family's error has a `NotAuthorized` variant of the one shape.
macro_rules! refusal_converts_into {
    ($($error:ident),*) => {$(
        impl From<NotAuthorized> for $error {
            fn from(e: NotAuthorized) -> Self {
                $error::NotAuthorized(e)
            }
        }
    )*};
}
refusal_converts_into!(RegistryError, InferenceError, RoleError, ConfigError, SelfTestError, AuditError);

impl From<NotAuthorized> for JobError {
    fn from(e: NotAuthorized) -> Self {
        JobError::Inference(InferenceError::NotAuthorized(e))
    }
}
impl From<InferenceError> for JobError {
    fn from(e: InferenceError) -> Self {
        JobError::Inference(e)
    }
}

impl InferenceError {
    /// The variant's name, as the audit log records a refused inference.
    pub fn code(&self) -> &'static str {
        match self {
            InferenceError::NotAuthorized(_) => "NotAuthorized",
            InferenceError::UnknownModel(_) => "UnknownModel",
            InferenceError::UnknownVersion { .. } => "UnknownVersion",
            InferenceError::InvalidInput(_) => "InvalidInput",
            InferenceError::InputShape { .. } => "InputShape",
            InferenceError::InputDType { .. } => "InputDType",
            InferenceError::Busy { .. } => "Busy",
            InferenceError::Stopping => "Stopping",
            InferenceError::TooExpensiveForQuery { .. } => "TooExpensiveForQuery",
            InferenceError::CallerBusy { .. } => "CallerBusy",
            InferenceError::QuotaExceeded { .. } => "QuotaExceeded",
            InferenceError::VersionNotServing { .. } => "VersionNotServing",
            InferenceError::OutputTooLarge { .. } => "OutputTooLarge",
            InferenceError::Engine(_) => "Engine",
            InferenceError::CallFailed(_) => "CallFailed",
            InferenceError::Text(_) => "Text",
            InferenceError::Unreachable(_) => "Unreachable",
        }
    }
}

/// A registry refusal met while preparing an inference: the model and version errors keep
/// their meaning, the rest (the registry's own state) is the engine's failure to serve.
impl From<RegistryError> for InferenceError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::UnknownModel(name) => InferenceError::UnknownModel(name),
            RegistryError::UnknownVersion { name, version } => InferenceError::UnknownVersion { name, version },
            RegistryError::NotAuthorized(e) => InferenceError::NotAuthorized(e),
            other => InferenceError::Engine(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Callers read these sentences: no Rust Debug output (no `{ .. }`, no `Some(..)`).
    #[test]
    fn errors_read_as_sentences() {
        let caller = Principal::anonymous();
        let refused = InferenceError::NotAuthorized(NotAuthorized { caller, needs: Role::Caller });
        assert_eq!(refused.to_string(), "2vxsx-fae may not call this: it needs the allowed caller role");
        let missing = RegistryError::ChunksMissing { missing: ChunkRange::covering([0, 3, 4, 5]) };
        assert_eq!(missing.to_string(), "chunks [0, 3..6] are still missing");
        let version = RegistryError::UnknownVersion { name: "cls".into(), version: 3 };
        assert_eq!(InferenceError::from(version).to_string(), "model \"cls\" has no version 3");
        let records = JobError::RecordsFull { limit: 1024 };
        assert_eq!(records.to_string(), "all 1024 job records are taken: fetch or cancel results, or try later");
    }
}
