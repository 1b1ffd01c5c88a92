//! The stable-memory layout, pinned by golden files (in the spirit of ic-stable-structures' own
//! `stability` tests).
//!
//! - `the_stable_layout_is_unchanged` builds a fixed registry state natively (fixed principals
//!   and timestamps, the two tiny models in `tests/golden/*.onnx`, one active with a rollback
//!   history, roles granted, one upload left unfinished) and compares the raw stable memory with
//!   `tests/golden/stable_image.txt` (a sparse image) and a sha256 per virtual memory with
//!   `tests/golden/stable_layout.txt`. When they differ, the bytes this code writes are no longer
//!   the bytes the deployed code wrote: a layout change must come with a migration (and a
//!   `LAYOUT_VERSION` bump), and only then with a deliberate golden update:
//!
//!   ```text
//!   UPDATE_GOLDEN=1 cargo nextest run -p inference-engine --test engine stable_layout::
//!   ```
//!
//! - `todays_stable_memory_still_reads` goes the other way: it opens the committed image (made
//!   by the code of the day it was committed) and checks that the registry and the role lists
//!   read back every model, version, active pointer, role and the unfinished upload, and that
//!   the state can be written on (the upload finished, a rollback, a new upload). It must keep
//!   passing after a golden update too: keep an old image beside the new one when a migration
//!   is written, and read it here.

use std::fmt::Write as _;
use std::path::PathBuf;

use candid::Principal;
use ic_stable_structures::memory_manager::MemoryId;
use ic_stable_structures::{DefaultMemoryImpl, Memory};
use inference_api::{verify_chain, AuditEvent, AuditQuery, AuditRetention, ChangeAction, ChangeRecord, GENESIS};
use inference_engine::access::{Access, List};
use inference_engine::audit::AuditLog;
use inference_engine::quota::{Quota, Usage};
use inference_engine::registry::{Actor, Registry, UploadPolicy};
use inference_engine::stable::{self, Header, StableLayout, WASM_PAGE};
use inference_engine::types::*;
use sha2::{Digest, Sha256};

const MAINTAINER: [u8; 10] = [0xa1; 10];
/// The golden caller's quota window: (start, instructions used).
const USED: (u64, u64) = (T1, 123_456_789);
const QUOTA: Quota = Quota { instructions: 1 << 40, window_ns: 1 << 40 };
const CALLER: [u8; 29] = [0xc2; 29];
/// The golden canister's one pool peer.
const PEER: [u8; 10] = [0xd3; 10];
const FRONT: [u8; 10] = [0xd4; 10];
const AUDITOR: [u8; 10] = [0xd5; 10];
const UPLOADER: [u8; 3] = [1, 2, 3];
/// 2023-11-14T22:13:20Z, and a minute later.
const T1: u64 = 1_700_000_000_000_000_000;
const T2: u64 = T1 + 60_000_000_000;
const T3: u64 = T2 + 60_000_000_000;
const CHUNK: u32 = 64;
const ADMIN: Actor = Actor { principal: Principal::anonymous(), admin: true };
const NO_LIMITS: UploadPolicy = UploadPolicy { max_per_maintainer: u32::MAX, ttl_ns: u64::MAX };

/// The committed models' sha256, so a change to them is not mistaken for a layout change.
const RELU_SHA256: &str = "8769d7fee9f5ffda5e6e6deb9aab46f8557caf71ff32cd0466bd11b9cb115e01";
const ADD_SHA256: &str = "b07eea301abddd9853c52a465c64f9b26b9c05710aaa1b9a7ff5d5740c700f94";

