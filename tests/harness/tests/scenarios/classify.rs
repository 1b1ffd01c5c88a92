//! Classification end to end on the real canisters: the agency canister's inter-canister
//! integration, who may call, determinism across budgets and upgrades, bad inputs, queries,
//! concurrent jobs, the queue limit and stopping with jobs in flight.

use agency_api::{AgencyError, Document};
use canister_harness::deploy::Deployment;
use canister_harness::{await_call, submit_call, user, Call, CallCost};
use inference_api::{
    ClassifyRequest, DType, Inference, InferenceError, InputTensor, NotAuthorized, Profile, Role, RoleError,
    ShapeMismatch, TensorData,
};
use inference_client::calls;
use model_testdata::{argmax, case, Case};

use crate::text_direction::{deployed, MODEL};

use canister_harness::cases::input;

/// Raw outputs as an explicitly allowed user calling `infer` by ingress.
fn infer(d: &mut Deployment, c: &Case) -> (Inference, CallCost) {
    let (r, cost) = d.call(user(5), calls::infer(MODEL, None, &[input(c)]));
    (r.expect("infer replies").expect("infer succeeds"), cost)
}

#[test]
fn the_agency_canister_gets_a_decision_with_the_model_that_made_it() {
    let (mut d, c) = deployed();
    let document = Document { id: "permit-0042".into(), image: input(&c) };
    let (r, cost) = d.call_agency(user(9), agency_api::calls::decide(&document));
    let decision = r.unwrap().expect("a decision");
    let expected = ["0", "180"][argmax(&c.expected)];
    assert_eq!(decision.label, expected);
    assert!((decision.score - c.expected[argmax(&c.expected)]).abs() < 1e-5);
    assert_eq!((decision.model.name.as_str(), decision.model.version), (MODEL, 1));
    assert_eq!(decision.model.sha256.len(), 32);
    if let Some(messages) = cost.messages {
        // agency's call + inference's classify + the agency's reply callback, at least
        assert!(messages >= 3, "{:?}", cost.per_message);
    }
    assert_eq!(decision.submitted_by, Some(user(9)));
    let (all, _) = d.call_agency(user(9), agency_api::calls::decisions(None, 10));
    assert_eq!(all.unwrap().unwrap().decisions, vec![decision.clone()]);
    // Decisions are immutable records.
    let (again, _) = d.call_agency(user(9), agency_api::calls::decide(&document));
    let decided = AgencyError::AlreadyDecided { document_id: document.id.clone(), decision: Some(Box::new(decision)) };
    assert_eq!(again.unwrap(), Err(decided));
}

#[test]
fn unlisted_canisters_and_ingress_callers_are_refused() {
    let (mut d, c) = deployed();
    let request = ClassifyRequest { model: MODEL.into(), version: None, input: input(&c), top_k: None };
    // An ingress caller that is not on the allow-list: inspect_message refuses the message.
    let (r, _) = d.call(user(7), calls::classify(&request));
    assert!(r.is_err(), "ingress classify must be refused");
    // A query is not filtered by inspect_message: the method refuses it itself.
    let (r, _) = d.call(user(7), calls::classify_query(&request));
    let refusal = NotAuthorized { caller: user(7), needs: Role::Caller };
    assert_eq!(r.unwrap(), Err(InferenceError::NotAuthorized(refusal)));
    // An agency canister that was never allowed gets a typed refusal through its own API.
    d.as_admin(calls::disallow_caller(d.agency)).unwrap();
    let document = Document { id: "x".into(), image: InputTensor { shape: vec![1], data: TensorData::F32(vec![0.0]) } };
    let (r, _) = d.call_agency(user(9), agency_api::calls::decide(&document));
    let refusal = NotAuthorized { caller: d.agency, needs: Role::Caller };
    assert_eq!(r.unwrap(), Err(AgencyError::Inference(InferenceError::NotAuthorized(refusal))));
    // Once an admin allows a user explicitly, ingress inference works for that user.
    d.as_admin(calls::allow_caller(user(7))).unwrap();
    let (r, _) = d.call(user(7), calls::classify(&request));
    assert!(r.unwrap().is_ok());
    // Only admins manage the list; the anonymous principal can hold no role.
    let maintainer = d.maintainer;
    let (r, _) = d.call(maintainer, calls::allow_caller(user(8)));
    let refusal = NotAuthorized { caller: maintainer, needs: Role::Admin };
    assert_eq!(r.unwrap(), Err(RoleError::NotAuthorized(refusal)));
    assert_eq!(d.as_admin(calls::allow_caller(candid::Principal::anonymous())), Err(RoleError::AnonymousPrincipal));
}

