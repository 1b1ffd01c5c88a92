//! Polling: `submit` a job and get its id at once, ask its `status`, fetch its `result`,
//! `cancel` it — for callers that prefer not to hold a call open for the whole inference.
//!
//! A submitted job runs in a task spawned in the `submit` message, continuing across messages by
//! awaiting calls to this canister like `classify` does; the caller's reply is sent first. The
//! job's record is the engine's ([`inference_engine::jobs`]): in stable memory, visible only to
//! its submitter, ended `Interrupted` (never silently lost) when a message of the job traps or
//! the canister is upgraded while it runs. Inputs are never stored.
//!
//! Job ids are derived from a secret drawn from the management canister's `raw_rand`, so they
//! reveal nothing (how many jobs ran, whose they are). The secret lives on the heap: `init` and
//! `post_upgrade` may not call, so the first `submit` after either draws it.

use candid::Principal;
use ic_cdk::call::Call;
use inference_api::{InferenceError, JobError, JobRequest, JobResult, JobStatus};
use inference_engine::jobs::{Advance, IdKey};

use crate::audit::{self, Pending};
use crate::inference::Awaiting;
use crate::{auth, inference, state};

/// Validates the request and starts the job; errors that need no computation come back here.
/// The job is logged when it ends (its result carries the receipt), a refusal here at once.
pub async fn submit(caller: Principal, request: JobRequest) -> Result<u64, JobError> {
    let (model, version, inputs) = match &request {
        JobRequest::Classify(r) => (&r.model, r.version, std::slice::from_ref(&r.input)),
        JobRequest::Infer(r) => (&r.model, r.version, &r.inputs[..]),
    };
    let pending = Pending::begin(caller, None, "submit", model, version, || audit::inputs_sha256(inputs))?;
    match start(caller, request).await {
        Ok((id, prepared, top_k)) => {
            spawn(id, prepared, top_k, pending);
            Ok(id)
        }
        Err(refused) => Err(pending.refused(refused)),
    }
}

type TopK = Option<Option<u32>>;

async fn start(caller: Principal, request: JobRequest) -> Result<(u64, inference::Prepared, TopK), JobError> {
    let per_caller = state::with(|s| s.config.get().max_records_per_caller);
    // Refused before the awaits below (a random key, the plan), so that a full table costs the
    // caller no call; `Jobs::start` checks again after them, since other calls may have taken
    // records meanwhile.
    state::with_mut(|s| s.jobs.check_capacity(caller, per_caller, ic_cdk::api::time()))?;
    let key = id_key().await?;
    let rule = auth::inference_caller;
    rule(caller)?;
    let (prepared, top_k) = match &request {
        JobRequest::Classify(r) => {
            let info = inference::serving(&r.model, r.version)?;
            (inference::prepare(caller, rule, info, std::slice::from_ref(&r.input), false).await?, Some(r.top_k))
        }
        JobRequest::Infer(r) => {
            let info = inference::serving(&r.model, r.version)?;
            (inference::prepare(caller, rule, info, &r.inputs, false).await?, None)
        }
    };
    let id = state::with_mut(|s| s.jobs.start(caller, per_caller, ic_cdk::api::time(), &key))?;
    Ok((id, prepared, top_k))
}

/// Runs a started job in a task of its own, to its end, and logs that end.
fn spawn(id: u64, prepared: inference::Prepared, top_k: TopK, pending: Pending) {
    ic_cdk::futures::spawn(async move {
        let guard = Unfinished(id);
        // Cancelled by its submitter: the job stops at its next pause and its record stays
        // `Cancelled`.
        let Ok(outcome) = prepared.drive(|advance: Advance| state::with_mut(|s| s.jobs.progress(id, advance))).await
        else {
            pending.refused(JobError::Cancelled);
            std::mem::forget(guard);
            return;
        };
        let outcome = outcome.and_then(|outcome| {
            let output_sha256 = outcome.output_sha256()?;
            let result = match top_k {
                Some(top_k) => inference::classification(outcome, top_k).map(JobResult::Classification),
                None => inference::inference(outcome).map(JobResult::Inference),
            }?;
            Ok((result, output_sha256))
        });
        let outcome = pending.close(outcome);
        state::with_mut(|s| s.jobs.finish(id, outcome, ic_cdk::api::time()));
        std::mem::forget(guard);
    });
}

/// The key job ids are derived from: drawn from `raw_rand` once per heap. Two `submit`s that
/// both draw keep the first key that arrives.
async fn id_key() -> Result<IdKey, JobError> {
    if let Some(key) = state::with(|s| s.job_id_key) {
        return Ok(key);
    }
    let drawn = {
        let _awaiting = Awaiting::begin();
        Call::unbounded_wait(Principal::management_canister(), "raw_rand").await
    };
    let failed = |e: String| JobError::Inference(InferenceError::CallFailed(format!("raw_rand: {e}")));
    let bytes: Vec<u8> = drawn.map_err(|e| failed(e.to_string()))?.candid().map_err(|e| failed(e.to_string()))?;
    let key = IdKey(bytes.try_into().map_err(|_| failed("not 32 bytes".into()))?);
    Ok(state::with_mut(|s| *s.job_id_key.get_or_insert(key)))
}

/// Marks its job interrupted if dropped before the job finished: the task was cancelled
/// because one of its messages trapped (this runs in the call's cleanup, which is kept).
struct Unfinished(u64);

impl Drop for Unfinished {
    fn drop(&mut self) {
        let reason = "a message of the job trapped; its effects were rolled back";
        state::with_mut(|s| s.jobs.interrupt(self.0, reason, ic_cdk::api::time()));
    }
}

pub fn status(caller: Principal, id: u64) -> Result<JobStatus, JobError> {
    state::with(|s| s.jobs.status(caller, id, ic_cdk::api::time()))
}

pub fn result(caller: Principal, id: u64) -> Result<JobResult, JobError> {
    state::with(|s| s.jobs.result(caller, id, ic_cdk::api::time()))
}

pub fn cancel(caller: Principal, id: u64) -> Result<(), JobError> {
    state::with_mut(|s| s.jobs.cancel(caller, id, ic_cdk::api::time()))
}
