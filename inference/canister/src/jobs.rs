//! Polling: `submit` a job and get its id at once, ask its `status`, fetch its `result`,
//! `cancel` it — for callers that prefer not to hold a call open for the whole inference.
//!
//! A submitted job runs in a task spawned in the `submit` message, continuing across messages by
//! awaiting calls to this canister like `classify` does; the caller's reply is sent first.
//! Records live in stable memory: a job's state survives upgrades, and one that was running
//! when the canister was upgraded is reported `Interrupted`, never silently lost. A record is
//! visible only to the principal that submitted it, and its result expires
//! [`RESULT_TTL_NS`] after the job ends (or when the owner cancels it). Inputs are never stored.

use candid::{CandidType, Deserialize, Principal};
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap, StableCell};
use inference_engine::stable::{self, Mem, StableLayout};

use crate::inference::{self, Advance, Classification, ClassifyRequest, Inference, InferenceError, InputTensor};
use crate::state;

/// How long a finished job's result (or error) is kept for its owner: 15 minutes.
pub const RESULT_TTL_NS: u64 = 15 * 60 * 1_000_000_000;

/// Records kept at most (running and finished, all callers). Beyond it, `submit` answers `Busy`
/// until results are fetched and cancelled or expire.
pub const MAX_RECORDS: u64 = 1024;

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct InferRequest {
    pub model: String,
    /// The active version when absent.
    pub version: Option<u32>,
    pub inputs: Vec<InputTensor>,
}

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
inference_engine::candid_storable!(JobResult);

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub enum JobStatus {
    /// Steps are the plan's nodes; `messages` so far.
    Running { steps_done: u32, steps_total: u32, messages: u32 },
    /// The result is ready; `result` returns it until `expires_at_ns`.
    Done { expires_at_ns: u64 },
    Failed { error: InferenceError, expires_at_ns: u64 },
    Cancelled { expires_at_ns: u64 },
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
struct JobRecord {
    owner: Principal,
    submitted_at_ns: u64,
    status: JobStatus,
}
inference_engine::candid_storable!(JobRecord);

pub struct Jobs {
    /// Small records, scanned for expiry.
    records: StableBTreeMap<u64, JobRecord, Mem<DefaultMemoryImpl>>,
    /// Results of the records that are `Done`, read only by `result`.
    results: StableBTreeMap<u64, JobResult, Mem<DefaultMemoryImpl>>,
    next_id: StableCell<u64, Mem<DefaultMemoryImpl>>,
}

impl Jobs {
    pub fn init(layout: &StableLayout<DefaultMemoryImpl>) -> Jobs {
        Jobs {
            records: StableBTreeMap::init(layout.memory(stable::JOBS)),
            results: StableBTreeMap::init(layout.memory(stable::JOB_RESULTS)),
            next_id: StableCell::init(layout.memory(stable::JOB_IDS), 1),
        }
    }

    /// After an upgrade: the tasks of running jobs died with the old heap.
    pub fn interrupt_running(&mut self, now: u64) {
        let running: Vec<u64> = self
            .records
            .iter()
            .filter(|entry| matches!(entry.value().status, JobStatus::Running { .. }))
            .map(|entry| *entry.key())
            .collect();
        for id in running {
            self.finish(id, Err(InferenceError::Interrupted("the canister was upgraded while the job ran".into())), now);
        }
    }

    fn purge_expired(&mut self, now: u64) {
        let expired: Vec<u64> = self
            .records
            .iter()
            .filter(|entry| expires_at(&entry.value().status).is_some_and(|at| at <= now))
            .map(|entry| *entry.key())
            .collect();
        for id in expired {
            self.forget(id);
        }
    }

    fn forget(&mut self, id: u64) {
        self.records.remove(&id);
        self.results.remove(&id);
    }

    /// The caller's record, live; others' and expired ones are unknown to them.
    fn owned(&self, caller: Principal, id: u64, now: u64) -> Result<JobRecord, InferenceError> {
        match self.records.get(&id) {
            Some(record) if record.owner == caller && expires_at(&record.status).is_none_or(|at| at > now) => Ok(record),
            _ => Err(InferenceError::UnknownJob(id)),
        }
    }

    fn update(&mut self, id: u64, f: impl FnOnce(&mut JobRecord)) {
        if let Some(mut record) = self.records.get(&id) {
            f(&mut record);
            self.records.insert(id, record);
        }
    }

    /// Records the end of a job unless it was cancelled meanwhile.
    fn finish(&mut self, id: u64, outcome: Result<JobResult, InferenceError>, now: u64) {
        let expires_at_ns = now.saturating_add(RESULT_TTL_NS);
        let running = self.records.get(&id).is_some_and(|record| matches!(record.status, JobStatus::Running { .. }));
        if !running {
            return;
        }
        let status = match outcome {
            Ok(result) => {
                self.results.insert(id, result);
                JobStatus::Done { expires_at_ns }
            }
            Err(error) => JobStatus::Failed { error, expires_at_ns },
        };
        self.update(id, |record| record.status = status);
    }

    fn is_cancelled(&self, id: u64) -> bool {
        self.records.get(&id).is_none_or(|record| matches!(record.status, JobStatus::Cancelled { .. }))
    }
}

fn expires_at(status: &JobStatus) -> Option<u64> {
    match status {
        JobStatus::Running { .. } => None,
        JobStatus::Done { expires_at_ns } | JobStatus::Failed { expires_at_ns, .. } | JobStatus::Cancelled { expires_at_ns } => {
            Some(*expires_at_ns)
        }
    }
}

/// Validates the request and starts the job; errors that need no computation come back here.
pub async fn submit(caller: Principal, request: JobRequest) -> Result<u64, InferenceError> {
    let now = ic_cdk::api::time();
    let kept = state::with_mut(|s| {
        s.jobs.purge_expired(now);
        s.jobs.records.len()
    });
    if kept >= MAX_RECORDS {
        return Err(InferenceError::Busy { in_flight: kept as u32, limit: MAX_RECORDS as u32 });
    }
    let prepared = match &request {
        JobRequest::Classify(r) => inference::prepare(caller, &r.model, r.version, std::slice::from_ref(&r.input), false).await?,
        JobRequest::Infer(r) => inference::prepare(caller, &r.model, r.version, &r.inputs, false).await?,
    };
    let id = state::with_mut(|s| {
        let id = *s.jobs.next_id.get();
        s.jobs.next_id.set(id + 1);
        let status = JobStatus::Running { steps_done: 0, steps_total: 0, messages: 0 };
        s.jobs.records.insert(id, JobRecord { owner: caller, submitted_at_ns: now, status });
        id
    });
    let top_k = match &request {
        JobRequest::Classify(r) => Some(r.top_k),
        JobRequest::Infer(_) => None,
    };
    ic_cdk::futures::spawn(async move {
        let guard = Unfinished(id);
        let outcome = prepared
            .drive(|advance: Advance| {
                state::with_mut(|s| {
                    if s.jobs.is_cancelled(id) {
                        return Err(InferenceError::Cancelled);
                    }
                    s.jobs.update(id, |record| {
                        record.status = JobStatus::Running {
                            steps_done: advance.steps_done,
                            steps_total: advance.steps_total,
                            messages: advance.messages,
                        }
                    });
                    Ok(())
                })
            })
            .await
            .and_then(|outcome| match top_k {
                Some(top_k) => inference::classification(outcome, top_k).map(JobResult::Classification),
                None => inference::inference(outcome).map(JobResult::Inference),
            });
        state::with_mut(|s| s.jobs.finish(id, outcome, ic_cdk::api::time()));
        std::mem::forget(guard);
    });
    Ok(id)
}

/// Marks its job interrupted if dropped before the job finished: the task was cancelled
/// because one of its messages trapped (this runs in the call's cleanup, which is kept).
struct Unfinished(u64);

impl Drop for Unfinished {
    fn drop(&mut self) {
        let error = InferenceError::Interrupted("a message of the job trapped; its effects were rolled back".into());
        state::with_mut(|s| s.jobs.finish(self.0, Err(error), ic_cdk::api::time()));
    }
}

pub fn status(caller: Principal, id: u64) -> Result<JobStatus, InferenceError> {
    let now = ic_cdk::api::time();
    state::with(|s| s.jobs.owned(caller, id, now)).map(|record| record.status)
}

pub fn result(caller: Principal, id: u64) -> Result<JobResult, InferenceError> {
    let now = ic_cdk::api::time();
    let record = state::with(|s| s.jobs.owned(caller, id, now))?;
    match record.status {
        JobStatus::Done { .. } => state::with(|s| s.jobs.results.get(&id)).ok_or(InferenceError::UnknownJob(id)),
        JobStatus::Running { steps_done, steps_total, .. } => Err(InferenceError::Pending { steps_done, steps_total }),
        JobStatus::Failed { error, .. } => Err(error),
        JobStatus::Cancelled { .. } => Err(InferenceError::Cancelled),
    }
}

/// Stops a running job at its next message (its slot is freed then), or discards a finished
/// job's result now.
pub fn cancel(caller: Principal, id: u64) -> Result<(), InferenceError> {
    let now = ic_cdk::api::time();
    state::with_mut(|s| {
        let record = s.jobs.owned(caller, id, now)?;
        if matches!(record.status, JobStatus::Running { .. }) {
            let expires_at_ns = now.saturating_add(RESULT_TTL_NS);
            s.jobs.update(id, |record| record.status = JobStatus::Cancelled { expires_at_ns });
        } else {
            s.jobs.forget(id);
        }
        Ok(())
    })
}
