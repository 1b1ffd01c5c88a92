//! A pool of inference canisters (#16): one upload, copied canister to canister (`replicate`),
//! every member serving the same file with the same answers.

use canister_harness::cases::input;
use canister_harness::deploy::Deployment;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use canister_harness::{call, canister_wasm, user, CallError, Ic, LocalBackend, Principal};
use inference_api::{
    Classification, ClassifyRequest, InferenceError, InitArgs, ModelInfo, ModelRef, NotAuthorized, PoolView,
    RegistryError, Role, RoleError, ServingVersion,
};
use inference_client::{calls, pool};
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
        let mut values = c.input.clone();
        values[0] = seed as f32 / 100.0; // a different request, the same answer's shape
        input.data = inference_api::TensorData::f32_bytes(&values);
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
        text: None,
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

/// Ticks until `member` has no catch-up running (a catch-up is a few dozen messages).
fn caught_up(ic: &mut dyn Ic, member: Principal, reader: Principal) -> PoolView {
    for _ in 0..10_000 {
        let view = call(ic, member, reader, calls::pool()).0.unwrap().unwrap();
        if !view.catching_up {
            return view;
        }
        ic.tick();
    }
    panic!("{member} is still catching up");
}

fn serving(ic: &mut dyn Ic, member: Principal, reader: Principal) -> Vec<ServingVersion> {
    call(ic, member, reader, calls::serving_versions(MODEL)).0.unwrap().unwrap()
}

fn shas(refs: &[ModelRef]) -> Vec<&[u8]> {
    refs.iter().map(|r| r.sha256.as_slice()).collect()
}

/// Sets the membership `pool` on each of `on` (as the controller), as `inference-cli pool`
/// does, through the typed client's pool helper.
fn set_pool(ic: &Rc<RefCell<Box<dyn Ic>>>, controller: Principal, on: &[Principal], pool: &[Principal]) {
    let members: Vec<_> = on
        .iter()
        .map(|&canister| pool::Member::new(canister, Member { ic: ic.clone(), canister, sender: controller }))
        .collect();
    futures::executor::block_on(pool::set_members(&members, pool)).unwrap();
}

fn shared(d: &mut Deployment) -> Rc<RefCell<Box<dyn Ic>>> {
    Rc::new(RefCell::new(std::mem::replace(&mut d.ic, Box::new(LocalBackend::new()))))
}

/// A deployment whose first member serves the model's fp32 file and holds its f16 file unused
/// (uploaded, serving nowhere yet), with user(5) an allowed caller: the case, then both records.
fn two_files() -> (Deployment, model_testdata::Case, ModelInfo, ModelInfo) {
    let mut d = Deployment::new(MODEL);
    let (v1_case, v2_case) = (case("rapidocr_cls", "fp32"), case("rapidocr_cls", "f16"));
    let v1 = d.publish(MODEL, &v1_case, &[]);
    let specs = Some(canister_harness::cases::specs(&v2_case));
    let v2 = d.upload_as(d.maintainer, MODEL, &v2_case.model, vec![], specs, 256 * 1024).unwrap();
    d.as_admin(calls::allow_caller(user(5))).unwrap();
    (d, v1_case, v1, v2)
}