#[test]
fn outputs_match_onnxruntime_and_are_bit_identical_across_budgets_and_an_upgrade() {
    let (mut d, c) = deployed();
    d.as_admin(calls::allow_caller(user(5))).unwrap();
    let bits = |inf: &Inference| {
        inf.outputs[0].data.as_f32().expect("f32 output").iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    };
    let (whole, _) = infer(&mut d, &c);
    assert_eq!(whole.messages, 1);
    for (got, want) in whole.outputs[0].data.as_f32().expect("f32 output").iter().zip(&c.expected) {
        assert!((got - want).abs() <= 1e-5, "{:?} vs {:?}", whole.outputs[0].data, c.expected);
    }
    let mut messages = vec![];
    // 1 instruction: every message runs exactly one node.
    for budget in [1u64, 2_000_000, 20_000_000, 30_000_000_000] {
        d.configure(|cfg| cfg.update_budget = budget);
        let (split, cost) = infer(&mut d, &c);
        assert_eq!(bits(&split), bits(&whole), "budget {budget}");
        if let Some(max) = cost.max_instructions_per_message {
            assert!(max < 40_000_000_000);
        }
        messages.push(split.messages);
    }
    assert!(messages[0] > messages[1] && messages[1] > messages[2] && messages[3] == 1, "{messages:?}");
    // After an upgrade the plan is rebuilt from stable memory: same bits.
    d.upgrade_inference();
    let (after, _) = infer(&mut d, &c);
    assert_eq!(bits(&after), bits(&whole));
}

#[test]
fn bad_inputs_get_typed_errors() {
    let (mut d, c) = deployed();
    d.as_admin(calls::allow_caller(user(5))).unwrap();
    let mut call = |model: &str, t: InputTensor| {
        let request = ClassifyRequest { model: model.into(), version: None, input: t, top_k: None };
        d.call(user(5), calls::classify(&request)).0.unwrap()
    };
    assert_eq!(call("no-such-model", input(&c)), Err(InferenceError::UnknownModel("no-such-model".into())));
    let mut wrong_shape = input(&c);
    wrong_shape.shape = vec![1, 3, 48, 100];
    assert_eq!(
        call(MODEL, wrong_shape),
        Err(InferenceError::InputShape {
            input: "x".into(),
            shape: vec![1, 3, 48, 100],
            declared: vec![1, 3, 48, 192],
            max_shape: None,
            mismatch: ShapeMismatch::Fixed { dim: 3, expected: 192 },
        })
    );
    let mut short = input(&c);
    short.data = TensorData::F32(vec![0.5; 10]);
    assert!(matches!(call(MODEL, short), Err(InferenceError::InvalidInput(m)) if m.contains("elements")));
    let mut nan = c.input.clone();
    nan[17] = f32::NAN;
    assert!(
        matches!(call(MODEL, InputTensor { data: TensorData::F32(nan), ..input(&c) }), Err(InferenceError::InvalidInput(m)) if m.contains("not finite"))
    );
    let mut nan_bytes = TensorData::f32_bytes(&c.input);
    if let TensorData::F32Bytes(b) = &mut nan_bytes {
        b[4 * 17..4 * 18].copy_from_slice(&f32::INFINITY.to_le_bytes());
    }
    assert!(
        matches!(call(MODEL, InputTensor { data: nan_bytes, ..input(&c) }), Err(InferenceError::InvalidInput(m)) if m.contains("element 17 is not finite"))
    );
    let mut ragged = TensorData::f32_bytes(&c.input);
    if let TensorData::F32Bytes(b) = &mut ragged {
        b.push(0);
    }
    assert!(
        matches!(call(MODEL, InputTensor { data: ragged, ..input(&c) }), Err(InferenceError::InvalidInput(m)) if m.contains("not a whole number of f32"))
    );
    let bytes = InputTensor {
        shape: input(&c).shape,
        data: TensorData::U8(serde_bytes::ByteBuf::from(vec![0u8; c.input.len()])),
    };
    assert_eq!(
        call(MODEL, bytes),
        Err(InferenceError::InputDType { input: "x".into(), expected: DType::F32, got: DType::U8 })
    );
    // Still serving.
    assert!(call(MODEL, input(&c)).is_ok());
}

