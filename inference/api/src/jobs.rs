//! Polling: `submit` a job, read its `status`, fetch its `result`, `cancel` it.

use candid::{CandidType, Deserialize, Principal};

use crate::{Classification, ClassifyRequest, InferRequest, Inference, InferenceError};

/// How long a finished job's result (or error) is kept for its owner: 15 minutes.
pub const RESULT_TTL_NS: u64 = 15 * 60 * 1_000_000_000;

/// Job records kept at most (running and finished, all callers). Beyond it `submit` answers
/// [`crate::JobError::RecordsFull`] until results are fetched and cancelled or expire.
pub const MAX_JOB_RECORDS: u64 = 1024;

/// What to run: a classification (labels) or a raw inference (output tensors).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub enum JobRequest {
    Classify(ClassifyRequest),
    Infer(InferRequest),
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub enum JobResult {
    Classification(Classification),
    Inference(Inference),
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub enum JobStatus {
    /// Steps are the plan's nodes; `messages` so far.
    Running {
        steps_done: u32,
        steps_total: u32,
        messages: u32,
    },
    /// The result is ready; `result` returns it until `expires_at_ns`.
    Done {
        expires_at_ns: u64,
    },
    /// The inference ended with this error.
    Failed {
        error: InferenceError,
        expires_at_ns: u64,
    },
    /// The job ended without finishing: one of its messages trapped, or the canister was
    /// upgraded while it ran. Nothing of it was kept; submit it again.
    Interrupted {
        reason: String,
        expires_at_ns: u64,
    },
    Cancelled {
        expires_at_ns: u64,
    },
}

impl JobStatus {
    /// When a finished job's record is dropped; `None` while it runs.
    pub fn expires_at_ns(&self) -> Option<u64> {
        match self {
            JobStatus::Running { .. } => None,
            JobStatus::Done { expires_at_ns }
            | JobStatus::Failed { expires_at_ns, .. }
            | JobStatus::Interrupted { expires_at_ns, .. }
            | JobStatus::Cancelled { expires_at_ns } => Some(*expires_at_ns),
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self, JobStatus::Running { .. })
    }
}

/// A job as kept in stable memory: its owner and where it stands (its result apart).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct JobRecord {
    pub owner: Principal,
    pub submitted_at_ns: u64,
    pub status: JobStatus,
}