#[test]
fn members_keep_their_pool_copy_from_each_other_and_a_late_member_catches_up_by_itself() {
    let (mut d, v1_case, v1, v2) = two_files();
    let (first, controller, maintainer) = (d.inference, d.controller, d.maintainer);
    let (m1, m2) = (member(&mut d), member(&mut d));
    let request = ClassifyRequest { model: MODEL.into(), version: None, input: input(&v1_case), top_k: Some(3) };
    let ic = shared(&mut d);

    // Before a pool, another canister may not read the first's files; nor may anyone but an
    // admin set a pool, or anyone but a reader see it.
    let chunk = calls::version_chunk(MODEL, v1.version, 0);
    let refused = ic.borrow_mut().call_from_canister(first, m1, chunk.method, chunk.arg.clone());
    if let Some(outcome) = refused {
        let refused = canister_harness::reply(&chunk, outcome.result).unwrap();
        assert!(matches!(refused, Err(RegistryError::NotAuthorized(NotAuthorized { needs: Role::Peer, .. }))));
    }
    let by_maintainer = call(&mut **ic.borrow_mut(), first, maintainer, calls::set_pool(&[first, m1])).0.unwrap();
    assert!(matches!(by_maintainer, Err(RoleError::NotAuthorized(NotAuthorized { needs: Role::Admin, .. }))));
    let stranger = call(&mut **ic.borrow_mut(), first, user(9), calls::pool()).0.unwrap();
    assert!(matches!(stranger, Err(RegistryError::NotAuthorized(NotAuthorized { needs: Role::Caller, .. }))));

    // A pool of two: the second member copies, checks and activates the first's file by itself.
    set_pool(&ic, controller, &[first, m1], &[first, m1]);
    let view = caught_up(&mut **ic.borrow_mut(), m1, user(5));
    assert_eq!(view.members, sorted(&[first, m1]));
    let report = view.last_catch_up.expect("a catch-up ran");
    assert_eq!(shas(&report.copied), vec![v1.sha256.as_slice()]);
    assert_eq!(shas(&report.activated), vec![v1.sha256.as_slice()]);
    assert!(report.failed.is_empty(), "{report:?}");
    let reference = call(&mut **ic.borrow_mut(), first, user(5), calls::classify(&request)).0.unwrap().unwrap();
    let answer = call(&mut **ic.borrow_mut(), m1, user(5), calls::classify(&request)).0.unwrap().unwrap();
    assert_eq!((answer.records, &answer.model.sha256), (reference.records.clone(), &v1.sha256));
    let roles = call(&mut **ic.borrow_mut(), first, maintainer, calls::roles()).0.unwrap().unwrap();
    assert_eq!(roles.peers, vec![m1]);

    // The second file, copied by the member as a peer (it is no maintainer of the first), and
    // the pool switched to it in two phases: the first file stays enabled everywhere.
    let copy = call(&mut **ic.borrow_mut(), m1, maintainer, calls::replicate(first, MODEL, v2.version)).0.unwrap();
    assert_eq!(copy.unwrap().sha256, v2.sha256, "a peer reads the first's file");
    let as_maintainer: Vec<_> = [first, m1]
        .iter()
        .map(|&c| pool::Member::new(c, Member { ic: ic.clone(), canister: c, sender: maintainer }))
        .collect();
    futures::executor::block_on(pool::activate(&as_maintainer, MODEL, &v2.sha256)).unwrap();
    for m in [first, m1] {
        let now = serving(&mut **ic.borrow_mut(), m, user(5));
        let active: Vec<_> = now.iter().filter(|v| v.active).map(|v| v.sha256.clone()).collect();
        assert_eq!(active, vec![v2.sha256.clone()]);
        assert!(now.iter().any(|v| v.sha256 == v1.sha256 && !v.active), "the old file still serves: {now:?}");
    }

    // A third member, added late, copies both files and activates the one the pool has active.
    set_pool(&ic, controller, &[first, m1, m2], &[first, m1, m2]);
    let report = caught_up(&mut **ic.borrow_mut(), m2, user(5)).last_catch_up.unwrap();
    assert_eq!(sorted_shas(&report.copied), sorted_shas_of(&[&v1.sha256, &v2.sha256]), "{report:?}");
    assert_eq!(shas(&report.activated), vec![v2.sha256.as_slice()]);
    let answer = call(&mut **ic.borrow_mut(), m2, user(5), calls::classify(&request)).0.unwrap().unwrap();
    let on_first = call(&mut **ic.borrow_mut(), first, user(5), calls::classify(&request)).0.unwrap().unwrap();
    assert_eq!((answer.records, &answer.model.sha256), (on_first.records, &v2.sha256));
    // Members already level copy nothing when they catch up again.
    caught_up(&mut **ic.borrow_mut(), m1, user(5));
    let again = call(&mut **ic.borrow_mut(), m1, maintainer, calls::catch_up()).0.unwrap().unwrap();
    assert!(again.copied.is_empty() && again.activated.is_empty() && again.failed.is_empty(), "{again:?}");

    // Removed, a member may no longer read the others' files.
    set_pool(&ic, controller, &[first, m1], &[first, m1]);
    set_pool(&ic, controller, &[m2], &[]);
    if let Some(outcome) = ic.borrow_mut().call_from_canister(first, m2, chunk.method, chunk.arg.clone()) {
        let refused = canister_harness::reply(&chunk, outcome.result).unwrap();
        assert!(matches!(refused, Err(RegistryError::NotAuthorized(_))), "{refused:?}");
    }
    assert_eq!(call(&mut **ic.borrow_mut(), m2, user(5), calls::pool()).0.unwrap().unwrap().members, vec![m2]);
}