#[test]
fn f32_sent_as_bytes_or_as_a_vector_is_the_same_tensor() {
    let (mut d, c) = deployed();
    d.as_admin(calls::allow_caller(user(5))).unwrap();
    let as_bytes = input(&c);
    assert!(matches!(as_bytes.data, TensorData::F32Bytes(_)));
    let as_vector = InputTensor { data: TensorData::F32(c.input.clone()), ..as_bytes.clone() };
    let mut run = |t: &InputTensor| d.call(user(5), calls::infer(MODEL, None, std::slice::from_ref(t)));
    run(&as_vector).0.unwrap().unwrap(); // The first call also loads the plan.
    let ((bytes, bytes_cost), (vector, vector_cost)) = (run(&as_bytes), run(&as_vector));
    let (bytes, vector) = (bytes.unwrap().unwrap(), vector.unwrap().unwrap());
    assert_eq!(bytes.outputs, vector.outputs);
    let digest = |i: &Inference| i.receipt.as_ref().expect("a receipt").input_sha256.clone();
    assert_eq!(digest(&bytes), digest(&vector), "one tensor, one digest, whichever form carried it");
    // The client recomputes it (the canister hashes the image's four segments in vector lanes).
    assert_eq!(digest(&bytes), inference_api::input_sha256(std::slice::from_ref(&as_vector)));
    // The reason the form exists: candid decodes a vec float32 element by element.
    if let (Some(bytes), Some(vector)) = (bytes_cost.instructions, vector_cost.instructions) {
        assert!(bytes + 2_000_000 < vector, "{bytes} instructions as bytes, {vector} as a vector");
    }
}

#[test]
fn classify_query_answers_small_models_and_refuses_what_does_not_fit() {
    let (mut d, c) = deployed();
    d.as_admin(calls::allow_caller(user(5))).unwrap();
    let request = ClassifyRequest { model: MODEL.into(), version: None, input: input(&c), top_k: Some(2) };
    let (r, _) = d.call(user(5), calls::classify_query(&request));
    let answer = r.unwrap().unwrap();
    assert_eq!(answer.labels.len(), 2);
    assert_eq!(answer.labels[0].index as usize, argmax(&c.expected));
    d.configure(|cfg| cfg.query_budget = 1_000_000);
    let (r, _) = d.call(user(5), calls::classify_query(&request));
    assert_eq!(r.unwrap(), Err(InferenceError::TooExpensiveForQuery { budget: 1_000_000 }));
}

fn infer_call(c: &Case) -> Call<Result<Inference, InferenceError>> {
    calls::infer(MODEL, None, &[input(c)])
}

/// Submits an `infer` without waiting for it, so that several run at once.
fn submit_infer(d: &mut Deployment, c: &Case, who: candid::Principal) -> u64 {
    submit_call(&mut *d.ic, d.inference, who, &infer_call(c)).expect("accepted")
}

fn await_infer(d: &mut Deployment, c: &Case, id: u64) -> Result<Inference, InferenceError> {
    await_call(&mut *d.ic, id, &infer_call(c)).0.expect("replies")
}

#[test]
fn concurrent_jobs_interleave_and_agree_and_the_queue_limit_answers_busy() {
    let (mut d, c) = deployed();
    for u in [5, 6, 7] {
        d.as_admin(calls::allow_caller(user(u))).unwrap();
    }
    d.configure(|cfg| {
        cfg.update_budget = 5_000_000;
        cfg.max_jobs = 2;
    });
    let a = submit_infer(&mut d, &c, user(5));
    let b = submit_infer(&mut d, &c, user(6));
    let busy = submit_infer(&mut d, &c, user(7));
    let (ra, rb) = (await_infer(&mut d, &c, a), await_infer(&mut d, &c, b));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra.messages > 2);
    assert_eq!(ra.outputs, rb.outputs);
    assert_eq!(await_infer(&mut d, &c, busy), Err(InferenceError::Busy { in_flight: 2, limit: 2 }));
    // The slots were released: a new job runs.
    let again = submit_infer(&mut d, &c, user(7));
    assert!(await_infer(&mut d, &c, again).is_ok());
}

