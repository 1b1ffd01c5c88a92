//! The model registry: chunked uploads into stable memory, sha256-verified, recorded as
//! immutable versions, one active version per model name switched atomically.
//!
//! Every operation checks everything before writing anything, so a failed call changes nothing
//! (and the canister's trap rollback covers the rest).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;

use candid::{CandidType, Deserialize, Principal};
use ic_stable_structures::memory_manager::MemoryId;
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{Memory, StableBTreeMap, Storable};
use sha2::{Digest, Sha256};

use crate::candid_storable;
use crate::model;
use crate::stable::{self, Mem, StableLayout};
use crate::text;
use crate::types::*;
use crate::upload_progress::UploadProgress;

/// Largest chunk accepted: an ingress message is 2 MiB including the candid envelope.
pub const MAX_CHUNK_BYTES: u64 = 2 * 1024 * 1024 - 4 * 1024;
/// Largest model accepted: `upload_finish` hashes and inspects the whole file in one message, so
/// the cap keeps it well inside the 40 B-instruction limit at the per-byte cost the benchmark
/// measures (`upload/…/finish` in benchmarks/results.yml).
pub const MAX_MODEL_BYTES: u64 = 256 * 1024 * 1024;
/// Most chunks one upload may have: the progress record (a bit per chunk) stays fixed and small
/// and `upload_status`'s missing ranges a few KiB, whatever chunk size a maintainer declares (a
/// 256 MiB model needs chunks of 64 KiB or more).
pub const MAX_CHUNKS: u32 = 4096;
pub(crate) const MAX_NAME: usize = 64;
/// Operators whose output is drawn at random: the canister's deterministic build has no random
/// source, so such a model would trap at every inference. Refused at upload.
const RANDOM_OPERATORS: [&str; 6] =
    ["RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial"];

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

/// An upload in progress, as `upload_start` stored it (read again only at finish); where it
/// stands is its [`UploadProgress`].
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UploadSession {
    pub id: u64,
    pub blob: u64,
    pub request: UploadRequest,
    pub chunk_count: u32,
    /// Layout 3 and older: the sha256 of every chunk received so far. Moved to the progress
    /// record and the chunk-hash map when the registry opens; empty since.
    pub received: Vec<Option<Vec<u8>>>,
    pub started_by: Principal,
    pub started_at_ns: u64,
}

/// What a name keeps beyond its versions: the highest version number it ever had (so a number
/// is never reused, even after the newest version was deleted) and the versions maintainers
/// enabled to serve besides the active one.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Lineage {
    pub last_version: u32,
    pub enabled: Vec<u32>,
}

candid_storable!(Activation);
candid_storable!(UploadSession);
candid_storable!(Lineage);

/// Who is acting on an upload: only its owner or an admin may change it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    pub principal: Principal,
    pub admin: bool,
}

impl Actor {
    fn may_change(&self, session: &UploadProgress) -> Result<(), RegistryError> {
        if self.admin || session.started_by == self.principal {
            Ok(())
        } else {
            Err(RegistryError::NotUploadOwner { upload_id: session.id, owner: session.started_by })
        }
    }
}

/// The limits on starting uploads, from the canister's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadPolicy {
    pub max_per_maintainer: u32,
    /// Sessions started longer ago are dropped when the next upload starts.
    pub ttl_ns: u64,
}

impl From<&Config> for UploadPolicy {
    fn from(c: &Config) -> Self {
        UploadPolicy { max_per_maintainer: c.max_uploads_per_maintainer, ttl_ns: c.upload_ttl_ns }
    }
}

pub struct Registry<M: Memory> {
    models: StableBTreeMap<VersionKey, ModelInfo, Mem<M>>,
    active: StableBTreeMap<String, Activation, Mem<M>>,
    uploads: StableBTreeMap<u64, UploadSession, Mem<M>>,
    /// Where each upload stands, by upload id.
    progress: StableBTreeMap<u64, UploadProgress, Mem<M>>,
    /// The declared sha256 of each chunk received, by (upload id, chunk index).
    chunk_hashes: StableBTreeMap<(u64, u32), [u8; 32], Mem<M>>,
    lineage: StableBTreeMap<String, Lineage, Mem<M>>,
    /// The blob memories, indexed by `blob - BLOBS.start()`.
    blobs: Vec<Mem<M>>,
    /// What `serving` answered, by (name, version asked): every inference asks, and reading it
    /// from the stable maps decodes three or four candid records (most of a small model's
    /// fixed cost per call in the `classify/*/batch_1` benchmarks). Emptied by every change to
    /// versions, activations or enabled versions; at most [`SERVING_MEMO_ENTRIES`].
    serving_memo: RefCell<BTreeMap<(String, Option<u32>), ModelInfo>>,
}

