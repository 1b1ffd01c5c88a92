//! The polling jobs' state machine against a plain model of it: submit, progress, finish (ok or
//! failed), trap, cancel, expiry and upgrade in random orders, by the owner and by others; and
//! admission against each owner's share of the records, which the jobs decide from an index on
//! the heap (rebuilt at every upgrade) and the model by counting.

use std::collections::BTreeMap;

use candid::Principal;
use ic_stable_structures::DefaultMemoryImpl;
use inference_api::{
    Inference, InferenceError, JobError, JobResult, JobStatus, ModelRef, MAX_JOB_RECORDS, RESULT_TTL_NS,
};
use inference_engine::jobs::{Advance, IdKey, Jobs};
use inference_engine::stable::StableLayout;
use proptest::prelude::*;

fn who(n: u8) -> Principal {
    Principal::from_slice(&[n, 7])
}

fn answer(n: u64) -> JobResult {
    let model = ModelRef { name: "m".into(), version: 1, sha256: vec![0; 32] };
    JobResult::Inference(Inference { outputs: vec![], model, instructions: n, messages: 1, receipt: None })
}

/// Records one owner may hold: small, so random runs reach it (and expiry or a cancel frees one).
const SHARE: u32 = 3;

#[derive(Clone, Debug)]
enum Op {
    Submit { owner: u8 },
    Progress { job: u64, steps: u32 },
    Finish { job: u64, ok: bool },
    Trap { job: u64 },
    Cancel { caller: u8, job: u64 },
    Read { caller: u8, job: u64 },
    Wait { minutes: u64 },
    Upgrade,
}

fn op() -> impl Strategy<Value = Op> {
    let job = 1..8u64;
    prop_oneof![
        3 => (0..3u8).prop_map(|owner| Op::Submit { owner }),
        3 => (job.clone(), 1..100u32).prop_map(|(job, steps)| Op::Progress { job, steps }),
        2 => (job.clone(), any::<bool>()).prop_map(|(job, ok)| Op::Finish { job, ok }),
        1 => job.clone().prop_map(|job| Op::Trap { job }),
        2 => (0..3u8, job.clone()).prop_map(|(caller, job)| Op::Cancel { caller, job }),
        3 => (0..3u8, job).prop_map(|(caller, job)| Op::Read { caller, job }),
        1 => (0..20u64).prop_map(|minutes| Op::Wait { minutes }),
        1 => Just(Op::Upgrade),
    ]
}

/// Where a job stands in the model.
#[derive(Clone, Debug, PartialEq)]
enum State {
    Running(u32),
    Done(u64),
    Failed,
    Interrupted,
    Cancelled,
}

#[derive(Default)]
struct Model {
    jobs: BTreeMap<u64, (u8, State, Option<u64>)>,
    /// The ids `start` gave, in order: operations name jobs by their place here.
    ids: Vec<u64>,
}

impl Model {
    /// The id of the `job`-th job submitted (from 1); for a job not submitted yet, an id no job
    /// has (derived ids are 64 random-looking bits, never this small).
    fn id(&self, job: u64) -> u64 {
        self.ids.get(job as usize - 1).copied().unwrap_or(job)
    }

    /// Records `owner` holds at `now`: running, or ended and not yet expired or discarded.
    fn held(&self, owner: u8, now: u64) -> u32 {
        let live = |(o, _, expires): &&(u8, State, Option<u64>)| *o == owner && expires.is_none_or(|at| at > now);
        self.jobs.values().filter(live).count() as u32
    }

    fn live(&self, caller: u8, job: u64, now: u64) -> Option<&(u8, State, Option<u64>)> {
        self.jobs.get(&job).filter(|(owner, _, expires)| *owner == caller && expires.is_none_or(|at| at > now))
    }

    fn end(&mut self, job: u64, state: State, now: u64) {
        if let Some(entry) = self.jobs.get_mut(&job).filter(|e| matches!(e.1, State::Running(_))) {
            entry.1 = state;
            entry.2 = Some(now + RESULT_TTL_NS);
        }
    }
}

