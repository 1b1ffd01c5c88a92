//! The audit log: what each entry records, its canonical bytes and hash chain, the receipt an
//! agency gets with every answer, and the certified registry.
//!
//! An entry never holds an input or an output, only their sha256 ([`input_sha256`],
//! [`output_sha256`]). Its hash is the sha256 of its canonical bytes ([`AuditEntry::encode`]),
//! which begin with the previous entry's hash: changing, removing or reordering any entry
//! changes every hash after it, up to the head the canister certifies. The canister and every
//! verifier (`inference-cli audit --verify`, the typed client) share this one encoding.

use std::borrow::Cow;

use candid::{CandidType, Deserialize, Principal};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::{InputTensor, NotAuthorized, TensorData, Tokens};

/// A slice of numbers as little-endian bytes: borrowed where memory already holds them so
/// (hashing a 100 KiB image then costs the sha256 alone, not a copy element by element).
macro_rules! le {
    ($v:expr) => {
        if cfg!(target_endian = "little") {
            Cow::Borrowed(bytemuck::cast_slice(&$v[..]))
        } else {
            Cow::Owned($v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
        }
    };
}

/// The hash an entry's `prev_sha256` holds when no entry came before it.
pub const GENESIS: [u8; 32] = [0; 32];

/// Entries an `audit_log` page holds at most.
pub const AUDIT_PAGE_MAX: u32 = 500;

/// What an entry records.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum AuditEvent {
    /// An inference an allowed caller asked for, served or refused after its access was checked.
    Inference(InferenceRecord),
    /// A change to the registry, the roles or the settings.
    Change(ChangeRecord),
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct InferenceRecord {
    /// `classify`, `infer`, `classify_tokens`, `embed_tokens`, `submit` or `profile`.
    pub endpoint: String,
    /// The model as the request named it; its version and sha256 once resolved.
    pub model: String,
    pub version: Option<u32>,
    pub model_sha256: Option<Vec<u8>>,
    pub input_sha256: Vec<u8>,
    /// Absent when the inference produced no output.
    pub output_sha256: Option<Vec<u8>>,
    pub instructions: u64,
    pub messages: u32,
    /// `None` when the inference answered; the error's variant name otherwise.
    pub error: Option<String>,
}

#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeAction {
    UploadFinished,
    Activated,
    RolledBack,
    VersionEnabled,
    VersionDisabled,
    VersionDeleted,
    RoleGranted,
    RoleRevoked,
    ConfigSet,
    PoolSet,
    RetentionSet,
}

impl ChangeAction {
    pub const ALL: [ChangeAction; 11] = CHANGE_ACTIONS;

    /// The variant's name (`Activated`…), as exports write it.
    pub fn name(&self) -> String {
        format!("{self:?}")
    }

    pub fn from_name(name: &str) -> Option<ChangeAction> {
        CHANGE_ACTIONS.into_iter().find(|a| a.name() == name)
    }
}

const CHANGE_ACTIONS: [ChangeAction; 11] = [
    ChangeAction::UploadFinished,
    ChangeAction::Activated,
    ChangeAction::RolledBack,
    ChangeAction::VersionEnabled,
    ChangeAction::VersionDisabled,
    ChangeAction::VersionDeleted,
    ChangeAction::RoleGranted,
    ChangeAction::RoleRevoked,
    ChangeAction::ConfigSet,
    ChangeAction::PoolSet,
    ChangeAction::RetentionSet,
];

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ChangeRecord {
    pub action: ChangeAction,
    /// The model version concerned, when one is.
    pub model: Option<String>,
    pub version: Option<u32>,
    pub model_sha256: Option<Vec<u8>>,
    /// The principal a role change concerns, and which role (`maintainer`, `caller`, `front`,
    /// `auditor`).
    pub subject: Option<Principal>,
    pub role: Option<String>,
}

/// One entry of the log.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub index: u64,
    pub time_ns: u64,
    /// Whom the inference ran for, or who made the change.
    pub caller: Principal,
    /// The text front that called on `caller`'s behalf.
    pub via: Option<Principal>,
    pub event: AuditEvent,
    /// The previous entry's hash ([`GENESIS`] for the first entry ever).
    pub prev_sha256: Vec<u8>,
}

/// An entry with its hash, as `audit_log` returns it.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub entry: AuditEntry,
    pub sha256: Vec<u8>,
}

