//! The model registry on a real model, natively: chunked upload in any order, resume, verify,
//! versions, activation, and every bad input answered with its typed error.

use model_testdata as support;

use candid::Principal;
use ic_stable_structures::DefaultMemoryImpl;
use inference_engine::registry::{Actor, Registry, UploadPolicy, MAX_CHUNKS};
use inference_engine::stable::StableLayout;
use inference_engine::types::*;
use sha2::{Digest, Sha256};

const CHUNK: usize = 64 * 1024;

/// An admin may change any upload; the maintainer only its own.
const ADMIN: Actor = Actor { principal: Principal::anonymous(), admin: true };
const NO_LIMITS: UploadPolicy = UploadPolicy { max_per_maintainer: u32::MAX, ttl_ns: u64::MAX };

fn as_maintainer() -> Actor {
    Actor { principal: maintainer(), admin: false }
}

fn maintainer() -> Principal {
    Principal::from_slice(&[1, 2, 3])
}

fn setup() -> (StableLayout<DefaultMemoryImpl>, Registry<DefaultMemoryImpl>) {
    let layout = StableLayout::init(DefaultMemoryImpl::default());
    let registry = Registry::init(&layout);
    (layout, registry)
}

fn request(name: &str, bytes: &[u8]) -> UploadRequest {
    UploadRequest {
        name: name.into(),
        size: bytes.len() as u64,
        sha256: Sha256::digest(bytes).to_vec(),
        chunk_size: CHUNK as u32,
        description: "text-line direction".into(),
        labels: vec!["0".into(), "180".into()],
        inputs: Some(vec![TensorSpec {
            name: "x".into(),
            shape: vec![1, 3, 48, 192],
            dtype: DType::F32,
            max_shape: None,
        }]),
        text: None,
    }
}

fn put(
    r: &mut Registry<DefaultMemoryImpl>,
    id: u64,
    bytes: &[u8],
    index: usize,
) -> Result<UploadStatus, RegistryError> {
    let chunk = &bytes[index * CHUNK..((index + 1) * CHUNK).min(bytes.len())];
    r.put_chunk(id, index as u32, chunk.to_vec(), Sha256::digest(chunk).to_vec(), ADMIN)
}

fn upload(
    layout: &mut StableLayout<DefaultMemoryImpl>,
    r: &mut Registry<DefaultMemoryImpl>,
    name: &str,
    bytes: &[u8],
) -> ModelInfo {
    let t = r.start_upload(layout, request(name, bytes), maintainer(), 42, NO_LIMITS).unwrap();
    for i in 0..t.chunk_count as usize {
        put(r, t.upload_id, bytes, i).unwrap();
    }
    r.finish_upload(t.upload_id, ADMIN).unwrap()
}

#[test]
fn shuffled_duplicated_interrupted_upload_resumes_and_verifies() {
    let model = support::case("rapidocr_cls", "fp32").model;
    let (mut layout, mut r) = setup();
    let t = r.start_upload(&mut layout, request("cls", &model), maintainer(), 7, NO_LIMITS).unwrap();
    assert_eq!(t.chunk_count as usize, model.len().div_ceil(CHUNK));
    // Odd chunks first, some twice; then "the link drops".
    for i in (1..t.chunk_count as usize).step_by(2).chain([1, 3]) {
        put(&mut r, t.upload_id, &model, i).unwrap();
    }
    assert!(matches!(r.finish_upload(t.upload_id, ADMIN), Err(RegistryError::ChunksMissing { .. })));
    // Resume from the canister's missing list.
    let missing = r.upload_status(t.upload_id, ADMIN).unwrap().missing;
    assert_eq!(missing, ChunkRange::covering((0..t.chunk_count).step_by(2)));
    for i in ChunkRange::indices(&missing).rev() {
        put(&mut r, t.upload_id, &model, i as usize).unwrap();
    }
    let info = r.finish_upload(t.upload_id, ADMIN).unwrap();
    assert_eq!((info.name.as_str(), info.version, info.size), ("cls", 1, model.len() as u64));
    assert_eq!(info.weight_format, WeightFormat::F32);
    assert!(info.operators.contains(&"Conv".to_string()), "{:?}", info.operators);
    assert_eq!(r.bytes(&info), model);
    assert!(r.uploads(ADMIN).is_empty());
}