fn check_read(jobs: &Jobs<DefaultMemoryImpl>, model: &Model, caller: u8, job: u64, now: u64) {
    let status = jobs.status(who(caller), job, now);
    let result = jobs.result(who(caller), job, now);
    let Some((_, state, expires)) = model.live(caller, job, now) else {
        assert_eq!(status, Err(JobError::UnknownJob(job)));
        assert_eq!(result, Err(JobError::UnknownJob(job)));
        return;
    };
    match (state, status.expect("a live job of the caller")) {
        (State::Running(steps), JobStatus::Running { steps_done, .. }) => {
            assert_eq!(*steps, steps_done);
            assert!(matches!(result, Err(JobError::Pending { steps_done: s, .. }) if s == *steps));
        }
        (State::Done(n), JobStatus::Done { expires_at_ns }) => {
            assert_eq!(Some(expires_at_ns), *expires);
            assert_eq!(result, Ok(answer(*n)));
        }
        (State::Failed, JobStatus::Failed { error, .. }) => {
            assert_eq!(result, Err(JobError::Inference(error)));
        }
        (State::Interrupted, JobStatus::Interrupted { reason, .. }) => {
            assert_eq!(result, Err(JobError::Interrupted(reason)));
        }
        (State::Cancelled, JobStatus::Cancelled { .. }) => assert_eq!(result, Err(JobError::Cancelled)),
        (want, got) => panic!("job {job}: model {want:?}, jobs {got:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn jobs_follow_their_state_machine(ops in proptest::collection::vec(op(), 1..60)) {
        let memory = DefaultMemoryImpl::default();
        let mut jobs = Jobs::init(&StableLayout::init(memory.clone()));
        let mut model = Model::default();
        let mut now = 1_000u64;
        // The canister draws a new key after every upgrade (it lives on the heap).
        let mut key = IdKey([0; 32]);
        for op in ops {
            let op = match op {
                Op::Progress { job, steps } => Op::Progress { job: model.id(job), steps },
                Op::Finish { job, ok } => Op::Finish { job: model.id(job), ok },
                Op::Trap { job } => Op::Trap { job: model.id(job) },
                Op::Cancel { caller, job } => Op::Cancel { caller, job: model.id(job) },
                Op::Read { caller, job } => Op::Read { caller, job: model.id(job) },
                op => op,
            };
            match op {
                Op::Submit { owner } => match jobs.start(who(owner), SHARE, now, &key) {
                    Ok(id) => {
                        prop_assert!(model.held(owner, now) < SHARE, "admitted beyond the owner's share");
                        prop_assert!(!model.ids.contains(&id), "ids are never reused");
                        model.ids.push(id);
                        model.jobs.insert(id, (owner, State::Running(0), None));
                    }
                    Err(refused) => {
                        prop_assert_eq!(refused, JobError::CallerRecordsFull { limit: SHARE });
                        prop_assert!(model.held(owner, now) >= SHARE, "refused within the owner's share");
                    }
                },
                Op::Progress { job, steps } => {
                    let advance = Advance { steps_done: steps, steps_total: 100, messages: 2 };
                    let running = matches!(model.jobs.get(&job), Some((_, State::Running(_), _)));
                    prop_assert_eq!(jobs.progress(job, advance).is_ok(), running);
                    if running {
                        model.jobs.get_mut(&job).unwrap().1 = State::Running(steps);
                    }
                }
                Op::Finish { job, ok } => {
                    let outcome = if ok { Ok(answer(job)) } else { Err(InferenceError::Stopping) };
                    jobs.finish(job, outcome, now);
                    model.end(job, if ok { State::Done(job) } else { State::Failed }, now);
                }
                Op::Trap { job } => {
                    jobs.interrupt(job, "trapped", now);
                    model.end(job, State::Interrupted, now);
                }
                Op::Cancel { caller, job } => {
                    let live = model.live(caller, job, now).cloned();
                    let got = jobs.cancel(who(caller), job, now);
                    match live {
                        None => prop_assert_eq!(got, Err(JobError::UnknownJob(job))),
                        Some((_, State::Running(_), _)) => {
                            prop_assert_eq!(got, Ok(()));
                            let entry = model.jobs.get_mut(&job).unwrap();
                            *entry = (caller, State::Cancelled, Some(now + RESULT_TTL_NS));
                        }
                        Some(_) => {
                            prop_assert_eq!(got, Ok(()));
                            model.jobs.remove(&job);
                        }
                    }
                }
                Op::Read { caller, job } => check_read(&jobs, &model, caller, job, now),
                Op::Wait { minutes } => now += minutes * 60 * 1_000_000_000,
                Op::Upgrade => {
                    // post_upgrade: the same stable memory, a new heap; running jobs lost their task.
                    jobs = Jobs::init(&StableLayout::init(memory.clone()));
                    jobs.interrupt_running(now);
                    key = IdKey([model.ids.len() as u8 + 1; 32]);
                    let running: Vec<u64> =
                        model.jobs.iter().filter(|(_, e)| matches!(e.1, State::Running(_))).map(|(id, _)| *id).collect();
                    for id in running {
                        model.end(id, State::Interrupted, now);
                    }
                }
            }
            // Every job, as its owner and as another principal sees it.
            for job in 1..=model.ids.len() as u64 + 1 {
                for caller in 0..3 {
                    check_read(&jobs, &model, caller, model.id(job), now);
                }
            }
        }
    }
}

#[test]
fn records_beyond_the_limit_are_refused_until_results_expire() {
    let mut jobs = Jobs::init(&StableLayout::init(DefaultMemoryImpl::default()));
    let key = IdKey([1; 32]);
    for n in 0..MAX_JOB_RECORDS {
        let id = jobs.start(who(1), u32::MAX, n, &key).unwrap();
        jobs.finish(id, Ok(answer(id)), n);
    }
    assert_eq!(jobs.start(who(2), u32::MAX, 5_000, &key), Err(JobError::RecordsFull { limit: MAX_JOB_RECORDS as u32 }));
    // The first result (finished at 0) expires one TTL later; then one record is free again.
    jobs.check_capacity(who(2), u32::MAX, RESULT_TTL_NS - 1).expect_err("nothing expired yet");
    jobs.start(who(2), u32::MAX, RESULT_TTL_NS, &key).expect("the first record expired");
    assert_eq!(jobs.len(), MAX_JOB_RECORDS);
}

/// One caller filling its share of the records (by never fetching results) leaves the rest to
/// the others; cancelling one of its results frees one of its records.
#[test]
fn one_owner_cannot_take_more_than_its_share_of_the_records() {
    let mut jobs = Jobs::init(&StableLayout::init(DefaultMemoryImpl::default()));
    let (share, key) = (3, IdKey([2; 32]));
    let ids: Vec<u64> = (0..share).map(|n| jobs.start(who(1), share, n as u64, &key).unwrap()).collect();
    assert_eq!(jobs.start(who(1), share, 10, &key), Err(JobError::CallerRecordsFull { limit: share }));
    jobs.start(who(2), share, 10, &key).expect("another caller still gets a record");
    jobs.finish(ids[0], Ok(answer(ids[0])), 11);
    assert_eq!(jobs.start(who(1), share, 12, &key), Err(JobError::CallerRecordsFull { limit: share }), "unfetched");
    jobs.cancel(who(1), ids[0], 13).unwrap();
    jobs.start(who(1), share, 14, &key).expect("a discarded result frees its record");
}

/// Job ids say nothing of how many jobs ran before: they are not a count, not in order, and
/// another key gives other ids for the same jobs.
#[test]
fn job_ids_reveal_no_count() {
    let ids = |key: u8| {
        let mut jobs = Jobs::init(&StableLayout::init(DefaultMemoryImpl::default()));
        (0..64).map(|n| jobs.start(who(1), u32::MAX, n, &IdKey([key; 32])).unwrap()).collect::<Vec<u64>>()
    };
    let (first, second) = (ids(3), ids(4));
    assert!(first.iter().all(|id| *id > 1 << 20), "no small counts: {first:?}");
    assert!(first.windows(2).all(|w| w[1].abs_diff(w[0]) > 1), "no consecutive ids: {first:?}");
    assert!(!first.is_sorted() && !first.iter().rev().is_sorted(), "not in order: {first:?}");
    assert!(first.iter().all(|id| !second.contains(id)), "another key, other ids");
}