/// What an agency gets with every answer: which entry logged its inference, that entry's hash,
/// and the hashes the entry holds, so it can later prove which model answered what it sent.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub index: u64,
    pub entry_sha256: Vec<u8>,
    pub input_sha256: Vec<u8>,
    pub output_sha256: Vec<u8>,
}

/// Which entries `audit_log` returns: from index `from` on (the oldest kept when absent), those
/// matching every filter given, at most `limit` (at most [`AUDIT_PAGE_MAX`]).
#[derive(CandidType, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub from: Option<u64>,
    pub caller: Option<Principal>,
    pub model: Option<String>,
    pub since_ns: Option<u64>,
    pub until_ns: Option<u64>,
    pub limit: Option<u32>,
}

impl AuditQuery {
    /// Whether an entry passes the filters (`caller`, `model`, `since_ns`, `until_ns`; `from`
    /// and `limit` are the page's, not the entry's).
    pub fn selects(&self, entry: &AuditEntry) -> bool {
        let model = match &entry.event {
            AuditEvent::Inference(r) => Some(&r.model),
            AuditEvent::Change(c) => c.model.as_ref(),
        };
        self.caller.is_none_or(|c| c == entry.caller)
            && self.model.as_ref().is_none_or(|m| model == Some(m))
            && self.since_ns.is_none_or(|t| entry.time_ns >= t)
            && self.until_ns.is_none_or(|t| entry.time_ns <= t)
    }
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// Pass as `from` for the next page; absent when the log's end was reached.
    pub next: Option<u64>,
    /// The oldest index kept and the index the next entry will get.
    pub first_index: u64,
    pub next_index: u64,
}

/// How long entries are kept: the newest `max_entries`, none older than `max_age_ns` (either
/// absent: no limit of that kind). Older entries are dropped whole from the front.
#[derive(CandidType, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditRetention {
    pub max_entries: Option<u64>,
    pub max_age_ns: Option<u64>,
}

/// The log's head: the hash of its newest entry and the index after it; with `certificate` and
/// `witness` when read in a query that has them, which prove it is the subnet's.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AuditHead {
    pub next_index: u64,
    pub first_index: u64,
    pub head_sha256: Vec<u8>,
    pub retention: AuditRetention,
    /// Instructions and stable-memory bytes logging has taken since the canister was
    /// installed or last upgraded, and how many entries that covers.
    pub entries_logged: u64,
    pub logging_instructions: u64,
    pub stable_bytes: u64,
    pub certified: Option<Certified>,
}

/// The IC's certificate of this canister's certified data (CBOR), and a witness (a CBOR hash
/// tree) whose root hash is that data, revealing the leaves a reply rests on.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Certified {
    #[serde(with = "serde_bytes")]
    pub certificate: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub witness: Vec<u8>,
}

/// A model's active version as the certified tree holds it.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ActiveModel {
    pub name: String,
    pub version: u32,
    pub sha256: Vec<u8>,
}

/// Every model's active version, certified when read in a query that can be.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CertifiedModels {
    pub models: Vec<ActiveModel>,
    pub certified: Option<Certified>,
}

/// One model's active version (absent: none is active under that name), certified when read
/// in a query that can be.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CertifiedModel {
    pub model: Option<ActiveModel>,
    pub certified: Option<Certified>,
}

/// Errors of the audit endpoints.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Error)]
pub enum AuditError {
    #[error(transparent)]
    NotAuthorized(NotAuthorized),
    #[error("invalid audit request: {0}")]
    InvalidRequest(String),
}

/// The labels of the certified tree: `log` (its leaf: the audit log's head hash) and `models`
/// (one leaf per model name: [`model_leaf`]). The head's label and leaf are as short as they are
/// so that certifying a new head, at every entry, takes four sha256 blocks (the leaf, the
/// label, the fork), not eight: benchmarks/NOTES.md, Audit.
pub const CERTIFIED_AUDIT_HEAD: &[u8] = b"log";
pub const CERTIFIED_MODELS: &[u8] = b"models";

/// The certified leaf of a model's active version: the version (u32, little-endian), then its
/// sha256.
pub fn model_leaf(version: u32, sha256: &[u8]) -> Vec<u8> {
    [version.to_le_bytes().as_slice(), sha256].concat()
}

// ----- hashes of inputs and outputs -----

