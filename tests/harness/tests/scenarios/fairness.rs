//! Issue #13's fairness between agencies, on the real canister: one agency flooding the canister
//! holds at most its share of the job slots, the canister's messages go round-robin among the
//! jobs in flight, so another agency's single request completes within a bounded number of
//! messages; and an allowance withdrawn while a job runs ends the job at its next message.

use canister_harness::deploy::Deployment;
use canister_harness::{await_call, submit_call, user};
use inference_api::{Classification, ClassifyRequest, InferenceError, NotAuthorized, Role};
use inference_client::{calls, Call};
use model_testdata::Case;

use crate::text_direction::{self, MODEL};

/// Small enough that one classification takes several messages.
const BUDGET: u64 = 20_000_000;
const SHARE: u32 = 3;

fn deployed() -> (Deployment, Case) {
    let (mut d, c) = text_direction::deployed();
    for agency in [user(20), user(21)] {
        d.as_admin(calls::allow_caller(agency)).unwrap();
    }
    d.configure(|cfg| {
        cfg.update_budget = BUDGET;
        cfg.max_jobs_per_caller = SHARE;
    });
    (d, c)
}

fn classify_call(c: &Case) -> Call<Result<Classification, InferenceError>> {
    let request = ClassifyRequest {
        model: MODEL.into(),
        version: None,
        input: canister_harness::cases::input(c),
        top_k: Some(2),
    };
    calls::classify(&request)
}

#[test]
fn a_flood_from_one_agency_delays_anothers_request_by_a_bounded_number_of_messages() {
    let (mut d, c) = deployed();
    // Alone, B's classification takes `alone` messages.
    let (alone, alone_cost) = d.call(user(21), classify_call(&c));
    let alone = alone.unwrap().unwrap();
    assert!(alone.messages >= 3, "the budget splits it: {}", alone.messages);
    // A submits as fast as it can: its share runs, the rest is refused at once.
    let flood: Vec<u64> =
        (0..SHARE + 2).map(|_| submit_call(&mut *d.ic, d.inference, user(20), &classify_call(&c)).unwrap()).collect();
    let b = submit_call(&mut *d.ic, d.inference, user(21), &classify_call(&c)).unwrap();
    let (answer, cost) = await_call(&mut *d.ic, b, &classify_call(&c));
    let answer = answer.unwrap().expect("B is served while A floods");
    assert_eq!(answer.labels, alone.labels, "the same answer as alone");
    assert_eq!(answer.messages, alone.messages);
    // Every message executed from B's submission to its reply, whoever caused it: each of A's
    // jobs in flight runs at most one step (a continuation and its reply) between two of B's, so
    // B waits at most (its share + 1) times what it takes alone, plus A's first messages.
    if let (Some(executed), Some(alone_executed)) = (cost.messages, alone_cost.messages) {
        let bound = alone_executed * u64::from(SHARE + 1) + 2 * u64::from(SHARE + 2);
        assert!(executed <= bound, "{executed} messages until B's reply; bound {bound} ({alone_executed} alone)");
        eprintln!("B's reply after {executed} messages ({alone_executed} alone, bound {bound})");
    }
    let mut refused = 0;
    for id in flood {
        match await_call(&mut *d.ic, id, &classify_call(&c)).0.unwrap() {
            Ok(a) => assert_eq!(a.labels, alone.labels),
            Err(InferenceError::CallerBusy { in_flight, limit }) => {
                assert_eq!((in_flight, limit), (SHARE, SHARE));
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(refused, 2, "A beyond its share is refused, not queued");
}

#[test]
fn an_allowance_withdrawn_while_a_job_runs_ends_it_at_its_next_message() {
    let (mut d, c) = deployed();
    let job = submit_call(&mut *d.ic, d.inference, user(20), &classify_call(&c)).unwrap();
    d.ic.tick();
    d.as_admin(calls::disallow_caller(user(20))).unwrap();
    let refusal = NotAuthorized { caller: user(20), needs: Role::Caller };
    assert_eq!(await_call(&mut *d.ic, job, &classify_call(&c)).0.unwrap(), Err(InferenceError::NotAuthorized(refusal)));
}

#[test]
fn an_agency_past_its_instruction_quota_waits_for_the_next_window_even_across_an_upgrade_and_others_do_not() {
    let (mut d, c) = deployed();
    let (first, _) = d.call(user(20), classify_call(&c));
    let cost = first.unwrap().unwrap().instructions;
    // A quota of one and a half classifications per window: the first was charged, the second
    // starts (the quota is not yet spent), the third is refused until the window ends.
    let window = std::time::Duration::from_secs(60);
    d.configure(|cfg| {
        cfg.instruction_quota_per_caller = cost * 3 / 2;
        cfg.quota_window_ns = window.as_nanos() as u64;
    });
    assert!(d.call(user(20), classify_call(&c)).0.unwrap().is_ok());
    let refused = d.call(user(20), classify_call(&c)).0.unwrap();
    let Err(InferenceError::QuotaExceeded { retry_after_ns }) = refused else { panic!("{refused:?}") };
    assert!(retry_after_ns > 0 && retry_after_ns <= window.as_nanos() as u64, "{retry_after_ns}");
    // Queries are refused too once the quota is spent.
    let request =
        ClassifyRequest { model: MODEL.into(), version: None, input: canister_harness::cases::input(&c), top_k: None };
    assert!(matches!(
        d.call(user(20), calls::classify_query(&request)).0.unwrap(),
        Err(InferenceError::QuotaExceeded { .. })
    ));
    // An upgrade does not give a fresh window (the usage is in stable memory).
    d.upgrade_inference();
    assert!(matches!(d.call(user(20), classify_call(&c)).0.unwrap(), Err(InferenceError::QuotaExceeded { .. })));
    // Another agency is not affected.
    assert!(d.call(user(21), classify_call(&c)).0.unwrap().is_ok());
    d.ic.advance_time(window);
    assert!(d.call(user(20), classify_call(&c)).0.unwrap().is_ok(), "a new window");
}