fn golden(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(file)
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A committed model; created from the synthetic ONNX builder only when missing and updating
/// (never overwritten: the image was made from these bytes).
fn model_file(file: &str, expected_sha256: &str) -> Vec<u8> {
    use model_testdata::onnx::{ElemType, Graph};
    let path = golden(file);
    if !path.exists() && updating() {
        let graph = Graph::new(13).input("x", ElemType::Float, &[1, 4]).output("y", ElemType::Float);
        let graph = match file {
            "relu.onnx" => graph.node("Relu", &["x"], &["y"], vec![]),
            _ => graph.f32("b", &[1, 4], &[0.5, -1.0, 2.0, 0.25]).node("Add", &["x", "b"], &["y"], vec![]),
        };
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, graph.to_bytes()).unwrap();
    }
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let actual = hex(&Sha256::digest(&bytes));
    assert_eq!(actual, expected_sha256, "{} is not the model the golden image was made from", path.display());
    bytes
}

fn relu() -> Vec<u8> {
    model_file("relu.onnx", RELU_SHA256)
}

fn add() -> Vec<u8> {
    model_file("add.onnx", ADD_SHA256)
}

fn request(name: &str, bytes: &[u8], description: &str) -> UploadRequest {
    UploadRequest {
        name: name.into(),
        size: bytes.len() as u64,
        sha256: Sha256::digest(bytes).to_vec(),
        chunk_size: CHUNK,
        description: description.into(),
        labels: vec!["neg".into(), "pos".into()],
        inputs: None,
        text: None,
    }
}

fn put(r: &mut Registry<DefaultMemoryImpl>, id: u64, bytes: &[u8], index: u32) -> UploadStatus {
    let start = index as usize * CHUNK as usize;
    let chunk = &bytes[start..(start + CHUNK as usize).min(bytes.len())];
    r.put_chunk(id, index, chunk.to_vec(), Sha256::digest(chunk).to_vec(), ADMIN).unwrap()
}

/// The golden state: `cls` v1 (relu) and v2 (add), v1 activated then v2 (so v1 is the rollback
/// target), a maintainer and a caller (who used part of its instruction quota), and `det` (add)
/// uploading with only its first chunk in; an auditor, and an audit log of two entries kept by
/// count.
fn golden_state() -> DefaultMemoryImpl {
    let memory = DefaultMemoryImpl::default();
    let mut layout = StableLayout::init(memory.clone());
    let mut access = Access::init(&layout);
    let mut r = Registry::init(&layout);
    access.grant(List::Maintainers, Principal::from_slice(&MAINTAINER)).unwrap();
    access.grant(List::Callers, Principal::from_slice(&CALLER)).unwrap();
    access.grant(List::Peers, Principal::from_slice(&PEER)).unwrap();
    access.grant(List::Fronts, Principal::from_slice(&FRONT)).unwrap();
    access.grant(List::Auditors, Principal::from_slice(&AUDITOR)).unwrap();
    let mut log = AuditLog::init(&layout);
    log.set_retention(&AuditRetention { max_entries: Some(2), max_age_ns: None }, T1);
    for (n, at) in [(1, T1), (2, T2), (3, T3)] {
        log.append(at, Principal::from_slice(&CALLER), None, golden_event(n));
    }
    let mut usage = Usage::init(&layout);
    usage.charge(Principal::from_slice(&CALLER), USED.1, QUOTA, USED.0);
    usage.save();
    let uploader = Principal::from_slice(&UPLOADER);
    for (bytes, at, description) in [(relu(), T1, "relu"), (add(), T2, "add")] {
        let t = r.start_upload(&mut layout, request("cls", &bytes, description), uploader, at, NO_LIMITS).unwrap();
        for i in 0..t.chunk_count {
            put(&mut r, t.upload_id, &bytes, i);
        }
        r.finish_upload(t.upload_id, ADMIN).unwrap();
    }
    r.activate("cls", 1).unwrap();
    r.activate("cls", 2).unwrap();
    let add = add();
    let t = r.start_upload(&mut layout, request("det", &add, "unfinished"), uploader, T3, NO_LIMITS).unwrap();
    put(&mut r, t.upload_id, &add, 0);
    memory
}

fn golden_event(version: u32) -> AuditEvent {
    AuditEvent::Change(ChangeRecord {
        action: ChangeAction::Activated,
        model: Some("cls".into()),
        version: Some(version),
        model_sha256: Some(vec![version as u8; 32]),
        subject: None,
        role: None,
    })
}