/// The sha256 of a tensor list: for each tensor its element type's name, its rank and
/// dimensions (u64, little-endian), its elements' byte length (u64, little-endian) and its
/// elements, little-endian (booleans as one byte, strings as their length, u32 little-endian,
/// then their UTF-8 bytes). Elements of [`SEGMENTED_FROM`] bytes or more are given by the sha256s
/// of their four segments instead ([`segments`]).
pub struct TensorDigest(Sha256);

/// From this many bytes a tensor's elements enter its digest as the sha256s of their four
/// segments, which the canister hashes in the four lanes of one vector (`sha256-lanes`: about a
/// third of scalar SHA-256's instructions a byte, benchmarks/NOTES.md). Below it, and so for
/// every record, text and token list of ordinary size, they enter as themselves. The length,
/// hashed first, says which form follows, so no tensor's digest stands for another's.
pub const SEGMENTED_FROM: usize = 16 * 1024;

/// The four segments of `elements` whose sha256s stand for them: three of a quarter of the
/// length rounded down to whole 64-byte blocks, then the rest. Each is a plain sha256, so
/// `split -b` and `sha256sum` recompute them.
pub fn segments(elements: &[u8]) -> [&[u8]; 4] {
    let quarter = elements.len() / 256 * 64;
    let (first, rest) = elements.split_at(quarter);
    let (second, rest) = rest.split_at(quarter);
    let (third, fourth) = rest.split_at(quarter);
    [first, second, third, fourth]
}

impl Default for TensorDigest {
    fn default() -> Self {
        TensorDigest(Sha256::new())
    }
}

impl TensorDigest {
    /// Adds one tensor, given its element type's name, shape and little-endian elements.
    pub fn add(&mut self, dtype: &str, shape: &[u64], elements_le: &[u8]) {
        put_str(&mut self.0, dtype);
        self.0.update((shape.len() as u32).to_le_bytes());
        for d in shape {
            self.0.update(d.to_le_bytes());
        }
        self.0.update((elements_le.len() as u64).to_le_bytes());
        if elements_le.len() < SEGMENTED_FROM {
            self.0.update(elements_le);
        } else {
            for digest in sha256_lanes::sha256x4(segments(elements_le)) {
                self.0.update(digest);
            }
        }
    }

    pub fn finish(self) -> Vec<u8> {
        self.0.finalize().to_vec()
    }
}

/// The sha256 a receipt gives for a request's input tensors (see [`TensorDigest`]).
pub fn input_sha256(inputs: &[InputTensor]) -> Vec<u8> {
    let mut digest = TensorDigest::default();
    for input in inputs {
        digest.add(&input.data.dtype().to_string(), &input.shape, &elements_le(&input.data));
    }
    digest.finish()
}

/// The sha256 a receipt gives for tokenized texts: each text's ids and type ids as `u32`
/// tensors of one dimension.
pub fn tokens_sha256(texts: &[Tokens]) -> Vec<u8> {
    let mut digest = TensorDigest::default();
    for text in texts {
        for ids in [&text.ids, &text.type_ids] {
            let bytes: Cow<'_, [u8]> = le!(ids);
            digest.add("u32", &[ids.len() as u64], &bytes);
        }
    }
    digest.finish()
}

/// The sha256 a receipt gives for output tensors, from [`crate::OutputTensor`]s as `infer`
/// returns them.
pub fn output_sha256(outputs: &[crate::OutputTensor]) -> Vec<u8> {
    let mut digest = TensorDigest::default();
    for output in outputs {
        digest.add(&output.data.dtype().to_string(), &output.shape, &elements_le(&output.data));
    }
    digest.finish()
}

/// A tensor's elements as little-endian bytes (borrowed, see `le!`; booleans as one byte each).
fn elements_le(data: &TensorData) -> Cow<'_, [u8]> {
    match data {
        // The same bytes as the `F32` form of the same values: both forms give one digest.
        TensorData::U8(v) | TensorData::F32Bytes(v) => Cow::Borrowed(&v[..]),
        TensorData::Bool(v) => Cow::Owned(v.iter().map(|&b| b as u8).collect()),
        TensorData::Text(v) => Cow::Owned(crate::text_le_bytes(v)),
        TensorData::F32(v) => le!(v),
        TensorData::I8(v) => le!(v),
        TensorData::F16(v) => le!(v),
        TensorData::F64(v) => le!(v),
        TensorData::I16(v) => le!(v),
        TensorData::U16(v) => le!(v),
        TensorData::I32(v) => le!(v),
        TensorData::U32(v) => le!(v),
        TensorData::I64(v) => le!(v),
        TensorData::U64(v) => le!(v),
    }
}

