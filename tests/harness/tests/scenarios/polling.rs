//! The polling API on the real canister: `submit` answers at once with a job id while the job
//! runs on across messages; `status` shows its progress; `result` gives the same answer as
//! `classify`, only to the submitter, until it expires; `cancel` stops a job and frees its slot;
//! a stop, an upgrade or a trap while a job runs ends it with a typed error its owner can read.

use std::time::Duration;

use candid::Principal;
use canister_harness::deploy::Deployment;
use canister_harness::{cases, user, LocalBackend};
use inference_api::{
    ClassifyRequest, InferRequest, InferenceError, JobError, JobRequest, JobResult, JobStatus, RESULT_TTL_NS,
};
use inference_client::calls;
use model_testdata::{case, Case};

const MODEL: &str = "text-direction";
const OWNER: u8 = 5;
const OTHER: u8 = 6;

fn deployed(backend: Option<Box<dyn canister_harness::Ic>>) -> (Deployment, Case) {
    let mut d = match backend {
        Some(ic) => Deployment::with_backend(ic, MODEL),
        None => Deployment::new(MODEL),
    };
    let c = case("rapidocr_cls", "fp32");
    d.publish(MODEL, &c, &["0", "180"]);
    for u in [OWNER, OTHER] {
        d.as_admin(calls::allow_caller(user(u))).unwrap();
    }
    (d, c)
}

fn classify_request(c: &Case) -> ClassifyRequest {
    ClassifyRequest { model: MODEL.into(), version: None, input: cases::input(c), top_k: Some(2) }
}

fn submit(d: &mut Deployment, who: Principal, request: JobRequest) -> Result<u64, JobError> {
    d.call(who, calls::submit(&request)).0.expect("submit replies")
}

fn status(d: &mut Deployment, who: Principal, job: u64) -> Result<JobStatus, JobError> {
    d.call(who, calls::status(job)).0.expect("status replies")
}

fn result(d: &mut Deployment, who: Principal, job: u64) -> Result<JobResult, JobError> {
    d.call(who, calls::result(job)).0.expect("result replies")
}

fn cancel(d: &mut Deployment, who: Principal, job: u64) -> Result<(), JobError> {
    d.call(who, calls::cancel(job)).0.expect("cancel replies")
}

/// Ticks until the job is no longer running; returns every status seen on the way.
fn poll_until_finished(d: &mut Deployment, job: u64) -> Vec<JobStatus> {
    poll_until_finished_by(d, OWNER, job)
}

fn poll_until_finished_by(d: &mut Deployment, owner: u8, job: u64) -> Vec<JobStatus> {
    let mut seen = vec![];
    for _ in 0..10_000 {
        let s = status(d, user(owner), job).expect("the owner sees the job");
        let running = matches!(s, JobStatus::Running { .. });
        seen.push(s);
        if !running {
            return seen;
        }
        d.ic.tick();
    }
    panic!("job {job} still running after 10 000 rounds: {:?}", seen.last());
}

