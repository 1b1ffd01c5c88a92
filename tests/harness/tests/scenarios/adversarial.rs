//! Issue #13, as an attacker and a careless agency would try it: bad inputs across every
//! family of endpoints, each answered by its typed error with the canister's state (registry,
//! uploads, roles, settings, and on the local replica its whole stable memory) unchanged; and
//! the numbered findings, each with a test that failed on the code before the fix.
//!
//! Strangers' update calls come from a canister of their own (`call_from_canister`): from a
//! canister there is no inspect_message, so the method bodies' own checks are what answer.

use candid::Principal;
use canister_harness::deploy::Deployment;
use canister_harness::{user, CallError};
use inference_api::*;
use inference_client::calls;
use inference_tools::upload::UploadOptions;
use model_testdata::{case, Case};
use sha2::{Digest, Sha256};

const MODEL: &str = "cls";

struct World {
    d: Deployment,
    case: Case,
    /// A canister no role was given to.
    stranger: Principal,
    /// A second maintainer, who does not own the first one's upload.
    other_maintainer: Principal,
    /// The maintainer's unfinished upload.
    upload: UploadTicket,
    /// An uploaded version that was never activated.
    inactive: u32,
    checked: usize,
}

fn world() -> World {
    let mut d = Deployment::new(MODEL);
    let case = case("rapidocr_cls", "fp32");
    d.publish(MODEL, &case, &["0", "180"]);
    let inputs = Some(canister_harness::cases::specs(&case));
    let forced = UploadOptions { force: true, ..Deployment::upload_options(1 << 20) };
    let maintainer = d.maintainer;
    let inactive = d.upload_with(maintainer, MODEL, &case.model, vec![], inputs, &forced).expect("v2").version;
    let stranger = d.ic.create_canister(user(60));
    let other_maintainer = user(4);
    d.as_admin(calls::grant_maintainer(other_maintainer)).unwrap();
    let request = upload_request(&case.model);
    let upload = d.call(maintainer, calls::upload_start(&request)).0.unwrap().unwrap();
    World { d, case, stranger, other_maintainer, upload, inactive, checked: 0 }
}

/// Uploads the same file again as a new version (the uploader would otherwise answer the
/// version that already holds it).
fn upload_again(w: &mut World, inputs: Option<Vec<TensorSpec>>) -> u32 {
    let model = w.case.model.clone();
    let forced = UploadOptions { force: true, ..Deployment::upload_options(1 << 20) };
    let maintainer = w.d.maintainer;
    w.d.upload_with(maintainer, MODEL, &model, vec![], inputs, &forced).expect("a new version").version
}

fn upload_request(model: &[u8]) -> UploadRequest {
    UploadRequest {
        name: "pending".into(),
        size: model.len() as u64,
        sha256: Sha256::digest(model).to_vec(),
        chunk_size: 256 * 1024,
        description: String::new(),
        labels: vec![],
        inputs: None,
        text: None,
    }
}

fn input(w: &World) -> InputTensor {
    canister_harness::cases::input(&w.case)
}

fn classify(_: &World, version: Option<u32>, input: InputTensor) -> ClassifyRequest {
    ClassifyRequest { model: MODEL.into(), version, input, top_k: Some(1) }
}

/// Makes the call as `$who` (a canister: `from_canister`; a user: ingress), asserts the reply
/// matches `$typed`, and that nothing the canister holds changed.
macro_rules! refused {
    ($w:expr, from_canister $who:expr, $call:expr, $typed:pat) => {{
        let before = $w.d.state_fingerprint();
        let who = $who;
        let reply = $w.d.call_from_canister(who, $call).expect("the local replica stands in for canisters");
        assert!(matches!(reply, Ok(Err($typed))), "{}: {reply:?}", stringify!($call));
        assert_eq!($w.d.state_fingerprint(), before, "{} changed the state", stringify!($call));
        $w.checked += 1;
    }};
    ($w:expr, $who:expr, $call:expr, $typed:pat) => {{
        let before = $w.d.state_fingerprint();
        let who = $who;
        let (reply, _) = $w.d.call(who, $call);
        assert!(matches!(reply, Ok(Err($typed))), "{}: {reply:?}", stringify!($call));
        assert_eq!($w.d.state_fingerprint(), before, "{} changed the state", stringify!($call));
        $w.checked += 1;
    }};
}