// ----- the canonical encoding -----

fn put_str(h: &mut impl Digest, s: &str) {
    h.update((s.len() as u32).to_le_bytes());
    h.update(s.as_bytes());
}

/// Writes the canonical fields: integers little-endian; strings and byte strings as a u32
/// length, then their bytes; principals as a u8 length, then their bytes; options as a 0 or 1
/// byte, then the value when 1.
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    fn principal(&mut self, p: &Principal) {
        self.u8(p.as_slice().len() as u8);
        self.0.extend_from_slice(p.as_slice());
    }
    fn opt<T>(&mut self, v: &Option<T>, mut put: impl FnMut(&mut Self, &T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                put(self, v);
            }
        }
    }
}

/// Why canonical bytes did not decode.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("not an audit entry's canonical bytes: {0}")]
pub struct DecodeError(&'static str);

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn str(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?).map_err(|_| DecodeError("a string is not UTF-8"))
    }
    fn principal(&mut self) -> Result<Principal, DecodeError> {
        let n = self.u8()? as usize;
        Principal::try_from_slice(self.take(n)?).map_err(|_| DecodeError("a principal is malformed"))
    }
    fn opt<T>(&mut self, mut get: impl FnMut(&mut Self) -> Result<T, DecodeError>) -> Result<Option<T>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => get(self).map(Some),
            _ => Err(DecodeError("an option tag is neither 0 nor 1")),
        }
    }
}

/// Where an entry's time sits in its canonical bytes (after the previous hash's length and
/// bytes, and the index): retention reads it without decoding the rest.
pub const TIME_OFFSET: usize = 4 + 32 + 8;

impl AuditEntry {
    /// The canonical bytes, which the entry's hash covers: the previous hash, index, time,
    /// caller, `via`, then the event (tag 0: inference, 1: change) and its fields in
    /// declaration order.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(256));
        w.bytes(&self.prev_sha256);
        w.u64(self.index);
        w.u64(self.time_ns);
        w.principal(&self.caller);
        w.opt(&self.via, |w, p| w.principal(p));
        match &self.event {
            AuditEvent::Inference(r) => {
                w.u8(0);
                w.str(&r.endpoint);
                w.str(&r.model);
                w.opt(&r.version, |w, v| w.u32(*v));
                w.opt(&r.model_sha256, |w, h| w.bytes(h));
                w.bytes(&r.input_sha256);
                w.opt(&r.output_sha256, |w, h| w.bytes(h));
                w.u64(r.instructions);
                w.u32(r.messages);
                w.opt(&r.error, |w, e| w.str(e));
            }
            AuditEvent::Change(c) => {
                w.u8(1);
                w.u8(CHANGE_ACTIONS.iter().position(|a| *a == c.action).expect("every action is listed") as u8);
                w.opt(&c.model, |w, m| w.str(m));
                w.opt(&c.version, |w, v| w.u32(*v));
                w.opt(&c.model_sha256, |w, h| w.bytes(h));
                w.opt(&c.subject, |w, p| w.principal(p));
                w.opt(&c.role, |w, r| w.str(r));
            }
        }
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Result<AuditEntry, DecodeError> {
        let mut r = Reader(bytes);
        let prev_sha256 = r.bytes()?;
        let index = r.u64()?;
        let time_ns = r.u64()?;
        let caller = r.principal()?;
        let via = r.opt(Reader::principal)?;
        let event = match r.u8()? {
            0 => AuditEvent::Inference(InferenceRecord {
                endpoint: r.str()?,
                model: r.str()?,
                version: r.opt(Reader::u32)?,
                model_sha256: r.opt(Reader::bytes)?,
                input_sha256: r.bytes()?,
                output_sha256: r.opt(Reader::bytes)?,
                instructions: r.u64()?,
                messages: r.u32()?,
                error: r.opt(Reader::str)?,
            }),
            1 => {
                let action = *CHANGE_ACTIONS.get(r.u8()? as usize).ok_or(DecodeError("an unknown change action"))?;
                AuditEvent::Change(ChangeRecord {
                    action,
                    model: r.opt(Reader::str)?,
                    version: r.opt(Reader::u32)?,
                    model_sha256: r.opt(Reader::bytes)?,
                    subject: r.opt(Reader::principal)?,
                    role: r.opt(Reader::str)?,
                })
            }
            _ => return Err(DecodeError("an unknown event tag")),
        };
        if !r.0.is_empty() {
            return Err(DecodeError("bytes after the entry"));
        }
        Ok(AuditEntry { index, time_ns, caller, via, event, prev_sha256 })
    }