#[test]
fn stopping_with_jobs_in_flight_ends_them_with_a_typed_error_then_upgrade_and_serve() {
    let (mut d, c) = deployed();
    d.as_admin(calls::allow_caller(user(5))).unwrap();
    d.configure(|cfg| cfg.update_budget = 1);
    let job = submit_infer(&mut d, &c, user(5));
    // Let the job start and yield a few times before the stop arrives.
    for _ in 0..3 {
        d.ic.tick();
    }
    d.ic.stop_canister(d.inference, d.controller).expect("the canister stops");
    assert_eq!(await_infer(&mut d, &c, job), Err(InferenceError::Stopping));
    d.upgrade_inference();
    d.ic.start_canister(d.inference, d.controller).unwrap();
    let job = submit_infer(&mut d, &c, user(5));
    assert!(await_infer(&mut d, &c, job).is_ok());
}

/// Local replica only (PocketIC cannot inject a trap): a trap in the middle of a multi-message
/// job ends the job, the caller gets an answer, and the canister stays consistent — its job
/// slot is released and the next job runs.
#[test]
fn a_trap_in_the_middle_of_a_job_leaves_the_canister_consistent() {
    use canister_harness::LocalBackend;
    let c = case("rapidocr_cls", "fp32");
    let mut d = Deployment::with_backend(Box::new(LocalBackend::new()), MODEL);
    d.publish(MODEL, &c, &["0", "180"]);
    d.as_admin(calls::allow_caller(user(5))).unwrap();
    d.configure(|cfg| {
        cfg.update_budget = 5_000_000;
        cfg.max_jobs = 1;
    });
    let job = submit_infer(&mut d, &c, user(5));
    // Let the job run a few messages, then make the inference canister's next message trap.
    for _ in 0..4 {
        d.ic.tick();
    }
    let inference = d.inference;
    d.ic.as_any().downcast_mut::<LocalBackend>().unwrap().replica.trap_nth_message(inference, 1);
    let (out, _) = await_call(&mut *d.ic, job, &infer_call(&c));
    let err = out.expect_err("the job cannot reply once its continuation trapped");
    assert!(err.to_string().contains("injected trap"), "{err}");
    // The slot was released (max_jobs = 1): a new job runs to the same answer as ever.
    let again = submit_infer(&mut d, &c, user(5));
    let answer = await_infer(&mut d, &c, again).expect("a fresh job after the trap");
    for (g, e) in answer.outputs[0].data.as_f32().expect("f32 output").iter().zip(&c.expected) {
        assert!((g - e).abs() <= 1e-5);
    }
}

#[test]
fn a_maintainer_profiles_a_model_node_by_node_and_nobody_else_can() {
    let (mut d, c) = deployed();
    d.as_admin(calls::allow_caller(user(5))).unwrap();
    d.set_budget(20_000_000);
    let profile = |d: &mut Deployment, who| -> Result<Result<Profile, InferenceError>, _> {
        d.call(who, calls::profile(MODEL, None, &[input(&c)])).0
    };
    // An allowed caller is not a maintainer: refused at ingress (and by the method, typed).
    let refused = profile(&mut d, user(5));
    assert!(matches!(refused, Err(_) | Ok(Err(InferenceError::NotAuthorized(_)))), "{refused:?}");
    let maintainer = d.maintainer;
    let logged = |d: &mut Deployment| d.call(maintainer, calls::audit_head()).0.unwrap().logging_instructions;
    let logged_before = logged(&mut d);
    let p = profile(&mut d, maintainer).expect("profile replies").expect("a maintainer profiles");
    let logging = logged(&mut d) - logged_before;
    assert!(p.messages > 1, "split over messages by the 20 M budget");
    assert!(p.nodes.len() > 50 && p.nodes.iter().all(|n| n.instructions > 0), "{:?}", p.nodes);
    let in_nodes: u64 = p.nodes.iter().map(|n| n.instructions).sum();
    // The nodes account for nearly all of the inference; the rest is decoding, messages, reply,
    // and the audit entry (hashing the input and output). That rest is a fixed cost (about 6.7 M
    // here over four messages), so its share grows as the nodes get faster: 85 %.
    let unlogged = p.instructions - logging;
    assert!(in_nodes <= unlogged && in_nodes * 100 >= unlogged * 85, "{in_nodes} of {unlogged} ({logging} logging)");
    assert!(p.nodes.iter().any(|n| n.op == "OptMatMul"), "tract's optimised operators are named");
    // An inference of the same input costs what the profile measured, give or take its own overhead.
    let (inference, _) = infer(&mut d, &c);
    let ratio = inference.instructions as f64 / p.instructions as f64;
    assert!((0.95..1.05).contains(&ratio), "infer {} vs profile {}", inference.instructions, p.instructions);
}