fn sorted(ids: &[Principal]) -> Vec<Principal> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids
}

fn sorted_shas(refs: &[ModelRef]) -> Vec<Vec<u8>> {
    let mut shas: Vec<Vec<u8>> = refs.iter().map(|r| r.sha256.clone()).collect();
    shas.sort();
    shas
}

fn sorted_shas_of(shas: &[&Vec<u8>]) -> Vec<Vec<u8>> {
    let mut shas: Vec<Vec<u8>> = shas.iter().map(|s| s.to_vec()).collect();
    shas.sort();
    shas
}

/// Agencies sending requests to a pool, each through its own router (or, for `naive`, straight
/// to the members in turn with no version named), keeping the sha256 of every answer.
struct Agencies {
    ic: Rc<RefCell<Box<dyn Ic>>>,
    members: Vec<Principal>,
    /// Refreshes its pin before none of its calls during the switch.
    steady: Router<Member>,
    /// Refreshes its pin before each of its calls.
    eager: Router<Member>,
    request: ClassifyRequest,
    answers: RefCell<BTreeMap<&'static str, Vec<Vec<u8>>>>,
    /// Calls of the steady agency, pinned, submitted before a maintainer's call and awaited after.
    in_flight: RefCell<Vec<u64>>,
}

impl Agencies {
    fn record(&self, agency: &'static str, answer: Result<Classification, InferenceError>) {
        let answer = answer.unwrap_or_else(|e| panic!("{agency}: a request was refused: {e}"));
        self.answers.borrow_mut().entry(agency).or_default().push(answer.model.sha256);
    }

    /// One burst of load: the calls left in flight by the last burst are awaited, each agency
    /// sends a few requests, and the steady agency leaves one pinned call in flight per member.
    async fn burst(&self) {
        for id in self.in_flight.take() {
            let outcome = self.ic.borrow_mut().await_call(id);
            let answer = candid::decode_one(&outcome.result.expect("the call completes")).unwrap();
            self.record("in flight", answer);
        }
        for seed in 0..3 {
            self.record("steady", self.steady.classify(&self.request).await.unwrap());
            self.eager.refresh(MODEL).await;
            self.record("eager", self.eager.classify(&self.request).await.unwrap());
            let naive = self.members[seed % self.members.len()];
            let answer = call(&mut **self.ic.borrow_mut(), naive, user(5), calls::classify(&self.request)).0.unwrap();
            self.record("naive", answer);
        }
        let pin = self.steady.pinned(MODEL).expect("pinned at its first call");
        for (at, &member) in self.members.iter().enumerate() {
            let pinned = ClassifyRequest { version: pin.versions[at], ..self.request.clone() };
            let c = calls::classify(&pinned);
            let id = self.ic.borrow_mut().submit_call(member, user(5), c.method, c.arg).unwrap();
            self.in_flight.borrow_mut().push(id);
        }
    }
}

