//! The uploader against a fake canister: the engine's own registry in memory behind a
//! [`Transport`] that can lose a call or its reply, or misreport what was recorded. Each test
//! is one of the uploader's safety properties: resume only the same file, never hand back (or
//! activate) a version that is not the file, never make a second version out of a lost reply.

use std::cell::{Cell, RefCell};

use candid::{decode_args, encode_one, Principal};
use ic_stable_structures::DefaultMemoryImpl;
use inference_api::{ChunkRange, ModelCursor, ModelInfo, RegistryError, UploadChunk, UploadRequest, MODEL_PAGE_SIZE};
use inference_client::{calls, Call, InferenceClient, Transport};
use inference_engine::registry::{Actor, Registry, UploadPolicy};
use inference_engine::stable::StableLayout;
use inference_tools::upload::{activate_verified, upload, Progress, UploadError, UploadOptions};
use model_testdata::onnx::{ElemType, Graph};
use sha2::{Digest, Sha256};

const CHUNK: u32 = 16;

/// A one-operator model; `Relu` and `Tanh` give two different files of the same size.
fn model(op: &str) -> Vec<u8> {
    Graph::new(13)
        .input("x", ElemType::Float, &[1, 4])
        .output("y", ElemType::Float)
        .node(op, &["x"], &["y"], vec![])
        .to_bytes()
}

