//! The model registry: chunked uploads into stable memory, sha256-verified, recorded as
//! immutable versions, one active version per model name switched atomically.
//!
//! Every operation checks everything before writing anything, so a failed call changes nothing
//! (and the canister's trap rollback covers the rest).

use std::borrow::Cow;

use candid::{CandidType, Deserialize, Principal};
use ic_stable_structures::memory_manager::MemoryId;
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{Memory, StableBTreeMap, Storable};
use sha2::{Digest, Sha256};

use crate::candid_storable;
use crate::model;
use crate::stable::{self, Mem, StableLayout};
use crate::types::*;

/// Largest chunk accepted: an ingress message is 2 MiB including the candid envelope.
pub const MAX_CHUNK_BYTES: u64 = 2 * 1024 * 1024 - 4 * 1024;
/// Largest model accepted: `upload_finish` hashes and inspects the whole file in one message, so
/// the cap keeps it well inside the 40 B-instruction limit at the per-byte cost the benchmark
/// measures (`upload/…/finish` in benchmarks/results.yml).
pub const MAX_MODEL_BYTES: u64 = 256 * 1024 * 1024;
const MAX_NAME: usize = 64;

/// `name` and `version` as one ordered stable key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct VersionKey(Vec<u8>);

impl VersionKey {
    fn new(name: &str, version: u32) -> Self {
        let mut k = name.as_bytes().to_vec();
        k.push(0);
        k.extend_from_slice(&version.to_be_bytes());
        VersionKey(k)
    }
    fn first(name: &str) -> Self {
        Self::new(name, 0)
    }
    fn last(name: &str) -> Self {
        Self::new(name, u32::MAX)
    }
}

impl Storable for VersionKey {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.0)
    }
    fn into_bytes(self) -> Vec<u8> {
        self.0
    }
    fn from_bytes(bytes: Cow<'_, [u8]>) -> Self {
        VersionKey(bytes.into_owned())
    }
    const BOUND: Bound = Bound::Bounded { max_size: MAX_NAME as u32 + 5, is_fixed_size: false };
}

/// The active version of a model and the ones active before it, for rollback.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Activation {
    pub current: u32,
    pub previous: Vec<u32>,
}

/// An upload in progress.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UploadSession {
    pub id: u64,
    pub blob: u64,
    pub request: UploadRequest,
    pub chunk_count: u32,
    /// sha256 of every chunk received so far.
    pub received: Vec<Option<Vec<u8>>>,
    pub started_by: Principal,
    pub started_at_ns: u64,
}

candid_storable!(Activation);
candid_storable!(UploadSession);

pub struct Registry<M: Memory> {
    models: StableBTreeMap<VersionKey, ModelInfo, Mem<M>>,
    active: StableBTreeMap<String, Activation, Mem<M>>,
    uploads: StableBTreeMap<u64, UploadSession, Mem<M>>,
    /// The blob memories, indexed by `blob - BLOBS.start()`.
    blobs: Vec<Mem<M>>,
}

fn check_name(name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::InvalidRequest(format!(
            "model name \"{name}\": 1 to {MAX_NAME} characters of a-z, A-Z, 0-9, '-', '_', '.'"
        )))
    }
}

impl<M: Memory> Registry<M> {
    pub fn init(layout: &StableLayout<M>) -> Self {
        Registry {
            models: StableBTreeMap::init(layout.memory(stable::MODELS)),
            active: StableBTreeMap::init(layout.memory(stable::ACTIVE)),
            uploads: StableBTreeMap::init(layout.memory(stable::UPLOADS)),
            blobs: stable::BLOBS.map(|id| layout.memory(MemoryId::new(id))).collect(),
        }
    }

    fn blob(&self, blob: u64) -> &Mem<M> {
        &self.blobs[(blob - *stable::BLOBS.start() as u64) as usize]
    }

