//! A pool of inference canisters (#16): one upload, copied canister to canister (`replicate`),
//! every member serving the same file with the same answers.

use canister_harness::cases::input;
use canister_harness::deploy::Deployment;
use std::cell::RefCell;
use std::rc::Rc;

use canister_harness::{call, canister_wasm, user, CallError, Ic, LocalBackend, Principal};
use inference_api::{ClassifyRequest, InitArgs, ModelInfo, NotAuthorized, RegistryError, Role};
use inference_client::calls;
use inference_client::{Router, Transport};
use model_testdata::case;
use sha2::Digest;

const MODEL: &str = "rapidocr_cls.fp32";

/// Installs another inference canister beside `d`'s, with `d`'s maintainer as its maintainer and
/// user(5) as an allowed caller.
fn member(d: &mut Deployment) -> Principal {
    let id = d.ic.create_canister(d.controller);
    let init = candid::encode_args((Some(InitArgs { kernels: None }),)).unwrap();
    d.ic.install_canister(id, &canister_wasm("inference_canister"), init, d.controller).expect("installs");
    let (controller, maintainer) = (d.controller, d.maintainer);
    call(&mut *d.ic, id, controller, calls::grant_maintainer(maintainer)).0.unwrap().unwrap();
    call(&mut *d.ic, id, controller, calls::allow_caller(user(5))).0.unwrap().unwrap();
    id
}

fn replicate(d: &mut Deployment, on: Principal, from: Principal, version: u32) -> Result<ModelInfo, RegistryError> {
    let maintainer = d.maintainer;
    call(&mut *d.ic, on, maintainer, calls::replicate(from, MODEL, version)).0.unwrap()
}

#[test]
fn a_three_canister_pool_receives_one_upload_and_every_member_serves_the_same_file() {
    let mut d = Deployment::new(MODEL);
    let c = case("rapidocr_cls", "fp32");
    let source = d.publish(MODEL, &c, &[]);
    let first = d.inference;
    d.as_admin(calls::allow_caller(user(5))).unwrap();
    let members = [member(&mut d), member(&mut d)];

    // The members may read the first one's files only once it makes them its maintainers.
    let refused = replicate(&mut d, members[0], first, source.version).unwrap_err();
    assert!(matches!(refused, RegistryError::PeerFailed { peer, .. } if peer == first), "{refused:?}");
    for m in members {
        d.as_admin(calls::grant_maintainer(m)).unwrap();
    }

    let request = ClassifyRequest { model: MODEL.into(), version: None, input: input(&c), top_k: Some(3) };
    let (reference, _) = d.call(user(5), calls::classify(&request));
    let reference = reference.unwrap().unwrap();
    for m in members {
        let copy = replicate(&mut d, m, first, source.version).expect("the member copies the version");
        assert_eq!(
            (&copy.sha256, copy.size, &copy.inputs, &copy.labels),
            (&source.sha256, source.size, &source.inputs, &source.labels)
        );
        let maintainer = d.maintainer;
        call(&mut *d.ic, m, maintainer, calls::activate(MODEL, copy.version)).0.unwrap().unwrap();
        let answer = call(&mut *d.ic, m, user(5), calls::classify(&request)).0.unwrap().unwrap();
        assert_eq!(answer.records, reference.records, "member {m} answers as the first does");
        // Nothing is left over: the copy's upload finished.
        assert!(call(&mut *d.ic, m, maintainer, calls::uploads()).0.unwrap().unwrap().is_empty());
    }

    // Only maintainers copy: a user is refused at the ingress filter, a canister that is not a
    // maintainer by the endpoint itself; and only what exists is copied.
    let stranger = call(&mut *d.ic, members[0], user(5), calls::replicate(first, MODEL, 1)).0;
    assert!(matches!(stranger, Err(CallError::Rejected { .. })), "{stranger:?}");
    let copy_call = calls::replicate(first, MODEL, 1);
    if let Some(outcome) = d.ic.call_from_canister(members[0], members[1], copy_call.method, copy_call.arg.clone()) {
        let refused = canister_harness::reply(&copy_call, outcome.result).unwrap();
        assert!(
            matches!(refused, Err(RegistryError::NotAuthorized(NotAuthorized { needs: Role::Maintainer, .. }))),
            "{refused:?}"
        );
    }
    let missing = replicate(&mut d, members[1], first, 99).unwrap_err();
    assert!(matches!(missing, RegistryError::PeerFailed { .. }), "{missing:?}");
}

/// A member of the pool as the router reaches it: the backend, shared by every member.
struct Member {
    ic: Rc<RefCell<Box<dyn Ic>>>,
    canister: Principal,
    sender: Principal,
}

