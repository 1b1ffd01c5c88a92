//! The stable-memory layout: one `MemoryManager`, its virtual memories named here and nowhere
//! else, and a header carrying a magic and a layout version so a future upgrade can migrate.

use std::borrow::Cow;

use candid::{CandidType, Deserialize};
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{Memory, StableCell, Storable};

pub const HEADER: MemoryId = MemoryId::new(0);
pub const MODELS: MemoryId = MemoryId::new(1);
pub const ACTIVE: MemoryId = MemoryId::new(2);
pub const UPLOADS: MemoryId = MemoryId::new(3);
/// Polling jobs of the inference canister, with their results until they expire.
pub const JOBS: MemoryId = MemoryId::new(4);
pub const MAINTAINERS: MemoryId = MemoryId::new(5);
pub const CALLERS: MemoryId = MemoryId::new(6);
pub const CONFIG: MemoryId = MemoryId::new(7);
/// The counter of polling job ids (never reused, even after their records expire).
pub const JOB_IDS: MemoryId = MemoryId::new(8);
/// Finished polling jobs' results, apart from their records so that scanning the records (expiry)
/// never decodes a result.
pub const JOB_RESULTS: MemoryId = MemoryId::new(9);
/// Per model name: the highest version number ever given and the versions enabled to serve.
pub const LINEAGE: MemoryId = MemoryId::new(10);
/// Per caller: the instructions its inferences used in its current quota window.
pub const QUOTA_USAGE: MemoryId = MemoryId::new(11);
/// Where each upload stands (a fixed-layout record, rewritten at every chunk).
pub const UPLOAD_PROGRESS: MemoryId = MemoryId::new(12);
/// The declared sha256 of every chunk received, by (upload id, chunk index).
pub const CHUNK_HASHES: MemoryId = MemoryId::new(13);
/// The other members of this canister's pool.
pub const PEERS: MemoryId = MemoryId::new(14);
/// The text front canisters.
pub const FRONTS: MemoryId = MemoryId::new(15);
/// The auditors (layout 7 took this and the next five from the blob memories' end).
pub const AUDITORS: MemoryId = MemoryId::new(249);
/// Where the audit log stands: its first kept index, its segments, its retention.
pub const AUDIT_STATE: MemoryId = MemoryId::new(250);
/// The audit log's two segments ([`crate::audit`]), each a `StableLog`'s index and data.
pub const AUDIT_INDEX_A: MemoryId = MemoryId::new(251);
pub const AUDIT_DATA_A: MemoryId = MemoryId::new(252);
pub const AUDIT_INDEX_B: MemoryId = MemoryId::new(253);
pub const AUDIT_DATA_B: MemoryId = MemoryId::new(254);
/// Each model's (or upload's) bytes get a virtual memory of their own, written once at
/// `chunk index × chunk size`: one copy per byte, no B-tree node rewrites. ic-stable-structures
/// 0.7 cannot give a virtual memory's buckets back, so a deleted model's memory is reused by
/// the next upload instead.
pub const BLOBS: std::ops::RangeInclusive<u8> = 16..=248;

/// Bytes in a (wasm and stable-memory) page.
pub const WASM_PAGE: u64 = 64 * 1024;

pub const MAGIC: [u8; 4] = *b"ONNX";
/// 2 added `LINEAGE` (empty until a name next changes: the version counter falls back to the
/// highest existing version) and `ModelInfo::upload_id` (an option, absent in older records), so
/// opening a layout-1 memory needs no rewrite beyond the header. 3 added `QUOTA_USAGE` (empty in
/// older memories: every caller starts a new window). 4 moved an upload's chunk hashes out of its
/// session record into `UPLOAD_PROGRESS` and `CHUNK_HASHES` (moved when the registry opens). 5
/// added `PEERS` (empty in older memories: no pool). 6 added `FRONTS` (empty in older memories:
/// no text front) and `ModelInfo::vocabulary` (an option: a text version recorded before it has
/// none, and the token endpoints refuse it until it is uploaded again). 7 added the audit log
/// and the auditors in memories 249..=254, taken from the blob memories (empty in older
/// memories: the log starts at the upgrade; opening refuses a memory whose versions or uploads
/// hold one of those blobs, which needs 233 of them).
pub const LAYOUT_VERSION: u32 = 7;

use inference_api::candid_storable;

/// The first thing in stable memory: what layout the rest is in, and id counters.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub magic: [u8; 4],
    pub layout_version: u32,
    pub next_blob: u64,
    pub next_upload: u64,
}

impl Default for Header {
    fn default() -> Self {
        Header { magic: MAGIC, layout_version: LAYOUT_VERSION, next_blob: 1, next_upload: 1 }
    }
}
candid_storable!(Header);

pub type Mem<M> = VirtualMemory<M>;

/// Owns the memory manager; components take their memories from it.
pub struct StableLayout<M: Memory> {
    manager: MemoryManager<M>,
    pub header: StableCell<Header, Mem<M>>,
}

impl<M: Memory> StableLayout<M> {
    /// Opens the layout in `memory`, initialising it when empty. Panics on a layout this code
    /// does not know (an upgrade to older code), which rolls the upgrade back.
    pub fn init(memory: M) -> Self {
        let manager = MemoryManager::init(memory);
        let header = StableCell::init(manager.get(HEADER), Header::default());
        let h = header.get().clone();
        assert_eq!(h.magic, MAGIC, "stable memory holds something other than this canister's layout");
        assert!(h.layout_version <= LAYOUT_VERSION, "stable layout {} is newer than this code", h.layout_version);
        let mut header = header;
        if h.layout_version < LAYOUT_VERSION {
            let migrated = Header { layout_version: LAYOUT_VERSION, ..h };
            header.set(migrated);
        }
        StableLayout { manager, header }
    }

    pub fn memory(&self, id: MemoryId) -> Mem<M> {
        self.manager.get(id)
    }

    /// Takes the next id from a header counter.
    pub fn next_id(&mut self, field: fn(&mut Header) -> &mut u64) -> u64 {
        let mut h = self.header.get().clone();
        let id = *field(&mut h);
        *field(&mut h) += 1;
        self.header.set(h);
        id
    }
}

/// A principal as a bounded stable-map key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PrincipalKey(pub Vec<u8>);

impl Storable for PrincipalKey {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.0)
    }
    fn into_bytes(self) -> Vec<u8> {
        self.0
    }
    fn from_bytes(bytes: Cow<'_, [u8]>) -> Self {
        PrincipalKey(bytes.into_owned())
    }
    const BOUND: Bound = Bound::Bounded { max_size: 29, is_fixed_size: false };
}