const SERVING_MEMO_ENTRIES: usize = 32;

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
        let mut registry = Registry {
            models: StableBTreeMap::init(layout.memory(stable::MODELS)),
            active: StableBTreeMap::init(layout.memory(stable::ACTIVE)),
            uploads: StableBTreeMap::init(layout.memory(stable::UPLOADS)),
            progress: StableBTreeMap::init(layout.memory(stable::UPLOAD_PROGRESS)),
            chunk_hashes: StableBTreeMap::init(layout.memory(stable::CHUNK_HASHES)),
            lineage: StableBTreeMap::init(layout.memory(stable::LINEAGE)),
            blobs: stable::BLOBS.map(|id| layout.memory(MemoryId::new(id))).collect(),
            serving_memo: RefCell::default(),
        };
        registry.migrate_sessions();
        registry.check_blobs();
        registry
    }

    /// Layout 7 took memories 249..=254 from the blobs for the audit log: a memory whose
    /// versions or uploads still hold one cannot open under this code (the upgrade rolls back).
    fn check_blobs(&self) {
        let taken = self.models.iter().map(|e| e.value().blob).chain(self.progress.iter().map(|e| e.value().blob));
        for blob in taken {
            assert!(
                stable::BLOBS.contains(&(blob as u8)) && blob <= u8::MAX as u64,
                "model memory {blob} is now the audit log's: delete versions or abort uploads under the old code first"
            );
        }
    }

    /// Sessions stored by layout 3 or older keep their chunk hashes inside: moves them to the
    /// progress record and the chunk-hash map. Runs once (in the first post_upgrade of this
    /// code); a session already moved has a progress record and is skipped.
    fn migrate_sessions(&mut self) {
        let old: Vec<UploadSession> =
            self.uploads.iter().filter(|e| !self.progress.contains_key(e.key())).map(|e| e.value()).collect();
        for mut session in old {
            let mut progress = progress_of(&session);
            for (index, hash) in session.received.iter().enumerate() {
                if let Some(hash) = hash.as_deref().and_then(|h| <[u8; 32]>::try_from(h).ok()) {
                    progress.set(index as u32, true);
                    self.chunk_hashes.insert((session.id, index as u32), hash);
                }
            }
            self.progress.insert(session.id, progress);
            session.received = Vec::new();
            self.uploads.insert(session.id, session);
        }
    }

    fn blob(&self, blob: u64) -> &Mem<M> {
        &self.blobs[(blob - *stable::BLOBS.start() as u64) as usize]
    }

    /// A blob memory no model or upload uses.
    fn free_blob(&self) -> Result<u64, RegistryError> {
        let used: std::collections::BTreeSet<u64> =
            self.models.iter().map(|e| e.value().blob).chain(self.progress.iter().map(|e| e.value().blob)).collect();
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
        policy: UploadPolicy,
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
        for input in request.inputs.iter().flatten() {
            input.check_declaration().map_err(RegistryError::InvalidRequest)?;
        }
        if let Some(text) = &request.text {
            if text.tokenizer_bytes == 0 || text.tokenizer_bytes >= request.size {
                return invalid(format!(
                    "tokenizer_bytes is {}: the tokenizer is the file's tail, after a model of at least one byte",
                    text.tokenizer_bytes
                ));
            }
            if text.tokenizer_sha256.len() != 32 {
                return invalid("tokenizer_sha256 must be 32 bytes".into());
            }
        }
        let chunk_count = request.size.div_ceil(request.chunk_size as u64);
        if chunk_count > MAX_CHUNKS as u64 {
            return Err(RegistryError::TooManyChunks { chunk_count, max: MAX_CHUNKS });
        }
        let chunk_count = chunk_count as u32;
        self.drop_expired_uploads(now_ns, policy.ttl_ns);
        let held = self.progress.iter().filter(|e| e.value().started_by == caller).count();
        if held >= policy.max_per_maintainer as usize {
            return Err(RegistryError::UploadQuotaExceeded { limit: policy.max_per_maintainer });
        }
        let blob = self.free_blob()?;
        let id = layout.next_id(|h| &mut h.next_upload);
        let session = UploadSession {
            id,
            blob,
            request,
            chunk_count,
            received: Vec::new(),
            started_by: caller,
            started_at_ns: now_ns,
        };
        self.progress.insert(id, progress_of(&session));
        self.uploads.insert(id, session);
        Ok(UploadTicket { upload_id: id, chunk_count })
    }

    /// Drops the sessions started `ttl_ns` or longer ago, freeing their slots. Run when an
    /// upload starts, the only time a slot is wanted (at most one scan of 239 sessions).
    fn drop_expired_uploads(&mut self, now_ns: u64, ttl_ns: u64) {
        let expired: Vec<u64> = self
            .progress
            .iter()
            .filter(|e| now_ns.saturating_sub(e.value().started_at_ns) >= ttl_ns)
            .map(|e| *e.key())
            .collect();
        for id in expired {
            self.forget_upload(id);
        }
    }

    /// Removes an upload's records (its blob memory is free again).
    fn forget_upload(&mut self, upload_id: u64) {
        let hashed: Vec<(u64, u32)> =
            self.chunk_hashes.range((upload_id, 0)..=(upload_id, u32::MAX)).map(|e| *e.key()).collect();
        for key in hashed {
            self.chunk_hashes.remove(&key);
        }
        self.progress.remove(&upload_id);
        self.uploads.remove(&upload_id);
    }

    /// Where the upload stands, if `actor` may change it.
    fn owned_progress(&self, upload_id: u64, actor: Actor) -> Result<UploadProgress, RegistryError> {
        let progress = self.progress.get(&upload_id).ok_or(RegistryError::UnknownUpload(upload_id))?;
        actor.may_change(&progress)?;
        Ok(progress)
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
        actor: Actor,
    ) -> Result<UploadStatus, RegistryError> {
        let mut progress = self.owned_progress(upload_id, actor)?;
        if index >= progress.chunk_count {
            return Err(RegistryError::ChunkIndexOutOfRange { index, chunk_count: progress.chunk_count });
        }
        if bytes.len() as u64 > MAX_CHUNK_BYTES {
            return Err(RegistryError::ChunkTooLarge { size: bytes.len() as u64, max: MAX_CHUNK_BYTES });
        }
        let expected = progress.chunk_len(index);
        if bytes.len() as u64 != expected {
            return Err(RegistryError::ChunkWrongSize { index, expected, got: bytes.len() as u64 });
        }
        let Ok(sha256) = <[u8; 32]>::try_from(sha256.as_slice()) else {
            return Err(RegistryError::ChunkHashMismatch { index });
        };
        if progress.has(index) {
            return match self.chunk_hashes.get(&(upload_id, index)) {
                Some(existing) if existing == sha256 => Ok(progress.status()),
                _ => Err(RegistryError::ConflictingChunk { index }),
            };
        }
        let memory = self.blob(progress.blob);
        let offset = progress.offset(index);
        let needed_pages = (offset + bytes.len() as u64).div_ceil(crate::stable::WASM_PAGE);
        if memory.size() < needed_pages && memory.grow(needed_pages - memory.size()) < 0 {
            return Err(RegistryError::OutOfStableMemory);
        }
        memory.write(offset, &bytes);
        progress.set(index, true);
        self.chunk_hashes.insert((upload_id, index), sha256);
        self.progress.insert(upload_id, progress.clone());
        Ok(progress.status())
    }

    /// An upload's status, for its owner or an admin.
    pub fn upload_status(&self, upload_id: u64, actor: Actor) -> Result<UploadStatus, RegistryError> {
        self.owned_progress(upload_id, actor).map(|p| p.status())
    }

    /// The unfinished uploads `actor` may change: its own (at most its quota), or every one for
    /// an admin (at most one per model slot), each in a few dozen bytes.
    pub fn uploads(&self, actor: Actor) -> Vec<UploadSummary> {
        let mine = self.progress.iter().map(|e| e.value()).filter(|p| actor.may_change(p).is_ok());
        mine.map(|p| p.status().into()).collect()
    }

    /// Abandons an upload; its blob memory becomes free for the next one.
    pub fn abort_upload(&mut self, upload_id: u64, actor: Actor) -> Result<(), RegistryError> {
        self.owned_progress(upload_id, actor)?;
        self.forget_upload(upload_id);
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
    ///
    /// Finishing an upload that already finished returns the version it became (while that
    /// version exists), so a maintainer whose reply was lost can simply finish again.
    pub fn finish_upload(&mut self, upload_id: u64, actor: Actor) -> Result<ModelInfo, RegistryError> {
        self.serving_changes();
        let progress = match self.owned_progress(upload_id, actor) {
            Err(RegistryError::UnknownUpload(id)) => {
                return self.finished_from(id).ok_or(RegistryError::UnknownUpload(id));
            }
            other => other?,
        };
        let missing = progress.missing();
        if !missing.is_empty() {
            return Err(RegistryError::ChunksMissing { missing });
        }
        let session = self.uploads.get(&upload_id).ok_or(RegistryError::UnknownUpload(upload_id))?;
        let bytes = self.read_blob(session.blob, session.request.size);
        let actual = Sha256::digest(&bytes).to_vec();
        if actual != session.request.sha256 {
            return Err(self.drop_corrupt_chunks(progress, actual));
        }
        let model_len = session.request.size - session.request.text.as_ref().map_or(0, |t| t.tokenizer_bytes);
        let (model_bytes, tokenizer) = bytes.split_at(model_len as usize);
        let inspection = model::inspect(model_bytes).map_err(RegistryError::InvalidModel)?;
        if !inspection.unsupported.is_empty() {
            return Err(RegistryError::UnsupportedOperators(inspection.unsupported));
        }
        refuse_what_cannot_serve(&inspection)?;
        let request = &session.request;
        let inputs = match &request.inputs {
            // A declaration the model contradicts can never finish: the upload is dropped, so
            // that a corrected one starts afresh instead of resuming this one.
            Some(declared) => declared_inputs(declared, &inspection.inputs).inspect_err(|_| {
                self.forget_upload(upload_id);
            })?,
            None => inspection.inputs,
        };
        if let Some(i) = inputs.iter().find(|i| i.dtype == DType::Other) {
            return Err(RegistryError::InvalidModel(format!(
                "input \"{}\" has an element type no call can send (strings, sequences or maps)",
                i.name
            )));
        }
        let mut vocabulary = None;
        if let Some(text) = &request.text {
            if Sha256::digest(tokenizer).as_slice() != text.tokenizer_sha256 {
                // As a contradicted input declaration: the upload can never finish.
                self.forget_upload(upload_id);
                return Err(RegistryError::InvalidRequest(
                    "the file's tail is not the tokenizer declared (its sha256 differs): check tokenizer_bytes".into(),
                ));
            }
            vocabulary = Some(text::check_bundle(text, &inputs, tokenizer).map_err(RegistryError::InvalidModel)?);
        }
        let labels = if !request.labels.is_empty() {
            request.labels.clone()
        } else {
            Some(labels_from_metadata(&inspection.metadata))
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| inspection.class_labels.clone())
        };
        let mut lineage = self.lineage_of(&request.name);
        let version = lineage.last_version + 1;
        lineage.last_version = version;
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
            upload_id: Some(upload_id),
            text: request.text.clone(),
            vocabulary,
            plan_value_inputs: Some(inspection.plan_value_inputs.iter().map(|&ix| ix as u32).collect()),
        };
        self.lineage.insert(info.name.clone(), lineage);
        self.models.insert(VersionKey::new(&info.name, version), info.clone());
        self.forget_upload(upload_id);
        Ok(info)
    }

    /// After a whole-file mismatch: finds the chunks whose bytes differ from their declared hash
    /// and drops them, so resending them repairs the upload. With none corrupt, the file is
    /// simply not the one declared.
    fn drop_corrupt_chunks(&mut self, mut progress: UploadProgress, actual: Vec<u8>) -> RegistryError {
        let mut indices = Vec::new();
        for index in 0..progress.chunk_count {
            let mut bytes = vec![0; progress.chunk_len(index) as usize];
            self.blob(progress.blob).read(progress.offset(index), &mut bytes);
            let declared = self.chunk_hashes.get(&(progress.id, index));
            if declared.as_ref().map(|h| h.as_slice()) != Some(Sha256::digest(&bytes).as_slice()) {
                indices.push(index);
                progress.set(index, false);
                self.chunk_hashes.remove(&(progress.id, index));
            }
        }
        if indices.is_empty() {
            return RegistryError::ModelHashMismatch { declared: progress.sha256.to_vec(), actual };
        }
        self.progress.insert(progress.id, progress);
        RegistryError::CorruptChunks { indices }
    }

    /// The version a finished upload became, if it still exists.
    fn finished_from(&self, upload_id: u64) -> Option<ModelInfo> {
        self.models.iter().map(|e| e.value()).find(|info| info.upload_id == Some(upload_id))
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

    /// Every version of one name, in version order.
    pub fn versions_of(&self, name: &str) -> Vec<ModelInfo> {
        self.models.range(VersionKey::first(name)..=VersionKey::last(name)).map(|e| e.value()).collect()
    }

    pub fn versions(&self) -> Vec<ModelInfo> {
        self.models.iter().map(|e| e.value()).collect()
    }

    /// Up to `limit` versions after `after`, in name and version order.
    pub fn page(&self, after: Option<&ModelCursor>, limit: usize) -> ModelPage {
        let mut models: Vec<ModelInfo> = match after {
            Some(c) => {
                let start = VersionKey::new(&c.name, c.version);
                self.models
                    .range(start.clone()..)
                    .filter(|e| *e.key() != start)
                    .take(limit + 1)
                    .map(|e| e.value())
                    .collect()
            }
            None => self.models.iter().take(limit + 1).map(|e| e.value()).collect(),
        };
        let more = models.len() > limit;
        models.truncate(limit);
        let next =
            if more { models.last().map(|m| ModelCursor { name: m.name.clone(), version: m.version }) } else { None };
        ModelPage { models, next }
    }

    /// The record of a version that may serve: the active one (when `version` is absent or names
    /// it) or one a maintainer enabled.
    pub fn serving(&self, name: &str, version: Option<u32>) -> Result<ModelInfo, InferenceError> {
        let key = (name.to_string(), version);
        if let Some(info) = self.serving_memo.borrow().get(&key) {
            return Ok(info.clone());
        }
        let info = self.serving_now(name, version)?;
        let mut memo = self.serving_memo.borrow_mut();
        if memo.len() >= SERVING_MEMO_ENTRIES {
            memo.clear();
        }
        memo.insert(key, info.clone());
        Ok(info)
    }

    /// Which version serves, read from the stable maps (what [`Registry::serving`] remembers).
    pub fn serving_now(&self, name: &str, version: Option<u32>) -> Result<ModelInfo, InferenceError> {
        let info = self.info(name, version)?;
        let active = self.active_version(name) == Some(info.version);
        let enabled = self.lineage.get(&name.to_string()).is_some_and(|l| l.enabled.contains(&info.version));
        if active || enabled {
            Ok(info)
        } else {
            Err(InferenceError::VersionNotServing { name: name.to_string(), version: info.version })
        }
    }

    /// Lets a version serve beside the active one (or stops it); the caller has checked that it
    /// builds.
    pub fn set_enabled(&mut self, name: &str, version: u32, enabled: bool) -> Result<(), RegistryError> {
        self.serving_changes();
        self.info(name, Some(version))?;
        let mut lineage = self.lineage_of(name);
        lineage.enabled.retain(|v| *v != version);
        if enabled {
            lineage.enabled.push(version);
            lineage.enabled.sort_unstable();
        }
        self.lineage.insert(name.to_string(), lineage);
        Ok(())
    }

    /// Forgets what `serving` answered: called first by every method that changes versions,
    /// activations or enabled versions.
    fn serving_changes(&mut self) {
        self.serving_memo.get_mut().clear();
    }

    /// A name's lineage, its highest number at least the highest existing version: a layout-1
    /// registry has versions but no lineage until the name next changes.
    fn lineage_of(&self, name: &str) -> Lineage {
        let mut lineage = self.lineage.get(&name.to_string()).unwrap_or_default();
        lineage.last_version = lineage.last_version.max(self.latest_version(name).unwrap_or(0));
        lineage
    }

    /// The versions enabled besides the active one.
    pub fn enabled_versions(&self, name: &str) -> Vec<u32> {
        self.lineage.get(&name.to_string()).map(|l| l.enabled).unwrap_or_default()
    }

    /// Every model's active version with its sha256, in name order (what the canister
    /// certifies).
    pub fn active_models(&self) -> Vec<inference_api::ActiveModel> {
        self.active
            .iter()
            .filter_map(|e| {
                let (name, version) = (e.key().clone(), e.value().current);
                let sha256 = self.models.get(&VersionKey::new(&name, version))?.sha256;
                Some(inference_api::ActiveModel { name, version, sha256 })
            })
            .collect()
    }

    pub fn active_version(&self, name: &str) -> Option<u32> {
        self.active.get(&name.to_string()).map(|a| a.current)
    }

    /// The ONNX model's bytes (without a text model's tokenizer).
    pub fn bytes(&self, info: &ModelInfo) -> Vec<u8> {
        self.read_blob(info.blob, info.model_bytes())
    }

    /// A text model's tokenizer file.
    pub fn tokenizer_bytes(&self, info: &ModelInfo) -> Option<Vec<u8>> {
        let text = info.text.as_ref()?;
        Some(self.bytes_range(info, info.model_bytes(), text.tokenizer_bytes))
    }

    /// Bytes `offset..offset + len` of a version's file (cut at its end).
    pub fn bytes_range(&self, info: &ModelInfo, offset: u64, len: u64) -> Vec<u8> {
        let len = len.min(info.size.saturating_sub(offset));
        let mut bytes = vec![0; len as usize];
        self.blob(info.blob).read(offset, &mut bytes);
        bytes
    }

    /// Makes `version` the one that serves `name`.
    pub fn activate(&mut self, name: &str, version: u32) -> Result<(), RegistryError> {
        self.serving_changes();
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
        self.serving_changes();
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
        self.serving_changes();
        self.info(name, Some(version))?;
        if self.active_version(name) == Some(version) {
            return Err(RegistryError::VersionActive { name: name.to_string(), version });
        }
        if let Some(mut a) = self.active.get(&name.to_string()) {
            a.previous.retain(|v| *v != version);
            self.active.insert(name.to_string(), a);
        }
        // Keep the highest number ever given (read before the record goes), so it is not given
        // again.
        let mut lineage = self.lineage_of(name);
        lineage.enabled.retain(|v| *v != version);
        self.lineage.insert(name.to_string(), lineage);
        // Its blob memory is free again once the record is gone.
        self.models.remove(&VersionKey::new(name, version));
        Ok(())
    }
}