    /// A blob memory no model or upload uses.
    fn free_blob(&self) -> Result<u64, RegistryError> {
        let used: std::collections::BTreeSet<u64> =
            self.models.iter().map(|e| e.value().blob).chain(self.uploads.iter().map(|e| e.value().blob)).collect();
        stable::BLOBS.map(u64::from).find(|b| !used.contains(b)).ok_or_else(|| {
            RegistryError::InvalidRequest(format!(
                "all {} model slots hold a model version or an upload: delete a version or abort an upload",
                stable::BLOBS.len()
            ))
        })
    }

    // ----- uploads -----

    pub fn start_upload(
        &mut self,
        layout: &mut StableLayout<M>,
        request: UploadRequest,
        caller: Principal,
        now_ns: u64,
    ) -> Result<UploadTicket, RegistryError> {
        check_name(&request.name)?;
        let invalid = |m: String| Err(RegistryError::InvalidRequest(m));
        if request.sha256.len() != 32 {
            return invalid("sha256 must be 32 bytes".into());
        }
        if request.size == 0 || request.size > MAX_MODEL_BYTES {
            return invalid(format!("size must be 1 to {MAX_MODEL_BYTES} bytes"));
        }
        if request.chunk_size == 0 || request.chunk_size as u64 > MAX_CHUNK_BYTES {
            return Err(RegistryError::ChunkTooLarge { size: request.chunk_size as u64, max: MAX_CHUNK_BYTES });
        }
        let chunk_count = request.size.div_ceil(request.chunk_size as u64) as u32;
        let blob = self.free_blob()?;
        let id = layout.next_id(|h| &mut h.next_upload);
        self.uploads.insert(
            id,
            UploadSession {
                id,
                blob,
                request,
                chunk_count,
                received: vec![None; chunk_count as usize],
                started_by: caller,
                started_at_ns: now_ns,
            },
        );
        Ok(UploadTicket { upload_id: id, chunk_count })
    }

    fn session(&self, upload_id: u64) -> Result<UploadSession, RegistryError> {
        self.uploads.get(&upload_id).ok_or(RegistryError::UnknownUpload(upload_id))
    }

    /// Stores one chunk with its declared sha256. The same chunk again is accepted; a different
    /// chunk for an index already received is refused.
    ///
    /// The declared hash is checked against the bytes at finish, not here: SHA-256 costs many
    /// times what storing a byte does on wasm (benchmarks/NOTES.md, Upload), and ingress payloads
    /// are already integrity-protected by the IC, so hashing each chunk on arrival would make
    /// uploads several times dearer for no safety.
    pub fn put_chunk(
        &mut self,
        upload_id: u64,
        index: u32,
        bytes: Vec<u8>,
        sha256: Vec<u8>,
    ) -> Result<UploadStatus, RegistryError> {
        let mut session = self.session(upload_id)?;
        if index >= session.chunk_count {
            return Err(RegistryError::ChunkIndexOutOfRange { index, chunk_count: session.chunk_count });
        }
        if bytes.len() as u64 > MAX_CHUNK_BYTES {
            return Err(RegistryError::ChunkTooLarge { size: bytes.len() as u64, max: MAX_CHUNK_BYTES });
        }
        let expected = expected_chunk_len(&session, index);
        if bytes.len() as u64 != expected {
            return Err(RegistryError::ChunkWrongSize { index, expected, got: bytes.len() as u64 });
        }
        if sha256.len() != 32 {
            return Err(RegistryError::ChunkHashMismatch { index });
        }
        match &session.received[index as usize] {
            Some(existing) if *existing == sha256 => {}
            Some(_) => return Err(RegistryError::ConflictingChunk { index }),
            None => {
                let memory = self.blob(session.blob);
                let offset = index as u64 * session.request.chunk_size as u64;
                let needed_pages = (offset + bytes.len() as u64).div_ceil(crate::stable::WASM_PAGE);
                if memory.size() < needed_pages && memory.grow(needed_pages - memory.size()) < 0 {
                    return Err(RegistryError::OutOfStableMemory);
                }
                memory.write(offset, &bytes);
                session.received[index as usize] = Some(sha256);
                self.uploads.insert(upload_id, session.clone());
            }
        }
        Ok(status(&session))
    }