/// The maintainer's calls, each after a burst of the agencies' load.
struct UnderLoad<'a> {
    maintainer: Member,
    agencies: &'a Agencies,
}

impl Transport for UnderLoad<'_> {
    async fn update(&self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        self.agencies.burst().await;
        self.maintainer.update(method, arg).await
    }
    async fn query(&self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        self.agencies.burst().await;
        self.maintainer.query(method, arg).await
    }
}

/// Whether `answers` never go back to `old` once `new` answered.
fn never_back(answers: &[Vec<u8>], new: &[u8]) -> bool {
    answers.iter().skip_while(|s| s.as_slice() != new).all(|s| s.as_slice() == new)
}

#[test]
fn a_version_switch_under_load_never_mixes_versions_in_one_agencys_answers() {
    let (mut d, v1_case, v1, v2) = two_files();
    let (first, controller, maintainer) = (d.inference, d.controller, d.maintainer);
    let members = vec![first, member(&mut d), member(&mut d)];
    let ic = shared(&mut d);
    set_pool(&ic, controller, &members, &members);
    for &m in &members[1..] {
        caught_up(&mut **ic.borrow_mut(), m, user(5));
        let copy = call(&mut **ic.borrow_mut(), m, maintainer, calls::replicate(first, MODEL, v2.version)).0.unwrap();
        assert_eq!(copy.unwrap().sha256, v2.sha256);
    }

    let router =
        || Router::new(members.iter().map(|&canister| Member { ic: ic.clone(), canister, sender: user(5) }).collect());
    let agencies = Agencies {
        ic: ic.clone(),
        members: members.clone(),
        steady: router(),
        eager: router(),
        request: ClassifyRequest { model: MODEL.into(), version: None, input: input(&v1_case), top_k: Some(1) },
        answers: RefCell::default(),
        in_flight: RefCell::default(),
    };
    let as_maintainer: Vec<_> = members
        .iter()
        .map(|&canister| {
            let maintainer = Member { ic: ic.clone(), canister, sender: maintainer };
            pool::Member::new(canister, UnderLoad { maintainer, agencies: &agencies })
        })
        .collect();
    futures::executor::block_on(async {
        agencies.burst().await;
        pool::activate(&as_maintainer, MODEL, &v2.sha256).await.unwrap();
        agencies.burst().await;
        agencies.burst().await;
    });

    let answers = agencies.answers.borrow();
    let (old, new) = (v1.sha256.as_slice(), v2.sha256.as_slice());
    // Without a router, the switch member by member shows: the new file, then the old again.
    assert!(!never_back(&answers["naive"], new), "the naive agency saw no mix: the test would prove nothing");
    // The steady agency's router stays pinned to the old file, which every member keeps serving,
    // and so do its calls in flight across each activation.
    assert!(answers["steady"].iter().all(|s| s == old), "{:?}", answers["steady"]);
    assert!(answers["in flight"].iter().all(|s| s == old));
    assert!(answers["in flight"].len() >= 3 * 10, "calls were in flight across the switch");
    // The eager one moves to the new file once, and never back.
    assert!(
        answers["eager"].first().map(Vec::as_slice) == Some(old)
            && answers["eager"].last().map(Vec::as_slice) == Some(new)
    );
    assert!(never_back(&answers["eager"], new), "{:?}", answers["eager"]);
    drop(answers);

    // Refreshed after the switch, the steady agency moves to the new file too.
    let pin = futures::executor::block_on(agencies.steady.refresh(MODEL)).unwrap();
    assert_eq!(pin.sha256, v2.sha256);
    let answer = futures::executor::block_on(agencies.steady.classify(&agencies.request)).unwrap().unwrap();
    assert_eq!(answer.model.sha256, v2.sha256);
}