/// What passes inspection but would trap at every inference, refused with the reason.
fn refuse_what_cannot_serve(inspection: &model::Inspection) -> Result<(), RegistryError> {
    if inspection.outputs.is_empty() {
        return Err(RegistryError::InvalidModel("the model has no outputs".into()));
    }
    if inspection.inputs.is_empty() {
        return Err(RegistryError::InvalidModel("the model takes no input: its outputs are constants".into()));
    }
    let random: Vec<&str> =
        RANDOM_OPERATORS.into_iter().filter(|op| inspection.operators.iter().any(|o| o == op)).collect();
    if !random.is_empty() {
        return Err(RegistryError::InvalidModel(format!(
            "{} draw random numbers, and inference here is deterministic with no random source",
            random.join(", ")
        )));
    }
    Ok(())
}

/// A maintainer's declaration of the inputs, checked against the model's own: the same inputs
/// in the same order and element types, each dimension the model fixes kept (a symbolic one may
/// be fixed or bounded), and every `max_shape` sound.
fn declared_inputs(declared: &[TensorSpec], model: &[TensorSpec]) -> Result<Vec<TensorSpec>, RegistryError> {
    let invalid = RegistryError::InvalidRequest;
    if declared.len() != model.len() {
        return Err(invalid(format!("the model has {} inputs, {} were declared", model.len(), declared.len())));
    }
    for (d, m) in declared.iter().zip(model) {
        if d.name != m.name || d.dtype != m.dtype {
            return Err(invalid(format!(
                "declared input \"{}\" ({}) is \"{}\" ({}) in the model",
                d.name, d.dtype, m.name, m.dtype
            )));
        }
        // Models without shape information declare none; then any declared shape is taken.
        let conflicting = !m.shape.is_empty()
            && (d.shape.len() != m.shape.len() || d.shape.iter().zip(&m.shape).any(|(&a, &b)| b >= 0 && a != b));
        if conflicting {
            return Err(invalid(format!(
                "declared input \"{}\" has shape {:?}; the model fixes {:?}",
                d.name, d.shape, m.shape
            )));
        }
        d.check_declaration().map_err(invalid)?;
    }
    Ok(declared.to_vec())
}

/// The progress record of a session as `upload_start` made it: nothing received.
fn progress_of(session: &UploadSession) -> UploadProgress {
    let sha256 = <[u8; 32]>::try_from(session.request.sha256.as_slice()).expect("checked at upload_start");
    UploadProgress::new(
        session.id,
        session.blob,
        session.request.size,
        session.request.chunk_size,
        session.chunk_count,
        session.started_by,
        session.started_at_ns,
        session.request.name.clone(),
        sha256,
    )
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