fn raw(memory: &DefaultMemoryImpl) -> Vec<u8> {
    let mut bytes = vec![0; (memory.size() * WASM_PAGE) as usize];
    memory.read(0, &mut bytes);
    bytes
}

fn memory_name(id: u8) -> String {
    let named = [
        (stable::HEADER, "HEADER"),
        (stable::MODELS, "MODELS"),
        (stable::ACTIVE, "ACTIVE"),
        (stable::UPLOADS, "UPLOADS"),
        (stable::JOBS, "JOBS"),
        (stable::MAINTAINERS, "MAINTAINERS"),
        (stable::CALLERS, "CALLERS"),
        (stable::CONFIG, "CONFIG"),
        (stable::JOB_IDS, "JOB_IDS"),
        (stable::JOB_RESULTS, "JOB_RESULTS"),
        (stable::LINEAGE, "LINEAGE"),
        (stable::QUOTA_USAGE, "QUOTA_USAGE"),
        (stable::UPLOAD_PROGRESS, "UPLOAD_PROGRESS"),
        (stable::CHUNK_HASHES, "CHUNK_HASHES"),
        (stable::PEERS, "PEERS"),
        (stable::FRONTS, "FRONTS"),
        (stable::AUDITORS, "AUDITORS"),
        (stable::AUDIT_STATE, "AUDIT_STATE"),
        (stable::AUDIT_INDEX_A, "AUDIT_INDEX_A"),
        (stable::AUDIT_DATA_A, "AUDIT_DATA_A"),
        (stable::AUDIT_INDEX_B, "AUDIT_INDEX_B"),
        (stable::AUDIT_DATA_B, "AUDIT_DATA_B"),
    ];
    match named.iter().find(|(m, _)| *m == MemoryId::new(id)) {
        Some((_, n)) => n.to_string(),
        None if stable::BLOBS.contains(&id) => format!("BLOB_{id}"),
        None => "unnamed".into(),
    }
}

/// The size and sha256 of every virtual memory in use, and of the whole raw memory.
fn summary(memory: &DefaultMemoryImpl) -> String {
    let mut out = String::from(
        "# Stable memory of the golden registry state (tests/engine/stable_layout.rs): size and sha256 of\n\
         # every virtual memory in use. Update only with a migration:\n\
         # UPDATE_GOLDEN=1 cargo nextest run -p inference-engine --test engine stable_layout::\n",
    );
    let raw = raw(memory);
    writeln!(out, "raw pages {} sha256 {}", memory.size(), hex(&Sha256::digest(&raw))).unwrap();
    let layout = StableLayout::init(memory.clone());
    for id in 0..=254u8 {
        let m = layout.memory(MemoryId::new(id));
        if m.size() == 0 {
            continue;
        }
        let mut bytes = vec![0; (m.size() * WASM_PAGE) as usize];
        m.read(0, &mut bytes);
        writeln!(out, "memory {id} {} pages {} sha256 {}", memory_name(id), m.size(), hex(&Sha256::digest(&bytes)))
            .unwrap();
    }
    out
}

const BLOCK: usize = 32;