#[test]
fn every_bad_upload_input_has_its_typed_error_and_changes_nothing() {
    let model = support::case("rapidocr_cls", "fp32").model;
    let (mut layout, mut r) = setup();
    let good = upload(&mut layout, &mut r, "cls", &model);
    r.activate("cls", good.version).unwrap();

    let t = r.start_upload(&mut layout, request("cls", &model), maintainer(), 1, NO_LIMITS).unwrap();
    let id = t.upload_id;
    assert_eq!(r.put_chunk(999, 0, vec![], vec![], ADMIN), Err(RegistryError::UnknownUpload(999)));
    assert!(matches!(
        r.put_chunk(id, t.chunk_count, vec![0], Sha256::digest([0]).to_vec(), ADMIN),
        Err(RegistryError::ChunkIndexOutOfRange { .. })
    ));
    assert!(matches!(
        r.put_chunk(id, 0, vec![0; 3 << 20], vec![0; 32], ADMIN),
        Err(RegistryError::ChunkTooLarge { .. })
    ));
    assert!(matches!(
        r.put_chunk(id, 0, vec![0; 10], Sha256::digest([0; 10]).to_vec(), ADMIN),
        Err(RegistryError::ChunkWrongSize { .. })
    ));
    assert_eq!(
        r.put_chunk(id, 0, model[..CHUNK].to_vec(), vec![0; 5], ADMIN),
        Err(RegistryError::ChunkHashMismatch { index: 0 })
    );
    put(&mut r, id, &model, 0).unwrap();
    put(&mut r, id, &model, 0).unwrap(); // the same chunk twice is fine
    let other = vec![7u8; CHUNK];
    assert_eq!(
        r.put_chunk(id, 0, other.clone(), Sha256::digest(&other).to_vec(), ADMIN),
        Err(RegistryError::ConflictingChunk { index: 0 })
    );
    assert!(matches!(r.finish_upload(id, ADMIN), Err(RegistryError::ChunksMissing { .. })));
    r.abort_upload(id, ADMIN).unwrap();
    assert_eq!(r.upload_status(id, ADMIN), Err(RegistryError::UnknownUpload(id)));

    // A chunk whose bytes differ from its declared hash is found at finish, named, dropped;
    // resending it completes the upload.
    let t = r.start_upload(&mut layout, request("fixed", &model), maintainer(), 1, NO_LIMITS).unwrap();
    for i in 0..t.chunk_count as usize {
        if i == 2 {
            let mut corrupt = model[2 * CHUNK..3 * CHUNK].to_vec();
            corrupt[100] ^= 1;
            r.put_chunk(t.upload_id, 2, corrupt, Sha256::digest(&model[2 * CHUNK..3 * CHUNK]).to_vec(), ADMIN).unwrap();
        } else {
            put(&mut r, t.upload_id, &model, i).unwrap();
        }
    }
    assert_eq!(r.finish_upload(t.upload_id, ADMIN), Err(RegistryError::CorruptChunks { indices: vec![2] }));
    assert_eq!(r.upload_status(t.upload_id, ADMIN).unwrap().missing, vec![ChunkRange { start: 2, end: 3 }]);
    put(&mut r, t.upload_id, &model, 2).unwrap();
    assert_eq!(r.finish_upload(t.upload_id, ADMIN).unwrap().name, "fixed");
    r.delete("fixed", 1).unwrap();

    // Declared hash differs from the bytes.
    let mut wrong = request("cls", &model);
    wrong.sha256 = vec![0; 32];
    let t = r.start_upload(&mut layout, wrong, maintainer(), 1, NO_LIMITS).unwrap();
    for i in 0..t.chunk_count as usize {
        put(&mut r, t.upload_id, &model, i).unwrap();
    }
    assert!(matches!(r.finish_upload(t.upload_id, ADMIN), Err(RegistryError::ModelHashMismatch { .. })));

    // Truncated ONNX: hashes match, the model does not parse.
    let truncated = &model[..model.len() / 2];
    let t = r.start_upload(&mut layout, request("cls", truncated), maintainer(), 1, NO_LIMITS).unwrap();
    for i in 0..t.chunk_count as usize {
        put(&mut r, t.upload_id, truncated, i).unwrap();
    }
    assert!(matches!(r.finish_upload(t.upload_id, ADMIN), Err(RegistryError::InvalidModel(_))));
    // Bad names and sizes.
    assert!(matches!(
        r.start_upload(&mut layout, request("no spaces", &model), maintainer(), 1, NO_LIMITS),
        Err(RegistryError::InvalidRequest(_))
    ));
    let mut big_chunks = request("cls", &model);
    big_chunks.chunk_size = 4 << 20;
    assert!(matches!(
        r.start_upload(&mut layout, big_chunks, maintainer(), 1, NO_LIMITS),
        Err(RegistryError::ChunkTooLarge { .. })
    ));
    assert!(matches!(r.activate("cls", 9), Err(RegistryError::UnknownVersion { .. })));
    assert!(matches!(r.activate("nope", 1), Err(RegistryError::UnknownVersion { .. })));

    // Through all of that the first version kept serving.
    assert_eq!(r.active_version("cls"), Some(1));
    assert_eq!(r.versions().len(), 1);
    assert_eq!(r.bytes(&r.info("cls", None).unwrap()), model);
}