    pub fn upload_status(&self, upload_id: u64) -> Result<UploadStatus, RegistryError> {
        self.session(upload_id).map(|s| status(&s))
    }

    pub fn uploads(&self) -> Vec<UploadStatus> {
        self.uploads.iter().map(|e| status(&e.value())).collect()
    }

    /// Abandons an upload; its blob memory becomes free for the next one.
    pub fn abort_upload(&mut self, upload_id: u64) -> Result<(), RegistryError> {
        self.session(upload_id)?;
        self.uploads.remove(&upload_id);
        Ok(())
    }

    /// Reads a blob's first `size` bytes.
    fn read_blob(&self, blob: u64, size: u64) -> Vec<u8> {
        let mut bytes = vec![0; size as usize];
        self.blob(blob).read(0, &mut bytes);
        bytes
    }

    /// Verifies the whole file against its declared sha256, inspects it with tract and records it
    /// as the next version of its name. The bytes stay where the chunks were written (no copy).
    pub fn finish_upload(&mut self, upload_id: u64) -> Result<ModelInfo, RegistryError> {
        let session = self.session(upload_id)?;
        let missing = status(&session).missing;
        if !missing.is_empty() {
            return Err(RegistryError::ChunksMissing { missing });
        }
        let bytes = self.read_blob(session.blob, session.request.size);
        let actual = Sha256::digest(&bytes).to_vec();
        if actual != session.request.sha256 {
            return Err(self.drop_corrupt_chunks(session, actual));
        }
        let inspection = model::inspect(&bytes).map_err(RegistryError::InvalidModel)?;
        if !inspection.unsupported.is_empty() {
            return Err(RegistryError::UnsupportedOperators(inspection.unsupported));
        }
        let request = &session.request;
        let inputs = request.inputs.clone().unwrap_or(inspection.inputs);
        let labels =
            if request.labels.is_empty() { labels_from_metadata(&inspection.metadata) } else { request.labels.clone() };
        let version = self.latest_version(&request.name).map_or(1, |v| v + 1);
        let info = ModelInfo {
            name: request.name.clone(),
            version,
            sha256: actual,
            size: request.size,
            chunk_size: request.chunk_size,
            chunk_count: session.chunk_count,
            inputs,
            outputs: inspection.outputs,
            labels,
            weight_format: inspection.weight_format,
            operators: inspection.operators,
            parameters: inspection.parameters,
            description: request.description.clone(),
            uploaded_by: session.started_by,
            uploaded_at_ns: session.started_at_ns,
            blob: session.blob,
        };
        self.models.insert(VersionKey::new(&info.name, version), info.clone());
        self.uploads.remove(&upload_id);
        Ok(info)
    }

    /// After a whole-file mismatch: finds the chunks whose bytes differ from their declared hash
    /// and drops them, so resending them repairs the upload. With none corrupt, the file is
    /// simply not the one declared.
    fn drop_corrupt_chunks(&mut self, mut session: UploadSession, actual: Vec<u8>) -> RegistryError {
        let mut indices = Vec::new();
        for index in 0..session.chunk_count {
            let mut bytes = vec![0; expected_chunk_len(&session, index) as usize];
            self.blob(session.blob).read(index as u64 * session.request.chunk_size as u64, &mut bytes);
            if session.received[index as usize].as_deref() != Some(Sha256::digest(&bytes).as_slice()) {
                indices.push(index);
                session.received[index as usize] = None;
            }
        }
        if indices.is_empty() {
            return RegistryError::ModelHashMismatch { declared: session.request.sha256.clone(), actual };
        }
        self.uploads.insert(session.id, session);
        RegistryError::CorruptChunks { indices }
    }

    // ----- versions -----