#[test]
fn forty_bad_inputs_get_typed_errors_and_change_nothing() {
    let mut w = world();
    let (m, om, s, agency, admin) = (w.d.maintainer, w.other_maintainer, w.stranger, w.d.agency, w.d.controller);
    let id = w.upload.upload_id;
    let model = w.case.model.clone();
    let chunk0 = model[..256 * 1024].to_vec();
    let chunk = |index: u32, bytes: Vec<u8>, sha256: Vec<u8>| UploadChunk {
        upload_id: id,
        index,
        bytes: serde_bytes::ByteBuf::from(bytes),
        sha256,
    };
    let good_chunk = chunk(0, chunk0.clone(), Sha256::digest(&chunk0).to_vec());

    // ----- the registry -----
    let request = upload_request(&model);
    refused!(w, from_canister s, calls::upload_start(&request), RegistryError::NotAuthorized(_));
    refused!(w, from_canister agency, calls::upload_start(&request), RegistryError::NotAuthorized(_));
    let bad = UploadRequest { name: "no spaces".into(), ..request.clone() };
    refused!(w, m, calls::upload_start(&bad), RegistryError::InvalidRequest(_));
    let bad = UploadRequest { sha256: vec![1; 5], ..request.clone() };
    refused!(w, m, calls::upload_start(&bad), RegistryError::InvalidRequest(_));
    let bad = UploadRequest { size: 0, ..request.clone() };
    refused!(w, m, calls::upload_start(&bad), RegistryError::InvalidRequest(_));
    let bad = UploadRequest { size: 1 << 40, ..request.clone() };
    refused!(w, m, calls::upload_start(&bad), RegistryError::InvalidRequest(_));
    let bad = UploadRequest { chunk_size: 0, ..request.clone() };
    refused!(w, m, calls::upload_start(&bad), RegistryError::ChunkTooLarge { .. });
    let bad = UploadRequest { chunk_size: 3 << 20, ..request.clone() };
    refused!(w, m, calls::upload_start(&bad), RegistryError::ChunkTooLarge { .. });
    let bad = UploadRequest { chunk_size: 1, ..request.clone() };
    refused!(w, m, calls::upload_start(&bad), RegistryError::TooManyChunks { .. });
    refused!(w, from_canister s, calls::upload_chunk(&good_chunk), RegistryError::NotAuthorized(_));
    refused!(w, om, calls::upload_chunk(&good_chunk), RegistryError::NotUploadOwner { .. });
    let unknown = UploadChunk { upload_id: 999, ..good_chunk.clone() };
    refused!(w, m, calls::upload_chunk(&unknown), RegistryError::UnknownUpload(999));
    let out_of_range = chunk(w.upload.chunk_count, vec![0], Sha256::digest([0]).to_vec());
    refused!(w, m, calls::upload_chunk(&out_of_range), RegistryError::ChunkIndexOutOfRange { .. });
    let short = chunk(0, vec![0; 10], Sha256::digest([0; 10]).to_vec());
    refused!(w, m, calls::upload_chunk(&short), RegistryError::ChunkWrongSize { .. });
    let bad_hash = chunk(0, chunk0.clone(), vec![0; 3]);
    refused!(w, m, calls::upload_chunk(&bad_hash), RegistryError::ChunkHashMismatch { .. });
    refused!(w, om, calls::upload_finish(id), RegistryError::NotUploadOwner { .. });
    refused!(w, om, calls::upload_abort(id), RegistryError::NotUploadOwner { .. });
    refused!(w, om, calls::upload_status(id), RegistryError::NotUploadOwner { .. });
    refused!(w, m, calls::upload_finish(id), RegistryError::ChunksMissing { .. });
    refused!(w, from_canister s, calls::upload_finish(id), RegistryError::NotAuthorized(_));
    refused!(w, from_canister s, calls::upload_abort(id), RegistryError::NotAuthorized(_));
    refused!(w, from_canister s, calls::activate(MODEL, 1), RegistryError::NotAuthorized(_));
    refused!(w, m, calls::activate(MODEL, 99), RegistryError::UnknownVersion { .. });
    refused!(w, m, calls::rollback("nothing-here"), RegistryError::UnknownModel(_));
    refused!(w, m, calls::rollback(MODEL), RegistryError::NothingToRollBackTo(_));
    refused!(w, m, calls::delete_version(MODEL, 1), RegistryError::VersionActive { .. });
    refused!(w, from_canister s, calls::delete_version(MODEL, 2), RegistryError::NotAuthorized(_));
    refused!(w, from_canister s, calls::enable_version(MODEL, 2, true), RegistryError::NotAuthorized(_));
    refused!(w, m, calls::enable_version(MODEL, 99, true), RegistryError::UnknownVersion { .. });
    refused!(w, s, calls::list_models(None), RegistryError::NotAuthorized(_));
    refused!(w, Principal::anonymous(), calls::model_info(MODEL, None), RegistryError::NotAuthorized(_));
    refused!(w, s, calls::active_version(MODEL), RegistryError::NotAuthorized(_));
    refused!(w, agency, calls::uploads(), RegistryError::NotAuthorized(_));
    refused!(w, agency, calls::plan_cache(), RegistryError::NotAuthorized(_));

    // ----- roles and settings -----
    refused!(w, s, calls::roles(), RoleError::NotAuthorized(_));
    refused!(w, agency, calls::config(), ConfigError::NotAuthorized(_));
    refused!(
        w,
        m,
        calls::grant_maintainer(user(77)),
        RoleError::NotAuthorized(NotAuthorized { needs: Role::Admin, .. })
    );
    refused!(w, from_canister agency, calls::allow_caller(s), RoleError::NotAuthorized(_));
    refused!(w, admin, calls::grant_maintainer(Principal::anonymous()), RoleError::AnonymousPrincipal);
    refused!(w, admin, calls::allow_caller(Principal::anonymous()), RoleError::AnonymousPrincipal);
    let config = w.d.call(admin, calls::config()).0.unwrap().unwrap();
    refused!(w, m, calls::set_config(&config), ConfigError::NotAuthorized(_));
    for bad in [
        Config { max_jobs: 0, ..config.clone() },
        Config { query_budget: 0, ..config.clone() },
        Config { update_budget: 50_000_000_000, ..config.clone() },
        Config { max_jobs_per_caller: 0, ..config.clone() },
        Config { max_input_elements: 0, ..config.clone() },
        Config { upload_ttl_ns: 1, ..config.clone() },
        Config { plan_cache_bytes: 1, ..config.clone() },
        Config { instruction_quota_per_caller: 0, ..config.clone() },
        Config { quota_window_ns: 0, ..config.clone() },
    ] {
        refused!(w, admin, calls::set_config(&bad), ConfigError::OutOfRange { .. });
    }

    // ----- inference -----
    let good = classify(&w, None, input(&w));
    refused!(w, from_canister s, calls::classify(&good), InferenceError::NotAuthorized(_));
    refused!(w, s, calls::classify_query(&good), InferenceError::NotAuthorized(_));
    let unknown = ClassifyRequest { model: "unknown".into(), ..good.clone() };
    refused!(w, from_canister agency, calls::classify(&unknown), InferenceError::UnknownModel(_));
    let inactive = classify(&w, Some(w.inactive), input(&w));
    refused!(w, from_canister agency, calls::classify(&inactive), InferenceError::VersionNotServing { .. });
    refused!(w, from_canister agency, calls::classify(&classify(&w, Some(99), input(&w))), InferenceError::UnknownVersion { .. });
    let wrong_shape = InputTensor { shape: vec![1, 3, 48, 191], ..input(&w) };
    refused!(w, from_canister agency, calls::classify(&classify(&w, None, wrong_shape)), InferenceError::InputShape { .. });
    let mut nan = input(&w);
    let mut values = w.case.input.clone();
    values[7] = f32::NAN;
    nan.data = TensorData::f32_bytes(&values);
    refused!(w, from_canister agency, calls::classify(&classify(&w, None, nan)), InferenceError::InvalidInput(_));
    let bytes =
        InputTensor { shape: input(&w).shape, data: TensorData::U8(serde_bytes::ByteBuf::from(vec![0; 3 * 48 * 192])) };
    refused!(w, from_canister agency, calls::classify(&classify(&w, None, bytes)), InferenceError::InputDType { .. });
    let two = [input(&w), input(&w)];
    refused!(w, from_canister agency, calls::infer(MODEL, None, &two), InferenceError::InvalidInput(_));
    refused!(w, from_canister agency, calls::profile(MODEL, None, &[input(&w)]), InferenceError::NotAuthorized(_));
    let job = JobRequest::Classify(good.clone());
    refused!(w, from_canister s, calls::submit(&job), JobError::Inference(InferenceError::NotAuthorized(_)));
    refused!(w, agency, calls::status(12345), JobError::UnknownJob(12345));
    refused!(w, agency, calls::result(12345), JobError::UnknownJob(12345));
    refused!(w, from_canister agency, calls::cancel(12345), JobError::UnknownJob(12345));
    refused!(w, from_canister s, calls::self_test(), SelfTestError::NotAuthorized(_));

    assert!(w.checked >= 40, "{} bad inputs checked", w.checked);
}