#[test]
fn unsupported_operators_are_named_and_qoperator_models_are_accepted() {
    let (mut layout, mut r) = setup();
    let unheard = support::onnx::unsupported_operator_model();
    let t = r.start_upload(&mut layout, request("odd", &unheard), maintainer(), 1, NO_LIMITS).unwrap();
    put(&mut r, t.upload_id, &unheard, 0).unwrap();
    assert_eq!(
        r.finish_upload(t.upload_id, ADMIN),
        Err(RegistryError::UnsupportedOperators(vec!["com.example::Unheard".into()]))
    );
    // onnxruntime's QOperator format: its com.microsoft contrib ops are ours to run.
    let qop = support::case("rapidocr_cls", "qop").model;
    let t = r.start_upload(&mut layout, request("qop", &qop), maintainer(), 1, NO_LIMITS).unwrap();
    for i in 0..t.chunk_count as usize {
        put(&mut r, t.upload_id, &qop, i).unwrap();
    }
    let info = r.finish_upload(t.upload_id, ADMIN).unwrap();
    assert!(info.operators.iter().any(|o| o == "com.microsoft::QLinearAdd"), "{:?}", info.operators);
}

#[test]
fn versions_activate_roll_back_and_delete() {
    let model = support::case("rapidocr_cls", "fp32").model;
    let (mut layout, mut r) = setup();
    let v1 = upload(&mut layout, &mut r, "cls", &model);
    let v2 = upload(&mut layout, &mut r, "cls", &model);
    assert_eq!((v1.version, v2.version), (1, 2));
    r.activate("cls", 1).unwrap();
    r.activate("cls", 2).unwrap();
    assert_eq!(r.active_version("cls"), Some(2));
    assert_eq!(r.delete("cls", 2), Err(RegistryError::VersionActive { name: "cls".into(), version: 2 }));
    assert_eq!(r.rollback("cls"), Ok(1));
    assert_eq!(r.rollback("cls"), Err(RegistryError::NothingToRollBackTo("cls".into())));
    r.delete("cls", 2).unwrap();
    assert_eq!(r.versions().len(), 1);
    assert!(matches!(r.info("cls", Some(2)), Err(RegistryError::UnknownVersion { .. })));
}

#[test]
fn the_registry_reopens_from_the_same_stable_memory() {
    let model = support::case("rapidocr_cls", "fp32").model;
    let memory = DefaultMemoryImpl::default();
    {
        let mut layout = StableLayout::init(memory.clone());
        let mut r = Registry::init(&layout);
        let info = upload(&mut layout, &mut r, "cls", &model);
        r.activate("cls", info.version).unwrap();
        let t = r.start_upload(&mut layout, request("half", &model), maintainer(), 1, NO_LIMITS).unwrap();
        put(&mut r, t.upload_id, &model, 0).unwrap();
    }
    // As after an upgrade: a fresh heap over the same stable memory.
    let mut layout = StableLayout::init(memory);
    let mut r = Registry::init(&layout);
    assert_eq!(r.active_version("cls"), Some(1));
    let pending = r.uploads(ADMIN);
    assert_eq!(pending.len(), 1);
    let missing = r.upload_status(pending[0].upload_id, ADMIN).unwrap().missing;
    assert_eq!(ChunkRange::count(&missing), pending[0].missing_chunks);
    for i in ChunkRange::indices(&missing) {
        put(&mut r, pending[0].upload_id, &model, i as usize).unwrap();
    }
    assert_eq!(r.finish_upload(pending[0].upload_id, ADMIN).unwrap().name, "half");
    // Ids keep counting from the header.
    let t = r.start_upload(&mut layout, request("next", &model), maintainer(), 1, NO_LIMITS).unwrap();
    assert!(t.upload_id > pending[0].upload_id);
}

