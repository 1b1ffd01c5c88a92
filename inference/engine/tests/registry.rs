//! The model registry on a real model, natively: chunked upload in any order, resume, verify,
//! versions, activation, and every bad input answered with its typed error.

use model_testdata as support;

use candid::Principal;
use ic_stable_structures::DefaultMemoryImpl;
use inference_engine::registry::Registry;
use inference_engine::stable::StableLayout;
use inference_engine::types::*;
use sha2::{Digest, Sha256};

const CHUNK: usize = 64 * 1024;

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
        inputs: Some(vec![TensorSpec { name: "x".into(), shape: vec![1, 3, 48, 192], dtype: DType::F32 }]),
    }
}

fn put(
    r: &mut Registry<DefaultMemoryImpl>,
    id: u64,
    bytes: &[u8],
    index: usize,
) -> Result<UploadStatus, RegistryError> {
    let chunk = &bytes[index * CHUNK..((index + 1) * CHUNK).min(bytes.len())];
    r.put_chunk(id, index as u32, chunk.to_vec(), Sha256::digest(chunk).to_vec())
}

fn upload(
    layout: &mut StableLayout<DefaultMemoryImpl>,
    r: &mut Registry<DefaultMemoryImpl>,
    name: &str,
    bytes: &[u8],
) -> ModelInfo {
    let t = r.start_upload(layout, request(name, bytes), maintainer(), 42).unwrap();
    for i in 0..t.chunk_count as usize {
        put(r, t.upload_id, bytes, i).unwrap();
    }
    r.finish_upload(t.upload_id).unwrap()
}

#[test]
fn shuffled_duplicated_interrupted_upload_resumes_and_verifies() {
    let model = support::case("rapidocr_cls", "fp32").model;
    let (mut layout, mut r) = setup();
    let t = r.start_upload(&mut layout, request("cls", &model), maintainer(), 7).unwrap();
    assert_eq!(t.chunk_count as usize, model.len().div_ceil(CHUNK));
    // Odd chunks first, some twice; then "the link drops".
    for i in (1..t.chunk_count as usize).step_by(2).chain([1, 3]) {
        put(&mut r, t.upload_id, &model, i).unwrap();
    }
    assert!(matches!(r.finish_upload(t.upload_id), Err(RegistryError::ChunksMissing { .. })));
    // Resume from the canister's missing list.
    let missing = r.upload_status(t.upload_id).unwrap().missing;
    assert_eq!(missing, (0..t.chunk_count).step_by(2).collect::<Vec<_>>());
    for i in missing.into_iter().rev() {
        put(&mut r, t.upload_id, &model, i as usize).unwrap();
    }
    let info = r.finish_upload(t.upload_id).unwrap();
    assert_eq!((info.name.as_str(), info.version, info.size), ("cls", 1, model.len() as u64));
    assert_eq!(info.weight_format, WeightFormat::F32);
    assert!(info.operators.contains(&"Conv".to_string()), "{:?}", info.operators);
    assert_eq!(r.bytes(&info), model);
    assert!(r.uploads().is_empty());
}