/// Ingress strangers do not even get their message accepted for update methods (the filter);
/// arguments over a method's limit are refused by the filter and, from a canister, by the
/// method's own decoding, before anything runs.
#[test]
fn the_ingress_filter_and_the_argument_limits_refuse_before_anything_runs() {
    let mut w = world();
    let before = w.d.state_fingerprint();
    let anonymous = Principal::anonymous();
    for (who, call) in [
        (anonymous, calls::rollback(MODEL).method),
        (user(61), calls::self_test().method),
        (user(61), calls::upload_abort(1).method),
    ] {
        let outcome = w.d.ic.update_call(w.d.inference, who, call, candid::encode_args((MODEL,)).unwrap());
        let rejected = outcome.result.expect_err("inspect_message refuses");
        assert!(rejected.message.contains("inspect_message"), "{rejected:?}");
    }
    // A 5 KiB model name: over the 4 KiB limit of small arguments, for a maintainer too.
    let long = "x".repeat(5 * 1024);
    let (reply, _) = w.d.call(w.d.maintainer, calls::rollback(&long));
    assert!(matches!(reply, Err(CallError::Rejected { .. })), "{reply:?}");
    let reply = w.d.call_from_canister(w.d.agency, calls::cancel(1)).unwrap();
    assert!(reply.is_ok());
    // A vector of a million nulls is a few bytes on the wire; the decoding quota refuses it.
    let bomb = candid::encode_args((vec![(); 1_000_000],)).unwrap();
    assert!(bomb.len() < 4 * 1024);
    let outcome = w.d.ic.call_from_canister(w.d.inference, w.d.agency, "status", bomb).unwrap();
    assert!(outcome.result.is_err(), "{:?}", outcome.result);
    assert_eq!(w.d.state_fingerprint(), before);
}