#[test]
fn blob_slots_run_out_with_a_typed_error_and_are_reused_after_abort_and_delete() {
    let model = support::case("rapidocr_cls", "fp32").model;
    let (mut layout, mut r) = setup();
    let first = upload(&mut layout, &mut r, "cls", &model);
    let mut ids = vec![];
    loop {
        match r.start_upload(&mut layout, request("many", &model), maintainer(), 1, NO_LIMITS) {
            Ok(t) => ids.push(t.upload_id),
            Err(RegistryError::InvalidRequest(m)) => {
                assert!(m.contains("slots"), "{m}");
                break;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ids.len() + 1, inference_engine::stable::BLOBS.len());
    r.abort_upload(ids[0], ADMIN).unwrap();
    let reused = upload(&mut layout, &mut r, "again", &model);
    assert_eq!(r.bytes(&reused), model);
    // Deleting a version frees its slot too; the other version's bytes are untouched.
    r.abort_upload(ids[1], ADMIN).unwrap();
    let second = upload(&mut layout, &mut r, "cls", &model);
    r.delete("cls", second.version).unwrap();
    let third = upload(&mut layout, &mut r, "cls", &model[..]);
    assert_eq!(third.blob, second.blob);
    assert_eq!(r.bytes(&first), model);
}

/// #13: a maintainer could put chunks into, finish or abort another maintainer's upload.
#[test]
fn an_upload_is_changed_only_by_its_owner_or_an_admin() {
    let model = support::case("rapidocr_cls", "fp32").model;
    let (mut layout, mut r) = setup();
    let t = r.start_upload(&mut layout, request("cls", &model), maintainer(), 1, NO_LIMITS).unwrap();
    let other = Actor { principal: Principal::from_slice(&[9]), admin: false };
    let refused = Err(RegistryError::NotUploadOwner { upload_id: t.upload_id, owner: maintainer() });
    let chunk = model[..CHUNK].to_vec();
    let hash = Sha256::digest(&chunk).to_vec();
    assert_eq!(
        r.put_chunk(t.upload_id, 0, chunk.clone(), hash.clone(), other),
        refused.clone().map(|()| unreachable!())
    );
    assert_eq!(r.finish_upload(t.upload_id, other), refused.clone().map(|()| unreachable!()));
    assert_eq!(r.abort_upload(t.upload_id, other), refused.clone());
    assert_eq!(r.upload_status(t.upload_id, other), refused.clone().map(|()| unreachable!()));
    assert!(r.uploads(other).is_empty(), "others' sessions are not listed");
    let missing = r.upload_status(t.upload_id, ADMIN).unwrap().missing;
    assert_eq!(ChunkRange::count(&missing), t.chunk_count as u64, "nothing written");
    r.put_chunk(t.upload_id, 0, chunk, hash, as_maintainer()).expect("the owner may");
    assert_eq!(r.uploads(as_maintainer()).len(), 1);
    r.abort_upload(t.upload_id, ADMIN).expect("an admin may abort any upload");
}

/// #13: a chunk size of one byte was accepted (a table of 2^28 entries re-encoded per chunk),
/// sessions never expired, and one maintainer could hold every slot.
#[test]
fn uploads_are_bounded_in_chunks_per_maintainer_and_in_time() {
    let model = support::case("rapidocr_cls", "fp32").model;
    let (mut layout, mut r) = setup();
    let mut tiny = request("cls", &model);
    tiny.chunk_size = 1;
    assert_eq!(
        r.start_upload(&mut layout, tiny, maintainer(), 1, NO_LIMITS),
        Err(RegistryError::TooManyChunks { chunk_count: model.len() as u64, max: MAX_CHUNKS })
    );
    let policy = UploadPolicy { max_per_maintainer: 2, ttl_ns: 1_000 };
    r.start_upload(&mut layout, request("a", &model), maintainer(), 100, policy).unwrap();
    r.start_upload(&mut layout, request("b", &model), maintainer(), 200, policy).unwrap();
    assert_eq!(
        r.start_upload(&mut layout, request("c", &model), maintainer(), 300, policy),
        Err(RegistryError::UploadQuotaExceeded { limit: 2 })
    );
    let someone_else = Principal::from_slice(&[7]);
    r.start_upload(&mut layout, request("d", &model), someone_else, 300, policy).expect("another maintainer's quota");
    // At 1 100 the session started at 100 has expired: starting a new one drops it.
    let t = r.start_upload(&mut layout, request("c", &model), maintainer(), 1_100, policy).unwrap();
    let names: Vec<String> = r.uploads(ADMIN).into_iter().map(|u| u.name).collect();
    assert_eq!(names, vec!["b", "d", "c"]);
    assert_eq!(r.uploads(as_maintainer()).len(), 2);
    assert!(t.upload_id > 3);
}

/// #13: replies grew with the chunk count (every missing index listed, in every upload of the
/// admin's list) until they exceeded the reply limit. The worst case now: every slot holds an
/// upload of the most chunks with every other chunk in; the missing chunks come as ranges, one
/// upload at a time, and the list of all uploads carries counts only.
#[test]
fn upload_replies_stay_small_in_the_worst_case() {
    let (mut layout, mut r) = setup();
    let bytes = vec![7u8; MAX_CHUNKS as usize];
    let mut tiny = request("tiny", &bytes);
    tiny.chunk_size = 1;
    let t = r.start_upload(&mut layout, tiny.clone(), maintainer(), 1, NO_LIMITS).unwrap();
    let hash = Sha256::digest([7u8]).to_vec();
    for index in (0..MAX_CHUNKS).step_by(2) {
        r.put_chunk(t.upload_id, index, vec![7], hash.clone(), ADMIN).unwrap();
    }
    let status = r.upload_status(t.upload_id, ADMIN).unwrap();
    assert_eq!(status.missing.len(), MAX_CHUNKS as usize / 2, "alternating: one range per missing chunk");
    let status_bytes = candid::encode_one(&status).unwrap().len();
    assert!(status_bytes <= 32 * 1024, "{status_bytes} bytes");
    while r.start_upload(&mut layout, tiny.clone(), maintainer(), 1, NO_LIMITS).is_ok() {}
    let all = r.uploads(ADMIN);
    assert_eq!(all.len(), inference_engine::stable::BLOBS.len(), "every slot holds an upload");
    let list_bytes = candid::encode_one(&all).unwrap().len();
    assert!(list_bytes <= 64 * 1024, "{list_bytes} bytes for {} uploads", all.len());
}

/// #13: deleting the newest version let the next upload reuse its number, so a record naming
/// "cls v2" could mean two different models.
#[test]
fn version_numbers_are_never_given_twice_even_across_an_upgrade() {
    let model = support::case("rapidocr_cls", "fp32").model;
    let memory = DefaultMemoryImpl::default();
    let mut layout = StableLayout::init(memory.clone());
    let mut r = Registry::init(&layout);
    upload(&mut layout, &mut r, "cls", &model);
    let v2 = upload(&mut layout, &mut r, "cls", &model);
    r.delete("cls", v2.version).unwrap();
    let mut layout = StableLayout::init(memory);
    let mut r = Registry::init(&layout);
    assert_eq!(upload(&mut layout, &mut r, "cls", &model).version, 3);
}

/// #13: finishing again after a lost reply made a second version; now it returns the first.
#[test]
fn finishing_a_finished_upload_returns_the_version_it_became() {
    let model = support::case("rapidocr_cls", "fp32").model;
    let (mut layout, mut r) = setup();
    let t = r.start_upload(&mut layout, request("cls", &model), maintainer(), 1, NO_LIMITS).unwrap();
    for i in 0..t.chunk_count as usize {
        put(&mut r, t.upload_id, &model, i).unwrap();
    }
    let first = r.finish_upload(t.upload_id, as_maintainer()).unwrap();
    assert_eq!(first.upload_id, Some(t.upload_id));
    assert_eq!(r.finish_upload(t.upload_id, as_maintainer()), Ok(first.clone()));
    assert_eq!(r.versions().len(), 1);
    r.delete("cls", first.version).unwrap();
    assert_eq!(r.finish_upload(t.upload_id, as_maintainer()), Err(RegistryError::UnknownUpload(t.upload_id)));
}

/// #13: any stored version could serve, including uploads never activated (never validated).
#[test]
fn only_the_active_version_and_enabled_ones_serve() {
    let model = support::case("rapidocr_cls", "fp32").model;
    let (mut layout, mut r) = setup();
    let v1 = upload(&mut layout, &mut r, "cls", &model).version;
    let v2 = upload(&mut layout, &mut r, "cls", &model).version;
    let not_serving = |version| Err(InferenceError::VersionNotServing { name: "cls".into(), version });
    assert_eq!(r.serving("cls", Some(v1)).map(|i| i.version), not_serving(v1));
    assert_eq!(r.serving("cls", None).map(|i| i.version), Err(InferenceError::UnknownModel("cls".into())));
    r.activate("cls", v1).unwrap();
    assert_eq!(r.serving("cls", None).map(|i| i.version), Ok(v1));
    assert_eq!(r.serving("cls", Some(v2)).map(|i| i.version), not_serving(v2));
    r.set_enabled("cls", v2, true).unwrap();
    assert_eq!(r.serving("cls", Some(v2)).map(|i| i.version), Ok(v2));
    assert_eq!(r.enabled_versions("cls"), vec![v2]);
    r.set_enabled("cls", v2, false).unwrap();
    assert_eq!(r.serving("cls", Some(v2)).map(|i| i.version), not_serving(v2));
    assert_eq!(r.set_enabled("cls", 9, true), Err(RegistryError::UnknownVersion { name: "cls".into(), version: 9 }));
}

fn finish_one(model: &[u8]) -> Result<ModelInfo, RegistryError> {
    let (mut layout, mut r) = setup();
    let mut req = request("odd", model);
    req.inputs = None;
    req.chunk_size = model.len() as u32;
    let t = r.start_upload(&mut layout, req, maintainer(), 1, NO_LIMITS).unwrap();
    r.put_chunk(t.upload_id, 0, model.to_vec(), Sha256::digest(model).to_vec(), ADMIN).unwrap();
    r.finish_upload(t.upload_id, ADMIN)
}

/// #13: models that passed upload and then trapped at every inference.
#[test]
fn models_that_could_never_serve_are_refused_at_upload_with_the_reason() {
    use support::onnx::{ElemType, Graph};
    let no_outputs = Graph::new(13).input("x", ElemType::Float, &[1, 4]).node("Relu", &["x"], &["y"], vec![]);
    match finish_one(&no_outputs.to_bytes()) {
        Err(RegistryError::InvalidModel(why)) => assert!(why.contains("no outputs"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A graph of constants: nothing to run on a caller's data (tract's plan also indexes a
    // first input that is not there).
    let constant = Graph::new(13).output("y", ElemType::Float).f32("w", &[2], &[1.0, 2.0]).node(
        "Identity",
        &["w"],
        &["y"],
        vec![],
    );
    match finish_one(&constant.to_bytes()) {
        Err(RegistryError::InvalidModel(why)) => assert!(why.contains("takes no input"), "{why}"),
        other => panic!("{other:?}"),
    }
    let random = Graph::new(13).input("x", ElemType::Float, &[1, 4]).output("y", ElemType::Float).node(
        "RandomUniformLike",
        &["x"],
        &["y"],
        vec![],
    );
    match finish_one(&random.to_bytes()) {
        Err(RegistryError::InvalidModel(why)) => assert!(why.contains("RandomUniformLike"), "{why}"),
        Err(RegistryError::UnsupportedOperators(ops)) => assert_eq!(ops, vec!["RandomUniformLike".to_string()]),
        other => panic!("{other:?}"),
    }
}