/// A sparse text image: `pages N`, then `OFFSET HEX` (literal bytes) or `OFFSET fill BYTE COUNT`
/// lines, offsets and bytes in hex, everything else zero.
fn image(memory: &DefaultMemoryImpl) -> String {
    let raw = raw(memory);
    let mut out = String::from(
        "# Sparse image of the stable memory of the golden registry state (tests/engine/stable_layout.rs).\n\
         # `pages N`, then `OFFSET HEX` (literal bytes) or `OFFSET fill BYTE COUNT`; the rest is zero.\n",
    );
    writeln!(out, "pages {}", memory.size()).unwrap();
    // A run of one repeated non-zero byte, being extended: (offset, byte, length).
    let mut fill: Option<(usize, u8, usize)> = None;
    for (n, block) in raw.chunks(BLOCK).enumerate() {
        let uniform = block.iter().all(|&b| b == block[0]).then_some(block[0]);
        if let Some((_, b, count)) = &mut fill {
            if uniform == Some(*b) {
                *count += block.len();
                continue;
            }
        }
        if let Some((at, b, count)) = fill.take() {
            writeln!(out, "{at:08x} fill {b:02x} {count:x}").unwrap();
        }
        match uniform {
            Some(0) => {}
            Some(b) => fill = Some((n * BLOCK, b, block.len())),
            None => writeln!(out, "{:08x} {}", n * BLOCK, hex(block)).unwrap(),
        }
    }
    if let Some((at, b, count)) = fill {
        writeln!(out, "{at:08x} fill {b:02x} {count:x}").unwrap();
    }
    out
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn from_image(text: &str) -> DefaultMemoryImpl {
    let memory = DefaultMemoryImpl::default();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields[..] {
            ["pages", n] => assert_eq!(memory.grow(n.parse().unwrap()), 0),
            [at, "fill", b, count] => {
                let (at, count) = (u64::from_str_radix(at, 16).unwrap(), usize::from_str_radix(count, 16).unwrap());
                memory.write(at, &vec![u8::from_str_radix(b, 16).unwrap(); count]);
            }
            [at, bytes] => memory.write(u64::from_str_radix(at, 16).unwrap(), &unhex(bytes)),
            _ => panic!("bad image line {line:?}"),
        }
    }
    memory
}

#[test]
fn the_image_format_round_trips() {
    let memory = golden_state();
    assert_eq!(raw(&from_image(&image(&memory))), raw(&memory));
}

#[test]
fn the_stable_layout_is_unchanged() {
    let memory = golden_state();
    let (summary, image) = (summary(&memory), image(&memory));
    let (summary_path, image_path) = (golden("stable_layout.txt"), golden("stable_image.txt"));
    if updating() {
        std::fs::write(&summary_path, &summary).unwrap();
        std::fs::write(&image_path, &image).unwrap();
        eprintln!("wrote {} and {}", summary_path.display(), image_path.display());
        return;
    }
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let (golden_summary, golden_image) = (read(&summary_path), read(&image_path));
    if summary != golden_summary || image != golden_image {
        let old: Vec<&str> = golden_summary.lines().collect();
        let new: Vec<&str> = summary.lines().collect();
        let changed: Vec<String> = old
            .iter()
            .filter(|l| !new.contains(l))
            .map(|l| format!("  - {l}"))
            .chain(new.iter().filter(|l| !old.contains(l)).map(|l| format!("  + {l}")))
            .collect();
        panic!(
            "THE STABLE-MEMORY LAYOUT CHANGED: the golden registry state is no longer stored as the \
             code that wrote tests/golden/ stored it.\n{}\n\
             Canisters running today's code hold data in the old layout. A layout change needs a \
             migration in post_upgrade (and a LAYOUT_VERSION bump), and then a deliberate golden \
             update: UPDATE_GOLDEN=1 cargo nextest run -p inference-engine --test engine stable_layout::",
            if changed.is_empty() {
                "  (only the memory manager's own header differs)".into()
            } else {
                changed.join("\n")
            }
        );
    }
}

#[test]
fn todays_stable_memory_still_reads() {
    reads_the_golden_state(&golden("stable_image.txt"), Some(USED), stable::LAYOUT_VERSION);
}

/// Layout 7 as written before plan-value inputs: records without `plan_value_inputs` (an
/// added candid `opt` field, read as absent; no migration needed).
#[test]
fn layout_version_7_before_plan_values_still_reads() {
    reads_the_golden_state(&golden("stable_image_v7_before_plan_values.txt"), Some(USED), 7);
}

/// Layout 6 (before the audit log): no auditors, an empty log that starts at the upgrade.
#[test]
fn layout_version_6_still_reads() {
    reads_the_golden_state(&golden("stable_image_v6.txt"), Some(USED), 6);
}

