//! Polling jobs' records: who submitted each, where it stands, and its result until it expires.
//!
//! The canister runs a job in a task of its own and reports here as it goes; this module is the
//! job's state machine, in stable memory so that it survives upgrades:
//!
//! ```text
//! start ──> Running ──progress──> Running ──finish──> Done | Failed
//!              │                     │
//!              └──cancel──> Cancelled└──interrupt (trap, upgrade)──> Interrupted
//! ```
//!
//! A job's id is derived from a secret key and a counter, so ids say nothing of how many jobs
//! ran before or of whose they are. A record is visible only to its owner. A finished record (and its result) is dropped
//! [`RESULT_TTL_NS`] after the job ended, or when its owner cancels it; a running one never
//! expires. At most [`MAX_JOB_RECORDS`] are kept.
//!
//! What admitting a job needs (records per owner, which records expire first) is kept on the heap
//! beside the stable maps (`Index`), so a `submit` reads no record to decide; the index is
//! rebuilt by one scan when the jobs are opened (install, upgrade). A trap rolls back heap and
//! stable memory together, so the two cannot disagree.

use std::collections::BTreeMap;

use candid::Principal;
use ic_stable_structures::{Memory, StableBTreeMap, StableCell};
use inference_api::{InferenceError, JobError, JobRecord, JobResult, JobStatus, MAX_JOB_RECORDS, RESULT_TTL_NS};
use sha2::{Digest, Sha256};

use crate::stable::{self, Mem, StableLayout};

/// How far a running job has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advance {
    pub steps_done: u32,
    pub steps_total: u32,
    pub messages: u32,
}

pub struct Jobs<M: Memory> {
    /// Small records, scanned for expiry.
    records: StableBTreeMap<u64, JobRecord, Mem<M>>,
    /// Results of the records that are `Done`, read only by `result`.
    results: StableBTreeMap<u64, JobResult, Mem<M>>,
    /// The counter job ids are derived from; never reused, even after records expire.
    next_id: StableCell<u64, Mem<M>>,
    /// The records' owners and expiries, on the heap.
    index: Index,
}

/// The records' owners and expiries: enough to admit a job without decoding every record (a
/// scan decoded up to [`MAX_JOB_RECORDS`] records per `submit`).
#[derive(Default)]
struct Index {
    /// How many records each owner holds: running ones, and ended ones until they expire or are
    /// discarded.
    held: BTreeMap<Principal, u32>,
    /// Ended records by (expiry, id), soonest first. A sorted vector, not a `BTreeSet`: at most
    /// [`MAX_JOB_RECORDS`] entries, and the set's code took the canister's module over its code
    /// budget (`the_modules_fit_the_ic_limits_with_the_margin_we_keep`).
    expiring: Vec<(u64, u64)>,
}

impl Index {
    fn add(&mut self, id: u64, record: &JobRecord) {
        *self.held.entry(record.owner).or_default() += 1;
        self.ended(id, &record.status);
    }

    /// A record's status now has an expiry (it ended).
    fn ended(&mut self, id: u64, status: &JobStatus) {
        if let Some(at) = status.expires_at_ns() {
            let place = self.expiring.partition_point(|entry| *entry < (at, id));
            self.expiring.insert(place, (at, id));
        }
    }

    fn remove(&mut self, id: u64, record: &JobRecord) {
        if let Some(held) = self.held.get_mut(&record.owner) {
            *held -= 1;
            if *held == 0 {
                self.held.remove(&record.owner);
            }
        }
        if let Some(at) = record.status.expires_at_ns() {
            if let Ok(place) = self.expiring.binary_search(&(at, id)) {
                self.expiring.remove(place);
            }
        }
    }

    /// The records expired at `now`.
    fn expired(&self, now: u64) -> Vec<u64> {
        let due = self.expiring.partition_point(|&(at, _)| at <= now);
        self.expiring[..due].iter().map(|&(_, id)| id).collect()
    }

    fn held_by(&self, owner: &Principal) -> u32 {
        self.held.get(owner).copied().unwrap_or(0)
    }
}

/// The secret job ids are derived from: 32 unpredictable bytes (the canister draws them from the
/// management canister's `raw_rand`). Whoever knew it could tell how many jobs ran before theirs.
#[derive(Clone, Copy)]
pub struct IdKey(pub [u8; 32]);

impl IdKey {
    /// The id of the `n`-th job: 64 bits of sha256(key ‖ n). Two jobs get the same id with
    /// probability about 2^-64 per pair; [`Jobs::start`] skips an id still in use.
    fn id(&self, n: u64) -> u64 {
        let digest = Sha256::new().chain_update(self.0).chain_update(n.to_le_bytes()).finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes of 32"))
    }
}

impl<M: Memory> Jobs<M> {
    pub fn init(layout: &StableLayout<M>) -> Self {
        let records: StableBTreeMap<u64, JobRecord, Mem<M>> = StableBTreeMap::init(layout.memory(stable::JOBS));
        let mut index = Index::default();
        for entry in records.iter() {
            index.add(*entry.key(), &entry.value());
        }
        Jobs {
            records,
            results: StableBTreeMap::init(layout.memory(stable::JOB_RESULTS)),
            next_id: StableCell::init(layout.memory(stable::JOB_IDS), 1),
            index,
        }
    }