/// #13.4: a version serves only when active or enabled; enabling builds its plan first.
#[test]
fn an_inactive_version_serves_only_once_a_maintainer_enables_it() {
    let mut w = world();
    let (agency, m) = (w.d.agency, w.d.maintainer);
    let request = classify(&w, Some(w.inactive), input(&w));
    let reply = w.d.call_from_canister(agency, calls::classify(&request)).unwrap().unwrap();
    assert_eq!(reply, Err(InferenceError::VersionNotServing { name: MODEL.into(), version: w.inactive }));
    w.d.call(m, calls::enable_version(MODEL, w.inactive, true)).0.unwrap().unwrap();
    let answer = w.d.call_from_canister(agency, calls::classify(&request)).unwrap().unwrap().expect("serves");
    assert_eq!(answer.model.version, w.inactive);
    w.d.call(m, calls::enable_version(MODEL, w.inactive, false)).0.unwrap().unwrap();
    let reply = w.d.call_from_canister(agency, calls::classify(&request)).unwrap().unwrap();
    assert!(matches!(reply, Err(InferenceError::VersionNotServing { .. })));
}

/// #13.6: a deleted newest version's number is not given again.
#[test]
fn a_deleted_versions_number_is_never_given_again() {
    let mut w = world();
    let m = w.d.maintainer;
    w.d.call(m, calls::delete_version(MODEL, w.inactive)).0.unwrap().unwrap();
    assert_eq!(upload_again(&mut w, None), w.inactive + 1);
}