/// Layout 5 (before text fronts): no fronts; records without `vocabulary` (an added candid
/// `opt` field, read as absent).
#[test]
fn layout_version_5_still_reads() {
    reads_the_golden_state(&golden("stable_image_v5.txt"), Some(USED), 5);
}

/// Layout 5 as written before text models: records without the `text` field (an added
/// candid `opt` field, read as absent; no migration needed).
#[test]
fn layout_version_5_before_text_models_still_reads() {
    reads_the_golden_state(&golden("stable_image_v5_before_text.txt"), Some(USED), 5);
}

/// Layout 4 (before pools): no peers.
#[test]
fn layout_version_4_still_reads() {
    reads_the_golden_state(&golden("stable_image_v4.txt"), Some(USED), 4);
}

/// Layout 3 (chunk hashes inside the session record): opened by today's code, the unfinished
/// upload is moved to its progress record and completes from where it was.
#[test]
fn layout_version_3_still_reads() {
    reads_the_golden_state(&golden("stable_image_v3.txt"), Some(USED), 3);
}

/// Layout 2 (before quota usage was kept): every caller starts a new window.
#[test]
fn layout_version_2_still_reads() {
    reads_the_golden_state(&golden("stable_image_v2.txt"), None, 2);
}

/// Layout 1 (before version lineage and upload ids): opened by today's code, it reads as it did
/// and is written on with today's rules (the next version after v2 is v3).
#[test]
fn layout_version_1_still_reads() {
    reads_the_golden_state(&golden("stable_image_v1.txt"), None, 1);
}