#[test]
fn every_bad_upload_input_has_its_typed_error_and_changes_nothing() {
    let model = support::case("rapidocr_cls", "fp32").model;
    let (mut layout, mut r) = setup();
    let good = upload(&mut layout, &mut r, "cls", &model);
    r.activate("cls", good.version).unwrap();

    let t = r.start_upload(&mut layout, request("cls", &model), maintainer(), 1).unwrap();
    let id = t.upload_id;
    assert_eq!(r.put_chunk(999, 0, vec![], vec![]), Err(RegistryError::UnknownUpload(999)));
    assert!(matches!(
        r.put_chunk(id, t.chunk_count, vec![0], Sha256::digest([0]).to_vec()),
        Err(RegistryError::ChunkIndexOutOfRange { .. })
    ));
    assert!(matches!(r.put_chunk(id, 0, vec![0; 3 << 20], vec![0; 32]), Err(RegistryError::ChunkTooLarge { .. })));
    assert!(matches!(
        r.put_chunk(id, 0, vec![0; 10], Sha256::digest([0; 10]).to_vec()),
        Err(RegistryError::ChunkWrongSize { .. })
    ));
    assert_eq!(
        r.put_chunk(id, 0, model[..CHUNK].to_vec(), vec![0; 5]),
        Err(RegistryError::ChunkHashMismatch { index: 0 })
    );
    put(&mut r, id, &model, 0).unwrap();
    put(&mut r, id, &model, 0).unwrap(); // the same chunk twice is fine
    let other = vec![7u8; CHUNK];
    assert_eq!(
        r.put_chunk(id, 0, other.clone(), Sha256::digest(&other).to_vec()),
        Err(RegistryError::ConflictingChunk { index: 0 })
    );
    assert!(matches!(r.finish_upload(id), Err(RegistryError::ChunksMissing { .. })));
    r.abort_upload(id).unwrap();
    assert_eq!(r.upload_status(id), Err(RegistryError::UnknownUpload(id)));

    // A chunk whose bytes differ from its declared hash is found at finish, named, dropped;
    // resending it completes the upload.
    let t = r.start_upload(&mut layout, request("fixed", &model), maintainer(), 1).unwrap();
    for i in 0..t.chunk_count as usize {
        if i == 2 {
            let mut corrupt = model[2 * CHUNK..3 * CHUNK].to_vec();
            corrupt[100] ^= 1;
            r.put_chunk(t.upload_id, 2, corrupt, Sha256::digest(&model[2 * CHUNK..3 * CHUNK]).to_vec()).unwrap();
        } else {
            put(&mut r, t.upload_id, &model, i).unwrap();
        }
    }
    assert_eq!(r.finish_upload(t.upload_id), Err(RegistryError::CorruptChunks { indices: vec![2] }));
    assert_eq!(r.upload_status(t.upload_id).unwrap().missing, vec![2]);
    put(&mut r, t.upload_id, &model, 2).unwrap();
    assert_eq!(r.finish_upload(t.upload_id).unwrap().name, "fixed");
    r.delete("fixed", 1).unwrap();

    // Declared hash differs from the bytes.
    let mut wrong = request("cls", &model);
    wrong.sha256 = vec![0; 32];
    let t = r.start_upload(&mut layout, wrong, maintainer(), 1).unwrap();
    for i in 0..t.chunk_count as usize {
        put(&mut r, t.upload_id, &model, i).unwrap();
    }
    assert!(matches!(r.finish_upload(t.upload_id), Err(RegistryError::ModelHashMismatch { .. })));

    // Truncated ONNX: hashes match, the model does not parse.
    let truncated = &model[..model.len() / 2];
    let t = r.start_upload(&mut layout, request("cls", truncated), maintainer(), 1).unwrap();
    for i in 0..t.chunk_count as usize {
        put(&mut r, t.upload_id, truncated, i).unwrap();
    }
    assert!(matches!(r.finish_upload(t.upload_id), Err(RegistryError::InvalidModel(_))));
    // Bad names and sizes.
    assert!(matches!(
        r.start_upload(&mut layout, request("no spaces", &model), maintainer(), 1),
        Err(RegistryError::InvalidRequest(_))
    ));
    let mut big_chunks = request("cls", &model);
    big_chunks.chunk_size = 4 << 20;
    assert!(matches!(
        r.start_upload(&mut layout, big_chunks, maintainer(), 1),
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
    let t = r.start_upload(&mut layout, request("odd", &unheard), maintainer(), 1).unwrap();
    put(&mut r, t.upload_id, &unheard, 0).unwrap();
    assert_eq!(
        r.finish_upload(t.upload_id),
        Err(RegistryError::UnsupportedOperators(vec!["com.example::Unheard".into()]))
    );
    // onnxruntime's QOperator format: its com.microsoft contrib ops are ours to run.
    let qop = support::case("rapidocr_cls", "qop").model;
    let t = r.start_upload(&mut layout, request("qop", &qop), maintainer(), 1).unwrap();
    for i in 0..t.chunk_count as usize {
        put(&mut r, t.upload_id, &qop, i).unwrap();
    }
    let info = r.finish_upload(t.upload_id).unwrap();
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
        let t = r.start_upload(&mut layout, request("half", &model), maintainer(), 1).unwrap();
        put(&mut r, t.upload_id, &model, 0).unwrap();
    }
    // As after an upgrade: a fresh heap over the same stable memory.
    let mut layout = StableLayout::init(memory);
    let mut r = Registry::init(&layout);
    assert_eq!(r.active_version("cls"), Some(1));
    let pending = r.uploads();
    assert_eq!(pending.len(), 1);
    for i in pending[0].missing.clone() {
        put(&mut r, pending[0].upload_id, &model, i as usize).unwrap();
    }
    assert_eq!(r.finish_upload(pending[0].upload_id).unwrap().name, "half");
    // Ids keep counting from the header.
    let t = r.start_upload(&mut layout, request("next", &model), maintainer(), 1).unwrap();
    assert!(t.upload_id > pending[0].upload_id);
}

#[test]
fn blob_slots_run_out_with_a_typed_error_and_are_reused_after_abort_and_delete() {
    let model = support::case("rapidocr_cls", "fp32").model;
    let (mut layout, mut r) = setup();
    let first = upload(&mut layout, &mut r, "cls", &model);
    let mut ids = vec![];
    loop {
        match r.start_upload(&mut layout, request("many", &model), maintainer(), 1) {
            Ok(t) => ids.push(t.upload_id),
            Err(RegistryError::InvalidRequest(m)) => {
                assert!(m.contains("slots"), "{m}");
                break;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ids.len() + 1, inference_engine::stable::BLOBS.len());
    r.abort_upload(ids[0]).unwrap();
    let reused = upload(&mut layout, &mut r, "again", &model);
    assert_eq!(r.bytes(&reused), model);
    // Deleting a version frees its slot too; the other version's bytes are untouched.
    r.abort_upload(ids[1]).unwrap();
    let second = upload(&mut layout, &mut r, "cls", &model);
    r.delete("cls", second.version).unwrap();
    let third = upload(&mut layout, &mut r, "cls", &model[..]);
    assert_eq!(third.blob, second.blob);
    assert_eq!(r.bytes(&first), model);
}