    /// The entry's hash: the sha256 of its canonical bytes.
    pub fn sha256(&self) -> Vec<u8> {
        Sha256::digest(self.encode()).to_vec()
    }
}

/// Why a run of records does not verify.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ChainError {
    #[error("entry {index}: its hash is not the sha256 of its contents (it was changed)")]
    WrongHash { index: u64 },
    #[error("entry {index}: it does not follow entry {previous} (an entry is missing or out of order)")]
    Gap { index: u64, previous: u64 },
    #[error("entry {index}: its previous hash is not entry {previous}'s hash")]
    Broken { index: u64, previous: u64 },
    #[error("the last entry's hash is not the head's")]
    NotTheHead,
}

/// Checks a contiguous run of records: each hash is its entry's, each entry follows the one
/// before it by index and by hash. Answers the last hash (`None` for no records).
pub fn verify_chain<'a>(records: impl IntoIterator<Item = &'a AuditRecord>) -> Result<Option<Vec<u8>>, ChainError> {
    let mut previous: Option<&AuditRecord> = None;
    for record in records {
        let entry = &record.entry;
        if entry.sha256() != record.sha256 {
            return Err(ChainError::WrongHash { index: entry.index });
        }
        if let Some(p) = previous {
            if entry.index != p.entry.index + 1 {
                return Err(ChainError::Gap { index: entry.index, previous: p.entry.index });
            }
            if entry.prev_sha256 != p.sha256 {
                return Err(ChainError::Broken { index: entry.index, previous: p.entry.index });
            }
        } else if entry.index == 0 && entry.prev_sha256 != GENESIS {
            return Err(ChainError::Broken { index: 0, previous: 0 });
        }
        previous = Some(record);
    }
    Ok(previous.map(|r| r.sha256.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inference(index: u64, prev: Vec<u8>) -> AuditEntry {
        AuditEntry {
            index,
            time_ns: 1_700_000_000_000_000_000 + index,
            caller: Principal::from_slice(&[1, 2, 3]),
            via: Some(Principal::from_slice(&[9])),
            event: AuditEvent::Inference(InferenceRecord {
                endpoint: "classify".into(),
                model: "digits".into(),
                version: Some(3),
                model_sha256: Some(vec![7; 32]),
                input_sha256: vec![1; 32],
                output_sha256: None,
                instructions: 12345,
                messages: 2,
                error: Some("InputShape".into()),
            }),
            prev_sha256: prev,
        }
    }

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_vec();
        (0..n)
            .map(|i| {
                let entry = inference(i, prev.clone());
                let sha256 = entry.sha256();
                prev = sha256.clone();
                AuditRecord { entry, sha256 }
            })
            .collect()
    }

    #[test]
    fn entries_decode_to_themselves() {
        let entry = inference(5, vec![4; 32]);
        assert_eq!(AuditEntry::decode(&entry.encode()), Ok(entry));
        for action in CHANGE_ACTIONS {
            let change = AuditEntry {
                event: AuditEvent::Change(ChangeRecord {
                    action,
                    model: Some("m".into()),
                    version: None,
                    model_sha256: None,
                    subject: Some(Principal::anonymous()),
                    role: Some("auditor".into()),
                }),
                ..inference(1, GENESIS.to_vec())
            };
            assert_eq!(AuditEntry::decode(&change.encode()), Ok(change));
        }
        let bytes = entry_bytes_with_trailer();
        assert!(AuditEntry::decode(&bytes).is_err());
    }

    fn entry_bytes_with_trailer() -> Vec<u8> {
        let mut bytes = inference(0, GENESIS.to_vec()).encode();
        bytes.push(0);
        bytes
    }

    #[test]
    fn the_time_sits_at_its_offset() {
        let entry = inference(5, vec![4; 32]);
        let bytes = entry.encode();
        assert_eq!(bytes[TIME_OFFSET..TIME_OFFSET + 8], entry.time_ns.to_le_bytes());
    }

    #[test]
    fn a_chain_verifies_and_any_change_breaks_it() {
        let records = chain(4);
        assert_eq!(verify_chain(&records), Ok(Some(records[3].sha256.clone())));
        assert_eq!(verify_chain(&records[1..]), Ok(Some(records[3].sha256.clone())));

        let mut changed = records.clone();
        changed[1].entry.time_ns += 1;
        assert_eq!(verify_chain(&changed), Err(ChainError::WrongHash { index: 1 }));

        let mut rehashed = changed.clone();
        rehashed[1].sha256 = rehashed[1].entry.sha256();
        assert_eq!(verify_chain(&rehashed), Err(ChainError::Broken { index: 2, previous: 1 }));

        let missing = [records[0].clone(), records[2].clone()];
        assert_eq!(verify_chain(&missing), Err(ChainError::Gap { index: 2, previous: 0 }));
    }

    #[test]
    fn elements_hash_as_little_endian_bytes() {
        let data = TensorData::I32(vec![1, -2]);
        assert_eq!(elements_le(&data).as_ref(), [1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]);
        assert_eq!(elements_le(&TensorData::Bool(vec![true, false])).as_ref(), [1, 0]);
    }

    #[test]
    fn input_hashes_see_types_shapes_and_values() {
        let t = |shape: Vec<u64>, data| InputTensor { shape, data };
        let a = input_sha256(&[t(vec![2], TensorData::F32(vec![1.0, 2.0]))]);
        assert_ne!(a, input_sha256(&[t(vec![1, 2], TensorData::F32(vec![1.0, 2.0]))]));
        assert_ne!(a, input_sha256(&[t(vec![2], TensorData::I32(vec![1, 2]))]));
        assert_ne!(a, input_sha256(&[t(vec![2], TensorData::F32(vec![1.0, 2.5]))]));
        assert_eq!(a, input_sha256(&[t(vec![2], TensorData::F32(vec![1.0, 2.0]))]));
        // Sent as bytes, the same tensor has the same digest.
        assert_eq!(a, input_sha256(&[t(vec![2], TensorData::f32_bytes(&[1.0, 2.0]))]));
        assert_ne!(a, input_sha256(&[t(vec![2], TensorData::f32_bytes(&[1.0, 2.5]))]));
    }

    #[test]
    fn large_elements_enter_as_the_sha256s_of_their_four_segments() {
        let bytes: Vec<u8> = (0..SEGMENTED_FROM as u32 + 300).map(|i| (i * 7 + i / 251) as u8).collect();
        let tensor =
            |bytes: &[u8]| InputTensor { shape: vec![bytes.len() as u64], data: TensorData::U8(bytes.to_vec().into()) };
        let [first, second, third, fourth] = segments(&bytes);
        assert_eq!([first.len(), second.len(), third.len()], [4160; 3]);
        assert_eq!(fourth.len(), bytes.len() - 3 * 4160);
        // The construction spelled out with plain sha256s.
        let mut spelled = Sha256::new();
        put_str(&mut spelled, "u8");
        spelled.update(1u32.to_le_bytes());
        spelled.update((bytes.len() as u64).to_le_bytes());
        spelled.update((bytes.len() as u64).to_le_bytes());
        for segment in [first, second, third, fourth] {
            spelled.update(Sha256::digest(segment));
        }
        let digest = input_sha256(&[tensor(&bytes)]);
        assert_eq!(digest, spelled.finalize().to_vec());
        // Every segment counts, and so does the form: one byte less is hashed as itself.
        for at in [0, 4160, 2 * 4160 + 5, bytes.len() - 1] {
            let mut changed = bytes.clone();
            changed[at] ^= 1;
            assert_ne!(input_sha256(&[tensor(&changed)]), digest, "byte {at}");
        }
        let short = &bytes[..SEGMENTED_FROM - 1];
        let mut plain = Sha256::new();
        put_str(&mut plain, "u8");
        plain.update(1u32.to_le_bytes());
        plain.update((short.len() as u64).to_le_bytes());
        plain.update((short.len() as u64).to_le_bytes());
        plain.update(short);
        assert_eq!(input_sha256(&[tensor(short)]), plain.finalize().to_vec());
    }
}