/// Opens a golden image and checks it holds the golden state; `used` is the caller's quota
/// window (start, instructions) when the image's layout keeps one; `layout` the layout it was
/// written in (pool peers since 5, text fronts since 6, the audit log since 7).
fn reads_the_golden_state(image: &std::path::Path, used: Option<(u64, u64)>, layout_written: u32) {
    let (peered, fronted, audited) = (layout_written >= 5, layout_written >= 6, layout_written >= 7);
    let text = std::fs::read_to_string(image).unwrap();
    let memory = from_image(&text);
    let (relu, add) = (relu(), add());
    let uploader = Principal::from_slice(&UPLOADER);

    let mut layout = StableLayout::init(memory.clone());
    assert_eq!(
        layout.header.get().clone(),
        Header { magic: *b"ONNX", layout_version: stable::LAYOUT_VERSION, next_blob: 1, next_upload: 4 }
    );
    let access = Access::init(&layout);
    assert_eq!(access.members(List::Maintainers), vec![Principal::from_slice(&MAINTAINER)]);
    assert_eq!(access.members(List::Callers), vec![Principal::from_slice(&CALLER)]);
    let peers = if peered { vec![Principal::from_slice(&PEER)] } else { vec![] };
    assert_eq!(access.members(List::Peers), peers);
    let fronts = if fronted { vec![Principal::from_slice(&FRONT)] } else { vec![] };
    assert_eq!(access.members(List::Fronts), fronts);
    let auditors = if audited { vec![Principal::from_slice(&AUDITOR)] } else { vec![] };
    assert_eq!(access.members(List::Auditors), auditors);
    let mut log = AuditLog::init(&layout);
    let kept = log.page(&AuditQuery::default(), T3).records;
    if audited {
        // Retention kept the newest two of three; they still chain to the head.
        assert_eq!(kept.iter().map(|r| r.entry.index).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(kept[1].entry.event, golden_event(3));
        assert_eq!(verify_chain(&kept), Ok(Some(log.head().to_vec())));
    } else {
        assert_eq!((kept.len(), log.next_index(), log.head()), (0, 0, GENESIS.as_slice()));
    }
    let (index, _) = log.append(T3, Principal::from_slice(&CALLER), None, golden_event(4));
    assert_eq!(index, if audited { 3 } else { 0 });
    assert!(access.contains(List::Maintainers, Principal::from_slice(&MAINTAINER)));
    assert!(!access.contains(List::Maintainers, Principal::from_slice(&CALLER)));
    assert_eq!(Usage::init(&layout).of(Principal::from_slice(&CALLER)), used);

    let mut r = Registry::init(&layout);
    let versions = r.versions();
    let summary: Vec<_> = versions
        .iter()
        .map(|i| {
            (
                i.name.as_str(),
                i.version,
                hex(&i.sha256),
                i.size,
                i.chunk_size,
                i.chunk_count,
                i.blob,
                i.uploaded_by,
                i.uploaded_at_ns,
                i.description.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "cls",
                1,
                RELU_SHA256.to_string(),
                relu.len() as u64,
                CHUNK,
                relu.len().div_ceil(64) as u32,
                16,
                uploader,
                T1,
                "relu"
            ),
            (
                "cls",
                2,
                ADD_SHA256.to_string(),
                add.len() as u64,
                CHUNK,
                add.len().div_ceil(64) as u32,
                17,
                uploader,
                T2,
                "add"
            ),
        ]
    );
    let x = TensorSpec { name: "x".into(), shape: vec![1, 4], dtype: DType::F32, max_shape: None };
    for (info, operators, parameters) in [(&versions[0], "Relu", 0), (&versions[1], "Add", 4)] {
        assert_eq!(info.inputs, vec![x.clone()]);
        assert_eq!(info.outputs.len(), 1);
        assert_eq!(info.outputs[0].name, "y");
        assert_eq!(info.labels, vec!["neg".to_string(), "pos".to_string()]);
        assert_eq!(info.operators, vec![operators.to_string()]);
        assert_eq!((info.weight_format, info.parameters), (WeightFormat::F32, parameters));
    }
    assert_eq!(r.bytes(&versions[0]), relu);
    assert_eq!(r.bytes(&versions[1]), add);
    assert_eq!(r.active_version("cls"), Some(2));
    assert_eq!(r.info("cls", None).unwrap(), versions[1]);
    assert_eq!(r.active_version("det"), None);
    let chunks = add.len().div_ceil(64) as u32;
    let status = UploadStatus {
        upload_id: 3,
        name: "det".into(),
        size: add.len() as u64,
        chunk_size: CHUNK,
        chunk_count: chunks,
        missing: vec![ChunkRange { start: 1, end: chunks }],
        received_bytes: 64,
        sha256: Sha256::digest(&add).to_vec(),
    };
    assert_eq!(r.upload_status(3, ADMIN), Ok(status.clone()));
    assert_eq!(r.uploads(ADMIN), vec![UploadSummary::from(status)]);

    // And the state can be written on: the upload completes (its first chunk is still there),
    // the rollback history survived, ids and blobs go on from where they were.
    // The first chunk's hash was kept (moved out of the layout-3 session record): the same chunk
    // again is accepted, other bytes for it are refused.
    put(&mut r, 3, &add, 0);
    let other = vec![0u8; CHUNK as usize];
    let conflicting = r.put_chunk(3, 0, other.clone(), Sha256::digest(&other).to_vec(), ADMIN);
    assert_eq!(conflicting, Err(RegistryError::ConflictingChunk { index: 0 }));
    for i in 1..chunks {
        put(&mut r, 3, &add, i);
    }
    let det = r.finish_upload(3, ADMIN).unwrap();
    assert_eq!((det.name.as_str(), det.version, det.blob, det.uploaded_at_ns), ("det", 1, 18, T3));
    assert_eq!(r.bytes(&det), add);
    assert_eq!(r.rollback("cls"), Ok(1));
    assert_eq!(r.rollback("cls"), Err(RegistryError::NothingToRollBackTo("cls".into())));
    let t = r.start_upload(&mut layout, request("cls", &relu, "next"), uploader, T3, NO_LIMITS).unwrap();
    assert_eq!(t.upload_id, 4);
    for i in 0..t.chunk_count {
        put(&mut r, t.upload_id, &relu, i);
    }
    let v3 = r.finish_upload(t.upload_id, ADMIN).unwrap();
    assert_eq!((v3.version, v3.blob), (3, 19));
}