    fn latest_version(&self, name: &str) -> Option<u32> {
        self.models.range(VersionKey::first(name)..=VersionKey::last(name)).last().map(|e| e.value().version)
    }

    pub fn info(&self, name: &str, version: Option<u32>) -> Result<ModelInfo, RegistryError> {
        let version = match version {
            Some(v) => v,
            None => self.active_version(name).ok_or_else(|| RegistryError::UnknownModel(name.to_string()))?,
        };
        self.models
            .get(&VersionKey::new(name, version))
            .ok_or_else(|| RegistryError::UnknownVersion { name: name.to_string(), version })
    }

    pub fn versions(&self) -> Vec<ModelInfo> {
        self.models.iter().map(|e| e.value()).collect()
    }

    pub fn active_version(&self, name: &str) -> Option<u32> {
        self.active.get(&name.to_string()).map(|a| a.current)
    }

    /// The model's bytes.
    pub fn bytes(&self, info: &ModelInfo) -> Vec<u8> {
        self.read_blob(info.blob, info.size)
    }

    /// Makes `version` the one that serves `name`.
    pub fn activate(&mut self, name: &str, version: u32) -> Result<(), RegistryError> {
        self.info(name, Some(version))?;
        let activation = match self.active.get(&name.to_string()) {
            Some(a) if a.current == version => a,
            Some(mut a) => {
                a.previous.push(a.current);
                a.current = version;
                a
            }
            None => Activation { current: version, previous: vec![] },
        };
        self.active.insert(name.to_string(), activation);
        Ok(())
    }

    /// Goes back to the version active before the current one; returns it.
    pub fn rollback(&mut self, name: &str) -> Result<u32, RegistryError> {
        let mut a = self.active.get(&name.to_string()).ok_or_else(|| RegistryError::UnknownModel(name.to_string()))?;
        let Some(previous) = a.previous.pop() else {
            return Err(RegistryError::NothingToRollBackTo(name.to_string()));
        };
        a.current = previous;
        self.active.insert(name.to_string(), a);
        Ok(previous)
    }

    /// Deletes a version that is not active, freeing its bytes.
    pub fn delete(&mut self, name: &str, version: u32) -> Result<(), RegistryError> {
        self.info(name, Some(version))?;
        if self.active_version(name) == Some(version) {
            return Err(RegistryError::VersionActive { name: name.to_string(), version });
        }
        if let Some(mut a) = self.active.get(&name.to_string()) {
            a.previous.retain(|v| *v != version);
            self.active.insert(name.to_string(), a);
        }
        // Its blob memory is free again once the record is gone.
        self.models.remove(&VersionKey::new(name, version));
        Ok(())
    }
}

fn expected_chunk_len(session: &UploadSession, index: u32) -> u64 {
    let chunk = session.request.chunk_size as u64;
    if index + 1 == session.chunk_count {
        session.request.size - chunk * index as u64
    } else {
        chunk
    }
}

fn status(session: &UploadSession) -> UploadStatus {
    let missing: Vec<u32> =
        session.received.iter().enumerate().filter(|(_, r)| r.is_none()).map(|(i, _)| i as u32).collect();
    let received_bytes = (0..session.chunk_count)
        .filter(|i| session.received[*i as usize].is_some())
        .map(|i| expected_chunk_len(session, i))
        .sum();
    UploadStatus {
        upload_id: session.id,
        name: session.request.name.clone(),
        size: session.request.size,
        chunk_size: session.request.chunk_size,
        chunk_count: session.chunk_count,
        missing,
        received_bytes,
        sha256: session.request.sha256.clone(),
    }
}

/// Class labels some exporters store in the model's metadata (e.g. `character`, one per line
/// or comma-separated).
fn labels_from_metadata(metadata: &[(String, String)]) -> Vec<String> {
    metadata
        .iter()
        .find(|(k, _)| matches!(k.as_str(), "labels" | "classes" | "character"))
        .map(|(_, v)| v.split(['\n', ',']).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}