#[test]
fn a_submitted_job_runs_on_and_its_result_is_classifys_answer_for_its_owner_only() {
    let (mut d, c) = deployed(None);
    // Well under the inference's instructions, so the job spans several messages (and reports
    // progress between them) however much faster the kernels get.
    d.set_budget(10_000_000);
    let job = submit(&mut d, user(OWNER), JobRequest::Classify(classify_request(&c))).unwrap();
    // submit answered while the job is still running.
    assert!(matches!(status(&mut d, user(OWNER), job), Ok(JobStatus::Running { .. })));
    assert!(matches!(result(&mut d, user(OWNER), job), Err(JobError::Pending { .. })));
    let seen = poll_until_finished(&mut d, job);
    let progress: Vec<u32> = seen
        .iter()
        .filter_map(|s| if let JobStatus::Running { steps_done, .. } = s { Some(*steps_done) } else { None })
        .collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "progress goes forward: {progress:?}");
    assert!(progress.last() > progress.first(), "progress was reported: {progress:?}");
    assert!(matches!(seen.last(), Some(JobStatus::Done { .. })), "{seen:?}");

    let Ok(JobResult::Classification(polled)) = result(&mut d, user(OWNER), job) else { panic!("a classification") };
    assert!(polled.messages > 2, "{}", polled.messages);
    // The same labels and score bits as a direct classify call.
    let (direct, _) = d.call(user(OWNER), calls::classify(&classify_request(&c)));
    let direct = direct.unwrap().unwrap();
    assert_eq!(polled.labels, direct.labels);
    assert_eq!(polled.model, direct.model);
    // Fetching again works (a lost reply can be re-read); others and strangers see nothing.
    assert!(result(&mut d, user(OWNER), job).is_ok());
    for who in [user(OTHER), user(9), Principal::anonymous()] {
        assert_eq!(status(&mut d, who, job), Err(JobError::UnknownJob(job)));
        assert_eq!(result(&mut d, who, job), Err(JobError::UnknownJob(job)));
    }
    assert_eq!(cancel(&mut d, user(OTHER), job), Err(JobError::UnknownJob(job)));
    // An unlisted principal's ingress cancel does not even reach the method.
    let (r, _) = d.call(user(9), calls::cancel(job));
    assert!(r.unwrap_err().to_string().contains("inspect_message"));
    assert!(result(&mut d, user(OWNER), job).is_ok(), "nobody else could cancel it");
    // The result expires.
    d.ic.advance_time(Duration::from_nanos(RESULT_TTL_NS + 1));
    assert_eq!(result(&mut d, user(OWNER), job), Err(JobError::UnknownJob(job)));
    // An unlisted principal's ingress submit is refused; a bad input is refused at submit, not later.
    let (r, _) = d.call(user(9), calls::submit(&JobRequest::Classify(classify_request(&c))));
    assert!(r.unwrap_err().to_string().contains("inspect_message"));
    let bad = JobRequest::Infer(InferRequest { model: MODEL.into(), version: None, inputs: vec![] });
    assert!(matches!(submit(&mut d, user(OWNER), bad), Err(JobError::Inference(InferenceError::InvalidInput(_)))));
}

/// Job ids come from a key drawn from `raw_rand`: they are no count of the jobs before (#13,
/// finding 11).
#[test]
fn job_ids_reveal_no_count() {
    let (mut d, c) = deployed(None);
    let mut ids = vec![];
    for who in [OWNER, OTHER, OWNER, OTHER] {
        let job = submit(&mut d, user(who), JobRequest::Classify(classify_request(&c))).unwrap();
        poll_until_finished_by(&mut d, who, job);
        ids.push(job);
    }
    assert!(ids.iter().all(|id| *id > 1 << 20), "no small counts: {ids:?}");
    assert!(ids.windows(2).all(|w| w[1].abs_diff(w[0]) > 1), "not consecutive: {ids:?}");
}

#[test]
fn raw_inference_jobs_return_output_tensors() {
    let (mut d, c) = deployed(None);
    let request = JobRequest::Infer(InferRequest {
        model: MODEL.into(),
        version: None,
        inputs: vec![classify_request(&c).input],
    });
    let job = submit(&mut d, user(OWNER), request).unwrap();
    poll_until_finished(&mut d, job);
    let Ok(JobResult::Inference(out)) = result(&mut d, user(OWNER), job) else { panic!("an inference") };
    for (g, e) in out.outputs[0].data.as_f32().expect("f32 output").iter().zip(&c.expected) {
        assert!((g - e).abs() <= 1e-5, "{:?} vs {:?}", out.outputs[0].data, c.expected);
    }
}

#[test]
fn cancel_stops_a_running_job_and_frees_its_slot_and_discards_a_finished_one() {
    let (mut d, c) = deployed(None);
    d.configure(|cfg| {
        cfg.update_budget = 5_000_000;
        cfg.max_jobs = 1;
    });
    let job = submit(&mut d, user(OWNER), JobRequest::Classify(classify_request(&c))).unwrap();
    d.ic.tick();
    // The one slot is taken.
    assert!(matches!(
        submit(&mut d, user(OTHER), JobRequest::Classify(classify_request(&c))),
        Err(JobError::Inference(InferenceError::Busy { .. }))
    ));
    cancel(&mut d, user(OWNER), job).unwrap();
    assert!(matches!(status(&mut d, user(OWNER), job), Ok(JobStatus::Cancelled { .. })));
    assert_eq!(result(&mut d, user(OWNER), job), Err(JobError::Cancelled));
    // The job notices at its next message and lets its slot go.
    for _ in 0..3 {
        d.ic.tick();
    }
    let next = submit(&mut d, user(OTHER), JobRequest::Classify(classify_request(&c))).expect("the slot was freed");
    for _ in 0..10_000 {
        if !matches!(status(&mut d, user(OTHER), next), Ok(JobStatus::Running { .. })) {
            break;
        }
        d.ic.tick();
    }
    assert!(matches!(status(&mut d, user(OTHER), next), Ok(JobStatus::Done { .. })));
    // The cancelled job stayed cancelled; cancelling a finished job discards its result.
    assert!(matches!(status(&mut d, user(OWNER), job), Ok(JobStatus::Cancelled { .. })));
    cancel(&mut d, user(OTHER), next).unwrap();
    assert_eq!(result(&mut d, user(OTHER), next), Err(JobError::UnknownJob(next)));
}