/// #13.4: the plan cache stays within its budget however many versions run; dropped plans are
/// rebuilt on their next use and give the same answer.
#[test]
fn cycling_many_versions_keeps_the_plan_cache_within_its_budget() {
    let mut w = world();
    let (agency, m, admin) = (w.d.agency, w.d.maintainer, w.d.controller);
    let budget = Config::MIN_PLAN_CACHE_BYTES;
    w.d.configure(|c| c.plan_cache_bytes = budget);
    let mut versions = vec![1, w.inactive];
    let specs = Some(canister_harness::cases::specs(&w.case));
    while versions.len() < 8 {
        versions.push(upload_again(&mut w, specs.clone()));
    }
    let mut answers = vec![];
    for round in 0..2 {
        for &v in &versions {
            w.d.call(m, calls::enable_version(MODEL, v, true)).0.unwrap().unwrap_or_else(|e| panic!("v{v}: {e}"));
            let request = classify(&w, Some(v), input(&w));
            let answer = w.d.call_from_canister(agency, calls::classify(&request)).unwrap().unwrap().expect("serves");
            // Version 1 was published with label names, the others without: compare the scores.
            let scores: Vec<(u32, u32)> = answer.labels.iter().map(|l| (l.index, l.score.to_bits())).collect();
            answers.push((round, scores));
            let report = w.d.call(admin, calls::plan_cache()).0.unwrap().unwrap();
            assert!(report.estimated_bytes <= budget, "{report:?}");
        }
    }
    let report = w.d.call(admin, calls::plan_cache()).0.unwrap().unwrap();
    assert!(report.plans < versions.len() as u32, "plans were dropped to stay in the budget: {report:?}");
    let first = &answers[0].1;
    assert!(answers.iter().all(|(_, labels)| labels == first), "every version is the same model");
}

/// #13.9: outputs larger than a reply: the work was done, then the reply trapped. Now `infer`
/// answers a typed error before copying them, and `classify` (whose reply is the top labels)
/// still serves the model.
#[test]
fn outputs_too_large_for_a_reply_get_a_typed_error_and_classify_still_serves() {
    use model_testdata::onnx::{ElemType, Graph};
    let mut w = world();
    let (agency, m) = (w.d.agency, w.d.maintainer);
    const WIDTH: usize = 600_000;
    let wide = Graph::new(13)
        .input("x", ElemType::Float, &[1, WIDTH as i64])
        .output("y", ElemType::Float)
        .node("Relu", &["x"], &["y"], vec![])
        .to_bytes();
    let spec = TensorSpec { name: "x".into(), shape: vec![1, WIDTH as i64], dtype: DType::F32, max_shape: None };
    let info = w.d.upload_as(m, "wide", &wide, vec![], Some(vec![spec]), 1 << 20).unwrap();
    w.d.call(m, calls::activate("wide", info.version)).0.unwrap().unwrap();
    let x = InputTensor { shape: vec![1, WIDTH as u64], data: TensorData::F32(vec![0.5; WIDTH]) };
    let reply = w.d.call_from_canister(agency, calls::infer("wide", None, std::slice::from_ref(&x))).unwrap().unwrap();
    assert!(
        matches!(reply, Err(InferenceError::OutputTooLarge { bytes, .. }) if bytes == WIDTH as u64 * 4),
        "{reply:?}"
    );
    let request = ClassifyRequest { model: "wide".into(), version: None, input: x, top_k: Some(1) };
    let answer = w.d.call_from_canister(agency, calls::classify(&request)).unwrap().unwrap().expect("classify serves");
    assert_eq!(answer.labels[0].score, 0.5);
}