fn sha(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

fn request(name: &str, bytes: &[u8], chunk_size: u32) -> UploadRequest {
    UploadRequest {
        name: name.into(),
        size: bytes.len() as u64,
        sha256: sha(bytes),
        chunk_size,
        description: String::new(),
        labels: vec![],
        inputs: None,
        text: None,
    }
}

fn options() -> UploadOptions {
    UploadOptions { chunk_bytes: CHUNK, parallelism: 3, attempts: 1, ..Default::default() }
}

/// What the transport does wrong.
#[derive(Default)]
struct Faults {
    /// `upload_finish` calls that take effect but whose reply is lost.
    finish_replies_lost: Cell<u32>,
    /// `upload_finish` calls lost on the way (the canister never sees them).
    finish_calls_lost: Cell<u32>,
    /// The next `upload_finish` is lost and meanwhile someone aborts the upload.
    finish_lost_and_aborted: Cell<bool>,
    /// `upload_finish` answers a record with another sha256 (a canister that kept other bytes).
    finish_reports_other_sha: Cell<bool>,
}

/// The canister: the engine's registry over in-memory stable memory, one maintainer.
struct Fake {
    layout: RefCell<StableLayout<DefaultMemoryImpl>>,
    registry: RefCell<Registry<DefaultMemoryImpl>>,
    clock: Cell<u64>,
    faults: Faults,
    /// Every method called, in order.
    log: RefCell<Vec<String>>,
}

impl Fake {
    fn new() -> Self {
        let layout = StableLayout::init(DefaultMemoryImpl::default());
        let registry = Registry::init(&layout);
        Fake {
            layout: RefCell::new(layout),
            registry: RefCell::new(registry),
            clock: Cell::new(1),
            faults: Faults::default(),
            log: RefCell::new(vec![]),
        }
    }

    /// Starts an upload of `bytes` directly and stores the chunks `indices` (an earlier,
    /// interrupted run).
    fn pending(&self, request: UploadRequest, bytes: &[u8], indices: impl IntoIterator<Item = u32>) -> u64 {
        let chunk_size = request.chunk_size as usize;
        let mut r = self.registry.borrow_mut();
        let t = r.start_upload(&mut self.layout.borrow_mut(), request, maintainer(), 0, NO_LIMITS).unwrap();
        for i in indices {
            let c = &bytes[i as usize * chunk_size..((i as usize + 1) * chunk_size).min(bytes.len())];
            r.put_chunk(t.upload_id, i, c.to_vec(), sha(c), owner()).unwrap();
        }
        t.upload_id
    }

    fn versions(&self) -> Vec<ModelInfo> {
        self.registry.borrow().versions()
    }

    /// How many times the endpoint of `call` was called.
    fn called<R>(&self, call: Call<R>) -> usize {
        self.log.borrow().iter().filter(|m| *m == call.method).count()
    }

    fn handle(&self, method: &str, arg: &[u8]) -> Result<Vec<u8>, String> {
        self.log.borrow_mut().push(method.to_string());
        self.clock.set(self.clock.get() + 1);
        let is = |m: &str| m == method;
        let mut r = self.registry.borrow_mut();
        let reply = if is(calls::upload_start(&any_request()).method) {
            let (req,): (UploadRequest,) = decode_args(arg).unwrap();
            encode_one(r.start_upload(&mut self.layout.borrow_mut(), req, maintainer(), self.clock.get(), NO_LIMITS))
        } else if is(calls::upload_chunk(&chunk_arg()).method) {
            let (c,): (UploadChunk,) = decode_args(arg).unwrap();
            encode_one(r.put_chunk(c.upload_id, c.index, c.bytes.into_vec(), c.sha256, owner()))
        } else if is(calls::upload_finish(0).method) {
            let (id,): (u64,) = decode_args(arg).unwrap();
            let f = &self.faults;
            if f.finish_lost_and_aborted.replace(false) {
                r.abort_upload(id, owner()).unwrap();
                return Err("connection reset".into());
            }
            if take(&f.finish_calls_lost) {
                return Err("connection reset".into());
            }
            let answer = r.finish_upload(id, owner()).map(|mut info| {
                if f.finish_reports_other_sha.get() {
                    info.sha256 = vec![0xee; 32];
                }
                info
            });
            if take(&f.finish_replies_lost) {
                return Err("timed out waiting for the reply".into());
            }
            encode_one(answer)
        } else if is(calls::upload_status(0).method) {
            let (id,): (u64,) = decode_args(arg).unwrap();
            encode_one(r.upload_status(id, owner()))
        } else if is(calls::uploads().method) {
            encode_one(Ok::<_, RegistryError>(r.uploads(owner())))
        } else if is(calls::list_models(None).method) {
            let (after,): (Option<ModelCursor>,) = decode_args(arg).unwrap();
            encode_one(Ok::<_, RegistryError>(r.page(after.as_ref(), MODEL_PAGE_SIZE)))
        } else if is(calls::model_info("", None).method) {
            let (name, version): (String, Option<u32>) = decode_args(arg).unwrap();
            encode_one(r.info(&name, version))
        } else if is(calls::activate("", 0).method) {
            let (name, version): (String, u32) = decode_args(arg).unwrap();
            encode_one(r.activate(&name, version))
        } else {
            panic!("the fake does not serve {method}")
        };
        Ok(reply.unwrap())
    }
}

/// Counts one fault down; true while any is left.
fn take(c: &Cell<u32>) -> bool {
    let n = c.get();
    c.set(n.saturating_sub(1));
    n > 0
}

fn maintainer() -> Principal {
    Principal::from_slice(&[7; 29])
}

/// The maintainer as the registry sees it acting on its own uploads.
fn owner() -> Actor {
    Actor { principal: maintainer(), admin: false }
}

const NO_LIMITS: UploadPolicy = UploadPolicy { max_per_maintainer: u32::MAX, ttl_ns: u64::MAX };

/// Arguments to name an endpoint by (its [`Call`]'s method), never by a string.
fn any_request() -> UploadRequest {
    request("", b"", 1)
}

fn chunk_arg() -> UploadChunk {
    UploadChunk { upload_id: 0, index: 0, bytes: serde_bytes::ByteBuf::new(), sha256: vec![] }
}

impl Transport for Fake {
    async fn update(&self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        self.handle(method, &arg)
    }
    async fn query(&self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        self.handle(method, &arg)
    }
}

/// Remembers what the uploader reported.
#[derive(Default)]
struct Seen {
    already_recorded: RefCell<Vec<u32>>,
    finish_unanswered: Cell<u32>,
}

impl Progress for Seen {
    fn already_recorded(&self, info: &ModelInfo) {
        self.already_recorded.borrow_mut().push(info.version);
    }
    fn finish_unanswered(&self, _attempt: u32, _error: &str) {
        self.finish_unanswered.set(self.finish_unanswered.get() + 1);
    }
}

fn run(
    client: &InferenceClient<&Fake>,
    name: &str,
    bytes: &[u8],
    options: &UploadOptions,
) -> Result<ModelInfo, UploadError> {
    run_seen(client, name, bytes, options, &Seen::default())
}

fn run_seen(
    client: &InferenceClient<&Fake>,
    name: &str,
    bytes: &[u8],
    options: &UploadOptions,
    seen: &Seen,
) -> Result<ModelInfo, UploadError> {
    futures::executor::block_on(upload(client, bytes, request(name, &[], 0), options, seen))
}

#[test]
fn the_two_test_models_differ_but_have_the_same_size() {
    let (relu, tanh) = (model("Relu"), model("Tanh"));
    assert_eq!(relu.len(), tanh.len());
    assert_ne!(relu, tanh);
    assert!(relu.len() > 3 * CHUNK as usize);
}

/// Fix 1: an unfinished upload with the same name, size and chunk size but another sha256 (a
/// different file) is not resumed; before, the uploader resumed it and, its chunks all being
/// there, recorded that other file as the new version.
#[test]
fn an_unfinished_upload_of_another_file_is_not_resumed() {
    let fake = Fake::new();
    let (relu, tanh) = (model("Relu"), model("Tanh"));
    let chunks = relu.len().div_ceil(CHUNK as usize) as u32;
    let other = fake.pending(request("cls", &tanh, CHUNK), &tanh, 0..chunks);
    // The same file, cut in other chunks: not resumable either (its chunk indices differ).
    let other_chunking = fake.pending(request("cls", &relu, 2 * CHUNK), &relu, [0]);
    let client = InferenceClient::new(&fake);
    let info = run(&client, "cls", &relu, &options()).expect("upload");
    assert_eq!(info.sha256, sha(&relu));
    assert_eq!(fake.registry.borrow().bytes(&info), relu, "the version holds the local file");
    assert_eq!(fake.called(calls::upload_start(&any_request())), 1, "a new upload was started");
    assert_eq!(fake.called(calls::upload_chunk(&chunk_arg())), chunks as usize, "every chunk was sent to it");
    // The other uploads are left as they were.
    let r = fake.registry.borrow();
    assert!(r.upload_status(other, owner()).unwrap().missing.is_empty());
    assert_eq!(
        ChunkRange::count(&r.upload_status(other_chunking, owner()).unwrap().missing),
        relu.len().div_ceil(32) as u64 - 1
    );
}

/// Resuming still works, for an upload of the very same file: only the missing chunks are sent.
#[test]
fn an_unfinished_upload_of_the_same_file_is_resumed() {
    let fake = Fake::new();
    let relu = model("Relu");
    let chunks = relu.len().div_ceil(CHUNK as usize) as u32;
    let id = fake.pending(request("cls", &relu, CHUNK), &relu, [0, 2]);
    let client = InferenceClient::new(&fake);
    let info = run(&client, "cls", &relu, &options()).expect("resumed upload");
    assert_eq!((info.version, info.sha256.clone()), (1, sha(&relu)));
    assert_eq!(fake.called(calls::upload_start(&any_request())), 0);
    assert_eq!(fake.called(calls::upload_chunk(&chunk_arg())), chunks as usize - 2);
    assert_eq!(fake.registry.borrow().upload_status(id, owner()), Err(RegistryError::UnknownUpload(id)));
}

/// Fix 2: a recorded version whose sha256 is not the local file's is an error, never a result,
/// and `activate_verified` refuses to activate it.
#[test]
fn a_version_that_is_not_the_local_file_is_refused_and_not_activated() {
    let fake = Fake::new();
    let relu = model("Relu");
    fake.faults.finish_reports_other_sha.set(true);
    let client = InferenceClient::new(&fake);
    match run(&client, "cls", &relu, &options()) {
        Err(UploadError::HashMismatch { name, version, recorded, local }) => {
            assert_eq!((name.as_str(), version), ("cls", 1));
            assert_eq!((recorded, local), (vec![0xee; 32], sha(&relu)));
        }
        other => panic!("{other:?}"),
    }
    // Activation checks the version's record against the file first.
    let tanh = model("Tanh");
    let activate = |sha256: &[u8]| futures::executor::block_on(activate_verified(&client, "cls", 1, sha256));
    assert!(matches!(activate(&sha(&tanh)), Err(UploadError::HashMismatch { .. })));
    assert_eq!(fake.called(calls::activate("", 0)), 0);
    assert_eq!(fake.registry.borrow().active_version("cls"), None);
    activate(&sha(&relu)).expect("the right file activates");
    assert_eq!(fake.registry.borrow().active_version("cls"), Some(1));
}

/// Fix 3: `upload_finish` records the version but its reply is lost. The uploader looks the
/// upload up, finds it gone and the version it became, and answers that: one version. Before,
/// it failed, and running it again uploaded the file a second time as version 2.
#[test]
fn a_lost_finish_reply_does_not_make_a_second_version() {
    let fake = Fake::new();
    let relu = model("Relu");
    fake.faults.finish_replies_lost.set(1);
    let client = InferenceClient::new(&fake);
    let seen = Seen::default();
    let info = run_seen(&client, "cls", &relu, &options(), &seen).expect("the version the finish recorded");
    assert_eq!((info.version, info.sha256.clone()), (1, sha(&relu)));
    assert_eq!(seen.finish_unanswered.get(), 1);
    assert_eq!(fake.called(calls::upload_finish(0)), 1, "not called again once the upload was gone");
    assert_eq!(fake.versions().len(), 1);
}

/// Fix 3, on a re-run: a version of the same name already holding the file is reported and
/// nothing is uploaded; `force` uploads it again.
#[test]
fn running_the_upload_again_reports_the_version_that_holds_the_file() {
    let fake = Fake::new();
    let (relu, tanh) = (model("Relu"), model("Tanh"));
    let client = InferenceClient::new(&fake);
    let v1 = run(&client, "cls", &relu, &options()).unwrap();
    let sent = fake.called(calls::upload_chunk(&chunk_arg()));
    let seen = Seen::default();
    let again = run_seen(&client, "cls", &relu, &options(), &seen).expect("the existing version");
    assert_eq!(again, v1);
    assert_eq!(*seen.already_recorded.borrow(), vec![1]);
    assert_eq!(
        (fake.called(calls::upload_start(&any_request())), fake.called(calls::upload_chunk(&chunk_arg()))),
        (1, sent),
        "nothing uploaded"
    );
    assert_eq!(fake.versions().len(), 1);
    // Another file, or the same file under another name, is uploaded.
    assert_eq!(run(&client, "cls", &tanh, &options()).unwrap().version, 2);
    assert_eq!(run(&client, "det", &relu, &options()).unwrap().version, 1);
    // With force, the same file becomes a new version.
    let forced = UploadOptions { force: true, ..options() };
    let v3 = run(&client, "cls", &relu, &forced).unwrap();
    assert_eq!((v3.version, v3.sha256), (3, sha(&relu)));
    // Several versions hold it now: the newest is reported.
    let seen = Seen::default();
    assert_eq!(run_seen(&client, "cls", &relu, &options(), &seen).unwrap().version, 3);
    assert_eq!(*seen.already_recorded.borrow(), vec![3]);
}

/// A finish lost before it reached the canister: the upload is still there, so it is finished
/// again (one version).
#[test]
fn a_lost_finish_call_is_sent_again_once_the_upload_is_found_unfinished() {
    let fake = Fake::new();
    let relu = model("Relu");
    fake.faults.finish_calls_lost.set(1);
    let client = InferenceClient::new(&fake);
    let info = run(&client, "cls", &relu, &UploadOptions { attempts: 2, ..options() }).expect("upload");
    assert_eq!(info.version, 1);
    assert_eq!((fake.called(calls::upload_finish(0)), fake.called(calls::upload_status(0))), (2, 1));
    assert_eq!(fake.versions().len(), 1);
    // With one attempt, the same loss is a transport error; the upload is left to resume.
    fake.faults.finish_calls_lost.set(1);
    let tanh = model("Tanh");
    assert!(matches!(run(&client, "cls", &tanh, &options()), Err(UploadError::Transport(_))));
    assert_eq!(fake.registry.borrow().uploads(owner()).len(), 1);
    assert_eq!(run(&client, "cls", &tanh, &options()).unwrap().version, 2);
    assert_eq!(fake.registry.borrow().uploads(owner()).len(), 0);
}

/// A finish lost while someone aborts the upload: gone, and no version holds the file.
#[test]
fn an_upload_aborted_while_its_finish_was_unanswered_is_reported() {
    let fake = Fake::new();
    let relu = model("Relu");
    fake.faults.finish_lost_and_aborted.set(true);
    let client = InferenceClient::new(&fake);
    match run(&client, "cls", &relu, &options()) {
        Err(UploadError::Vanished { name, .. }) => assert_eq!(name, "cls"),
        other => panic!("{other:?}"),
    }
    assert!(fake.versions().is_empty());
}