    /// Records kept now (running and finished, of every caller).
    pub fn len(&self) -> u64 {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Drops expired records, then refuses when every record is taken, or when `owner` holds
    /// `per_owner` of them (so one caller cannot take every record by never fetching).
    pub fn check_capacity(&mut self, owner: Principal, per_owner: u32, now: u64) -> Result<(), JobError> {
        for id in self.index.expired(now) {
            self.forget(id);
        }
        if self.records.len() >= MAX_JOB_RECORDS {
            return Err(JobError::RecordsFull { limit: MAX_JOB_RECORDS as u32 });
        }
        if self.index.held_by(&owner) >= per_owner {
            return Err(JobError::CallerRecordsFull { limit: per_owner });
        }
        Ok(())
    }

    /// Records a new running job of `owner` and returns its id, derived with `key`.
    pub fn start(&mut self, owner: Principal, per_owner: u32, now: u64, key: &IdKey) -> Result<u64, JobError> {
        self.check_capacity(owner, per_owner, now)?;
        let mut n = *self.next_id.get();
        let id = loop {
            let id = key.id(n);
            n += 1;
            if !self.records.contains_key(&id) {
                break id;
            }
        };
        self.next_id.set(n);
        let record = JobRecord {
            owner,
            submitted_at_ns: now,
            status: JobStatus::Running { steps_done: 0, steps_total: 0, messages: 0 },
        };
        self.index.add(id, &record);
        self.records.insert(id, record);
        Ok(id)
    }

    /// Records a running job's progress; `Err(Cancelled)` when its owner cancelled it (or it
    /// is gone), which ends the job.
    pub fn progress(&mut self, id: u64, advance: Advance) -> Result<(), JobError> {
        match self.records.get(&id) {
            Some(mut record) if record.status.is_running() => {
                record.status = JobStatus::Running {
                    steps_done: advance.steps_done,
                    steps_total: advance.steps_total,
                    messages: advance.messages,
                };
                self.records.insert(id, record);
                Ok(())
            }
            _ => Err(JobError::Cancelled),
        }
    }

    /// Records the end of a running job; a job cancelled meanwhile stays cancelled.
    pub fn finish(&mut self, id: u64, outcome: Result<JobResult, InferenceError>, now: u64) {
        let expires_at_ns = now.saturating_add(RESULT_TTL_NS);
        self.end(id, |results| match outcome {
            Ok(result) => {
                results.insert(id, result);
                JobStatus::Done { expires_at_ns }
            }
            Err(error) => JobStatus::Failed { error, expires_at_ns },
        });
    }

    /// Records that a running job ended without finishing (a trap, an upgrade).
    pub fn interrupt(&mut self, id: u64, reason: &str, now: u64) {
        let expires_at_ns = now.saturating_add(RESULT_TTL_NS);
        self.end(id, |_| JobStatus::Interrupted { reason: reason.into(), expires_at_ns });
    }

    /// After an upgrade: the tasks of running jobs died with the old heap.
    pub fn interrupt_running(&mut self, now: u64) {
        let running: Vec<u64> =
            self.records.iter().filter(|e| e.value().status.is_running()).map(|e| *e.key()).collect();
        for id in running {
            self.interrupt(id, "the canister was upgraded while the job ran", now);
        }
    }

    /// A job's progress or outcome, for its owner.
    pub fn status(&self, caller: Principal, id: u64, now: u64) -> Result<JobStatus, JobError> {
        self.owned(caller, id, now).map(|record| record.status)
    }

    /// A finished job's result, for its owner (kept until it expires, so a lost reply can be
    /// fetched again).
    pub fn result(&self, caller: Principal, id: u64, now: u64) -> Result<JobResult, JobError> {
        match self.owned(caller, id, now)?.status {
            JobStatus::Done { .. } => self.results.get(&id).ok_or(JobError::UnknownJob(id)),
            JobStatus::Running { steps_done, steps_total, .. } => Err(JobError::Pending { steps_done, steps_total }),
            JobStatus::Failed { error, .. } => Err(JobError::Inference(error)),
            JobStatus::Interrupted { reason, .. } => Err(JobError::Interrupted(reason)),
            JobStatus::Cancelled { .. } => Err(JobError::Cancelled),
        }
    }

    /// Stops a running job (its task sees it at its next message), or discards a finished
    /// job's record and result now.
    pub fn cancel(&mut self, caller: Principal, id: u64, now: u64) -> Result<(), JobError> {
        let mut record = self.owned(caller, id, now)?;
        if record.status.is_running() {
            record.status = JobStatus::Cancelled { expires_at_ns: now.saturating_add(RESULT_TTL_NS) };
            self.index.ended(id, &record.status);
            self.records.insert(id, record);
        } else {
            self.forget(id);
        }
        Ok(())
    }

    /// The caller's record, live; others' and expired ones are unknown to them.
    fn owned(&self, caller: Principal, id: u64, now: u64) -> Result<JobRecord, JobError> {
        match self.records.get(&id) {
            Some(record) if record.owner == caller && record.status.expires_at_ns().is_none_or(|at| at > now) => {
                Ok(record)
            }
            _ => Err(JobError::UnknownJob(id)),
        }
    }

    /// Moves a running job to the status `ended` gives (which may store its result).
    fn end(&mut self, id: u64, ended: impl FnOnce(&mut StableBTreeMap<u64, JobResult, Mem<M>>) -> JobStatus) {
        if let Some(mut record) = self.records.get(&id).filter(|r| r.status.is_running()) {
            record.status = ended(&mut self.results);
            self.index.ended(id, &record.status);
            self.records.insert(id, record);
        }
    }

    fn forget(&mut self, id: u64) {
        if let Some(record) = self.records.remove(&id) {
            self.index.remove(id, &record);
        }
        self.results.remove(&id);
    }
}