impl Transport for Member {
    async fn update(&self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        let outcome = self.ic.borrow_mut().update_call(self.canister, self.sender, method, arg);
        outcome.result.map_err(|r| r.message)
    }
    async fn query(&self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        let outcome = self.ic.borrow_mut().query_call(self.canister, self.sender, method, arg);
        outcome.result.map_err(|r| r.message)
    }
}

#[test]
fn the_router_loses_no_request_while_a_member_is_stopped_upgraded_and_started() {
    let mut d = Deployment::new(MODEL);
    let c = case("rapidocr_cls", "fp32");
    let source = d.publish(MODEL, &c, &[]);
    d.as_admin(calls::allow_caller(user(5))).unwrap();
    let second = member(&mut d);
    d.as_admin(calls::grant_maintainer(second)).unwrap();
    let first = d.inference;
    let copy = replicate(&mut d, second, first, source.version).unwrap();
    let maintainer = d.maintainer;
    call(&mut *d.ic, second, maintainer, calls::activate(MODEL, copy.version)).0.unwrap().unwrap();

    let controller = d.controller;
    let ic: Rc<RefCell<Box<dyn Ic>>> =
        Rc::new(RefCell::new(std::mem::replace(&mut d.ic, Box::new(LocalBackend::new()))));
    let router = Router::new(
        [first, second].into_iter().map(|canister| Member { ic: ic.clone(), canister, sender: user(5) }).collect(),
    );
    let request = |seed: usize| {
        let mut input = input(&c);
        if let inference_api::TensorData::F32(values) = &mut input.data {
            values[0] = seed as f32 / 100.0; // a different request, the same answer's shape
        }
        ClassifyRequest { model: MODEL.into(), version: None, input, top_k: Some(1) }
    };
    let classify = |seed: usize| futures::executor::block_on(router.classify(&request(seed)));
    // Requests that go first to the member being upgraded.
    let to_first: Vec<usize> = (0..200).filter(|&s| router.first_member(&request(s)) == 0).take(3).collect();
    assert_eq!(to_first.len(), 3);

    for &seed in &to_first {
        assert!(classify(seed).unwrap().is_ok());
    }
    ic.borrow_mut().stop_canister(first, controller).unwrap();
    for &seed in &to_first {
        let answer = classify(seed).unwrap().expect("the other member answers while this one is stopped");
        assert_eq!(answer.model.sha256, source.sha256);
    }
    ic.borrow_mut()
        .upgrade_canister(first, &canister_wasm("inference_canister"), candid::encode_args(()).unwrap(), controller)
        .unwrap();
    for &seed in &to_first {
        assert!(classify(seed).unwrap().is_ok(), "stopped after the upgrade, still served");
    }
    ic.borrow_mut().start_canister(first, controller).unwrap();
    for &seed in &to_first {
        assert!(classify(seed).unwrap().is_ok());
    }
}

#[test]
fn a_copy_resumes_the_callers_unfinished_upload_of_the_same_file_and_chunks_past_the_end_are_refused() {
    let mut d = Deployment::new(MODEL);
    let c = case("rapidocr_cls", "fp32");
    let source = d.publish(MODEL, &c, &[]);
    let first = d.inference;
    let second = member(&mut d);
    d.as_admin(calls::grant_maintainer(second)).unwrap();
    let maintainer = d.maintainer;

    // An unfinished copy, as an interrupted `replicate` leaves it: the upload, its first chunk.
    let chunk = inference_api::COPY_CHUNK_BYTES as usize;
    let request = inference_api::UploadRequest {
        name: MODEL.into(),
        size: source.size,
        sha256: source.sha256.clone(),
        chunk_size: inference_api::COPY_CHUNK_BYTES,
        description: String::new(),
        labels: vec![],
        inputs: Some(source.inputs.clone()),
    };
    let ticket = call(&mut *d.ic, second, maintainer, calls::upload_start(&request)).0.unwrap().unwrap();
    let bytes = c.model[..chunk.min(c.model.len())].to_vec();
    let sha256 = sha2::Sha256::digest(&bytes).to_vec();
    let first_chunk = inference_api::UploadChunk { upload_id: ticket.upload_id, index: 0, bytes: bytes.into(), sha256 };
    call(&mut *d.ic, second, maintainer, calls::upload_chunk(&first_chunk)).0.unwrap().unwrap();

    // The copy finishes that upload rather than starting another.
    let copy = replicate(&mut d, second, first, source.version).unwrap();
    assert_eq!(copy.sha256, source.sha256);
    assert!(call(&mut *d.ic, second, maintainer, calls::uploads()).0.unwrap().unwrap().is_empty());

    let chunks = source.size.div_ceil(chunk as u64) as u32;
    let past_end = call(&mut *d.ic, first, maintainer, calls::version_chunk(MODEL, source.version, chunks)).0.unwrap();
    assert_eq!(past_end, Err(RegistryError::ChunkIndexOutOfRange { index: chunks, chunk_count: chunks }));
}