/// #13.10: authorisation was checked only before awaits, so a maintainer revoked while
/// `activate` built the plan still activated. Now the rule is checked again after the build.
#[test]
fn a_maintainer_revoked_while_activate_builds_the_plan_does_not_activate() {
    let mut w = world();
    let (m, admin, inference) = (w.d.maintainer, w.d.controller, w.d.inference);
    let activate = calls::activate(MODEL, w.inactive);
    // Queued in this order: activate runs first and awaits its plan build, which is queued
    // behind the revocation.
    let pending = canister_harness::submit_call(&mut *w.d.ic, inference, m, &activate).unwrap();
    let revoke = calls::revoke_maintainer(m);
    let revoked = canister_harness::submit_call(&mut *w.d.ic, inference, admin, &revoke).unwrap();
    let reply = canister_harness::await_call(&mut *w.d.ic, pending, &activate).0.unwrap();
    assert_eq!(reply, Err(RegistryError::NotAuthorized(NotAuthorized { caller: m, needs: Role::Maintainer })));
    canister_harness::await_call(&mut *w.d.ic, revoked, &revoke).0.unwrap().unwrap();
    let active = w.d.call(admin, calls::active_version(MODEL)).0.unwrap().unwrap();
    assert_eq!(active, Some(1), "the version active before stays active");
}

/// #13.6, interleaved: the version an inference read is deleted while the inference waits for
/// its plan, then another file is uploaded under the same name (taking the freed blob). The
/// inference gets `UnknownVersion` for the version it asked for, never another file's answer
/// under that number; the new file gets a new number and answers as itself.
#[test]
fn a_version_deleted_while_an_inference_awaits_its_plan_is_never_run_as_another_file() {
    let mut w = world();
    let (m, inference, caller) = (w.d.maintainer, w.d.inference, user(30));
    w.d.as_admin(calls::allow_caller(caller)).unwrap();
    w.d.call(m, calls::enable_version(MODEL, w.inactive, true)).0.unwrap().unwrap();
    let old = w.d.call(m, calls::model_info(MODEL, Some(w.inactive))).0.unwrap().unwrap();
    // After an upgrade no plan is in the heap: the inference builds it in a message of its own.
    w.d.upgrade_inference();
    let request = classify(&w, Some(w.inactive), input(&w));
    let classify_old = calls::classify(&request);
    // Queued in this order: the inference reads the version and awaits its plan build, which is
    // queued behind the delete.
    let pending = canister_harness::submit_call(&mut *w.d.ic, inference, caller, &classify_old).unwrap();
    let delete = calls::delete_version(MODEL, w.inactive);
    let deleted = canister_harness::submit_call(&mut *w.d.ic, inference, m, &delete).unwrap();
    let reply = canister_harness::await_call(&mut *w.d.ic, pending, &classify_old).0.unwrap();
    assert_eq!(reply, Err(InferenceError::UnknownVersion { name: MODEL.into(), version: w.inactive }));
    canister_harness::await_call(&mut *w.d.ic, deleted, &delete).0.unwrap().unwrap();

    // Another file under the same name: the next number, in the blob the deleted version freed.
    let other = case("rapidocr_cls", "qdq");
    let specs = Some(canister_harness::cases::specs(&other));
    let options = Deployment::upload_options(1 << 20);
    let new = w.d.upload_with(m, MODEL, &other.model, vec![], specs, &options).expect("uploads");
    assert_eq!((new.version, new.blob), (w.inactive + 1, old.blob));
    let reply = w.d.call(caller, calls::classify(&request)).0.unwrap();
    assert_eq!(reply, Err(InferenceError::UnknownVersion { name: MODEL.into(), version: w.inactive }));
    w.d.call(m, calls::enable_version(MODEL, new.version, true)).0.unwrap().unwrap();
    let request =
        ClassifyRequest { version: Some(new.version), input: canister_harness::cases::input(&other), ..request };
    let answer = w.d.call(caller, calls::classify(&request)).0.unwrap().expect("the new version serves");
    assert_eq!((answer.model.version, answer.model.sha256), (new.version, Sha256::digest(&other.model).to_vec()));
    let best = (0..other.expected.len()).max_by(|&a, &b| other.expected[a].total_cmp(&other.expected[b])).unwrap();
    assert_eq!(answer.labels[0].index as usize, best, "the new file's own answer");
}