#[test]
fn stop_and_upgrade_while_jobs_run_leave_typed_errors_for_their_owners() {
    let (mut d, c) = deployed(None);
    d.set_budget(1);
    // Stopped: the running job ends with Stopping, recorded before the canister stops.
    let stopped = submit(&mut d, user(OWNER), JobRequest::Classify(classify_request(&c))).unwrap();
    for _ in 0..3 {
        d.ic.tick();
    }
    d.ic.stop_canister(d.inference, d.controller).expect("the canister stops");
    d.upgrade_inference();
    d.ic.start_canister(d.inference, d.controller).unwrap();
    assert!(matches!(
        status(&mut d, user(OWNER), stopped),
        Ok(JobStatus::Failed { error: InferenceError::Stopping, .. })
    ));
    assert_eq!(result(&mut d, user(OWNER), stopped), Err(JobError::Inference(InferenceError::Stopping)));
    // Upgrading without a stop is refused while the job awaits its next message (#13: the
    // awaiting callback would run undefined code in the new heap); the job runs on to its end.
    let running = submit(&mut d, user(OWNER), JobRequest::Classify(classify_request(&c))).unwrap();
    for _ in 0..3 {
        d.ic.tick();
    }
    let wasm = canister_harness::canister_wasm("inference_canister");
    let refused = d.ic.upgrade_canister(d.inference, &wasm, candid::encode_args(()).unwrap(), d.controller);
    let reason = refused.expect_err("an upgrade with a job in flight is refused").message;
    assert!(reason.contains("stop the canister first"), "{reason}");
    d.set_budget(30_000_000_000);
    assert!(matches!(poll_until_finished(&mut d, running).last(), Some(JobStatus::Done { .. })));
    // With nothing in flight the upgrade goes through; job ids are never reused across it
    // (the new heap draws a new id key).
    d.upgrade_inference();
    let after = submit(&mut d, user(OWNER), JobRequest::Classify(classify_request(&c))).unwrap();
    assert!(after != running && after != stopped && running != stopped);
    assert!(matches!(poll_until_finished(&mut d, after).last(), Some(JobStatus::Done { .. })));
    assert!(matches!(status(&mut d, user(OWNER), running), Ok(JobStatus::Done { .. })));
}

/// Local replica only (PocketIC cannot inject a trap).
#[test]
fn a_trap_in_a_polled_job_marks_it_interrupted_and_frees_its_slot() {
    let (mut d, c) = deployed(Some(Box::new(LocalBackend::new())));
    d.configure(|cfg| {
        cfg.update_budget = 5_000_000;
        cfg.max_jobs = 1;
    });
    let job = submit(&mut d, user(OWNER), JobRequest::Classify(classify_request(&c))).unwrap();
    for _ in 0..3 {
        d.ic.tick();
    }
    let inference = d.inference;
    d.ic.as_any().downcast_mut::<LocalBackend>().unwrap().replica.trap_nth_message(inference, 1);
    d.ic.tick();
    d.ic.tick();
    match status(&mut d, user(OWNER), job) {
        Ok(JobStatus::Interrupted { reason, .. }) => assert!(reason.contains("trapped"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(result(&mut d, user(OWNER), job), Err(JobError::Interrupted(_))));
    let next = submit(&mut d, user(OWNER), JobRequest::Classify(classify_request(&c))).expect("the slot was freed");
    assert!(matches!(poll_until_finished(&mut d, next).last(), Some(JobStatus::Done { .. })));
}
