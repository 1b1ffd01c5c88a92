//! The audit log: an append-only hash chain of entries ([`inference_api::AuditEntry`]) in two
//! ic-stable-structures logs, with retention by count and age.
//!
//! A `StableLog` cannot drop entries from its front, so the log is two of them, used in turn.
//! Entries past retention are dropped at once for every reader (the first index kept moves
//! past them); their bytes are given back a segment at a time: once every entry of the older
//! segment is dropped, it is emptied, and once some entry of the newer one is dropped, appends
//! move to the emptied one. So at most about twice the retained entries take memory, and no
//! kept entry is ever rewritten. Each append costs one log append, a fixed-layout state write
//! when retention moves, and the entry's sha256 (benchmarks/results.yml, `audit/`).

use std::borrow::Cow;

use candid::Principal;
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{Memory, StableCell, StableLog, Storable};
use inference_api::{AuditEntry, AuditEvent, AuditPage, AuditQuery, AuditRecord, AuditRetention, GENESIS, TIME_OFFSET};
use sha2::{Digest, Sha256};

use crate::stable::{self, Mem, StableLayout};

/// Entries one `audit_log` page scans at most, matching or not: a page of a sparse filter
/// stops there (its `next` says where to go on), so a query stays far inside its limit.
pub const PAGE_SCAN_MAX: u64 = 5_000;

/// Expired entries one append drops at most (two: the log shrinks faster than it grows).
const DROPS_PER_APPEND: u64 = 2;

type Segment<M> = StableLog<Vec<u8>, Mem<M>, Mem<M>>;

/// Where the log stands, in a fixed layout (written when retention moves or a segment turns).
#[derive(Clone, Debug, PartialEq, Eq)]
struct LogState {
    /// The first index kept: every index below it is dropped.
    first_index: u64,
    /// The index of each segment's first entry, and which segment takes appends.
    starts: [u64; 2],
    active: u8,
    max_entries: Option<u64>,
    max_age_ns: Option<u64>,
}

const STATE_BYTES: usize = 8 + 2 * 8 + 1 + 2 * 9;

impl Storable for LogState {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        let mut out = Vec::with_capacity(STATE_BYTES);
        out.extend_from_slice(&self.first_index.to_le_bytes());
        out.extend_from_slice(&self.starts[0].to_le_bytes());
        out.extend_from_slice(&self.starts[1].to_le_bytes());
        out.push(self.active);
        for limit in [self.max_entries, self.max_age_ns] {
            out.push(limit.is_some() as u8);
            out.extend_from_slice(&limit.unwrap_or(0).to_le_bytes());
        }
        Cow::Owned(out)
    }
    fn into_bytes(self) -> Vec<u8> {
        self.to_bytes().into_owned()
    }
    fn from_bytes(bytes: Cow<'_, [u8]>) -> Self {
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let limit_at = |at: usize| (bytes[at] == 1).then(|| u64_at(at + 1));
        LogState {
            first_index: u64_at(0),
            starts: [u64_at(8), u64_at(16)],
            active: bytes[24],
            max_entries: limit_at(25),
            max_age_ns: limit_at(34),
        }
    }
    const BOUND: Bound = Bound::Bounded { max_size: STATE_BYTES as u32, is_fixed_size: true };
}

pub struct AuditLog<M: Memory> {
    /// Always both present: an `Option` only so a segment can be taken apart and made anew.
    segments: [Option<Segment<M>>; 2],
    state: StableCell<LogState, Mem<M>>,
    /// The newest entry's hash and the next index, kept in the heap (read back from the newest
    /// entry when the log opens).
    head: Vec<u8>,
    next_index: u64,
}

impl<M: Memory> AuditLog<M> {
    pub fn init(layout: &StableLayout<M>) -> Self {
        let segments = [
            Some(StableLog::init(layout.memory(stable::AUDIT_INDEX_A), layout.memory(stable::AUDIT_DATA_A))),
            Some(StableLog::init(layout.memory(stable::AUDIT_INDEX_B), layout.memory(stable::AUDIT_DATA_B))),
        ];
        let fresh = LogState { first_index: 0, starts: [0, 0], active: 0, max_entries: None, max_age_ns: None };
        let state = StableCell::init(layout.memory(stable::AUDIT_STATE), fresh);
        let mut log = AuditLog { segments, state, head: GENESIS.to_vec(), next_index: 0 };
        let s = log.state.get().clone();
        let active = s.active as usize;
        log.next_index = s.starts[active] + log.segment(active).len();
        if log.next_index > 0 {
            let newest = log.raw(log.next_index - 1).expect("the newest entry is kept");
            log.head = Sha256::digest(&newest).to_vec();
        }
        log
    }

    /// Appends an entry of `event` at `time_ns`, chained to the head; answers its index and
    /// hash. Then drops what retention no longer keeps.
    pub fn append(
        &mut self,
        time_ns: u64,
        caller: Principal,
        via: Option<Principal>,
        event: AuditEvent,
    ) -> (u64, Vec<u8>) {
        let index = self.next_index;
        let entry = AuditEntry { index, time_ns, caller, via, event, prev_sha256: self.head.clone() };
        let bytes = entry.encode();
        let hash = Sha256::digest(&bytes).to_vec();
        let active = self.state.get().active as usize;
        // Growing stable memory fails only when the subnet or the canister is out of it: trapping
        // rolls back the whole call, so nothing is served unlogged.
        self.segment(active).append(&bytes).expect("stable memory for the audit log");
        self.next_index += 1;
        self.head = hash.clone();
        self.retain(time_ns, DROPS_PER_APPEND);
        (index, hash)
    }

    /// Sets retention and drops at once what it no longer keeps (found by binary search on
    /// time: entries are in time order).
    pub fn set_retention(&mut self, retention: &AuditRetention, now_ns: u64) {
        let mut s = self.state.get().clone();
        s.max_entries = retention.max_entries;
        s.max_age_ns = retention.max_age_ns;
        self.state.set(s);
        let first = self.first_kept(now_ns);
        self.drop_before(first);
    }

    pub fn retention(&self) -> AuditRetention {
        let s = self.state.get();
        AuditRetention { max_entries: s.max_entries, max_age_ns: s.max_age_ns }
    }

    pub fn head(&self) -> &[u8] {
        &self.head
    }

    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// The first index kept, as stored (entries older than retention may still sit there
    /// until the next append or retention change: readers use [`AuditLog::first_kept`]).
    pub fn first_index(&self) -> u64 {
        self.state.get().first_index
    }

    /// Bytes of stable memory the log's segments take (their index and data).
    pub fn stable_bytes(&self) -> u64 {
        (0..2).map(|k| self.segment(k).index_size_bytes() + self.segment(k).data_size_bytes()).sum()
    }

    /// The first index retention keeps at `now_ns`.
    pub fn first_kept(&self, now_ns: u64) -> u64 {
        let s = self.state.get();
        let mut first = s.first_index;
        if let Some(max) = s.max_entries {
            first = first.max(self.next_index.saturating_sub(max));
        }
        if let Some(age) = s.max_age_ns {
            first = self.first_at_or_after(first, now_ns.saturating_sub(age));
        }
        first
    }

    /// The first index from `lo` on whose entry is at or after `time_ns` (binary search:
    /// entries are in time order).
    fn first_at_or_after(&self, mut lo: u64, time_ns: u64) -> u64 {
        let mut hi = self.next_index;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.time_of(mid) < time_ns {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// An entry by index with its hash, when kept at `now_ns`.
    pub fn get(&self, index: u64, now_ns: u64) -> Option<AuditRecord> {
        if index < self.first_kept(now_ns) {
            return None;
        }
        self.record(index)
    }

    /// A page of the entries `query` asks for, oldest first.
    pub fn page(&self, query: &AuditQuery, now_ns: u64) -> AuditPage {
        let first = self.first_kept(now_ns);
        let limit = query.limit.unwrap_or(inference_api::AUDIT_PAGE_MAX).min(inference_api::AUDIT_PAGE_MAX) as usize;
        let mut start = query.from.unwrap_or(first).max(first);
        if let Some(since) = query.since_ns {
            start = self.first_at_or_after(start, since);
        }
        let end = self.next_index.min(start.saturating_add(PAGE_SCAN_MAX));
        let mut records = Vec::new();
        let mut index = start;
        let mut past_until = false;
        while index < end && records.len() < limit {
            let record = self.record(index).expect("kept entries are readable");
            // Entries are in time order: none after this one is inside the range.
            if query.until_ns.is_some_and(|until| record.entry.time_ns > until) {
                past_until = true;
                break;
            }
            if query.selects(&record.entry) {
                records.push(record);
            }
            index += 1;
        }
        let next = (index < self.next_index && !past_until).then_some(index);
        AuditPage { records, next, first_index: first, next_index: self.next_index }
    }

    fn record(&self, index: u64) -> Option<AuditRecord> {
        let bytes = self.raw(index)?;
        let sha256 = Sha256::digest(&bytes).to_vec();
        let entry = AuditEntry::decode(&bytes).expect("the log holds only canonical entries");
        Some(AuditRecord { entry, sha256 })
    }

    /// An entry's canonical bytes, from whichever segment holds it.
    fn raw(&self, index: u64) -> Option<Vec<u8>> {
        let s = self.state.get();
        (0..2).find_map(|k| {
            let start = s.starts[k];
            let len = self.segment(k).len();
            (index >= start && index < start + len).then(|| self.segment(k).get(index - start)).flatten()
        })
    }

    fn segment(&self, k: usize) -> &Segment<M> {
        self.segments[k].as_ref().expect("both segments are present")
    }

    fn time_of(&self, index: u64) -> u64 {
        let bytes = self.raw(index).expect("a kept entry");
        u64::from_le_bytes(bytes[TIME_OFFSET..TIME_OFFSET + 8].try_into().expect("8 bytes"))
    }

    /// Drops, at most `most` at a time, the oldest entries retention no longer keeps.
    fn retain(&mut self, now_ns: u64, most: u64) {
        let s = self.state.get().clone();
        let mut first = s.first_index;
        if let Some(max) = s.max_entries {
            first = first.max(self.next_index.saturating_sub(max));
        }
        if let Some(age) = s.max_age_ns {
            let cutoff = now_ns.saturating_sub(age);
            let limit = first.saturating_add(most).min(self.next_index);
            while first < limit && self.time_of(first) < cutoff {
                first += 1;
            }
        }
        if first != s.first_index {
            self.drop_before(first);
        }
    }

    /// Moves the first index kept to `first`, empties the older segment once all of it is
    /// dropped, and turns appends to an emptied segment once the active one has dropped entries.
    fn drop_before(&mut self, first: u64) {
        let mut s = self.state.get().clone();
        if first <= s.first_index {
            return;
        }
        s.first_index = first;
        let active = s.active as usize;
        let older = 1 - active;
        if !self.segment(older).is_empty() && first >= s.starts[older] + self.segment(older).len() {
            let (index, data) = self.segments[older].take().expect("both segments are present").into_memories();
            self.segments[older] = Some(StableLog::new(index, data));
        }
        if self.segment(older).is_empty() && first > s.starts[active] {
            s.active = older as u8;
            s.starts[older] = self.next_index;
        }
        self.state.set(s);
    }
}

#[cfg(test)]
mod tests {
    use ic_stable_structures::DefaultMemoryImpl;
    use inference_api::{verify_chain, ChangeAction, ChangeRecord};

    use super::*;

    fn change(n: u32) -> AuditEvent {
        AuditEvent::Change(ChangeRecord {
            action: ChangeAction::Activated,
            model: Some(format!("m{}", n % 3)),
            version: Some(n),
            model_sha256: None,
            subject: None,
            role: None,
        })
    }

    fn caller(n: u8) -> Principal {
        Principal::from_slice(&[n])
    }

    fn all(log: &AuditLog<DefaultMemoryImpl>, now: u64) -> Vec<AuditRecord> {
        let mut out = Vec::new();
        let mut from = None;
        loop {
            let page = log.page(&AuditQuery { from, ..Default::default() }, now);
            out.extend(page.records);
            match page.next {
                Some(n) => from = Some(n),
                None => return out,
            }
        }
    }

    #[test]
    fn a_log_chains_survives_reopening_and_pages_by_filter() {
        let memory = DefaultMemoryImpl::default();
        let layout = StableLayout::init(memory.clone());
        let mut log = AuditLog::init(&layout);
        for n in 0..10u32 {
            let (index, hash) = log.append(100 + n as u64, caller(n as u8 % 2), None, change(n));
            assert_eq!(index, n as u64);
            assert_eq!(log.head(), hash);
        }
        let head = log.head().to_vec();
        drop((log, layout));

        let layout = StableLayout::init(memory);
        let log = AuditLog::init(&layout);
        assert_eq!((log.next_index(), log.head()), (10, head.as_slice()));
        let records = all(&log, 200);
        assert_eq!(records.len(), 10);
        assert_eq!(verify_chain(&records), Ok(Some(head)));

        let odd = log.page(&AuditQuery { caller: Some(caller(1)), limit: Some(2), ..Default::default() }, 200);
        assert_eq!(odd.records.iter().map(|r| r.entry.index).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(odd.next, Some(4));
        let m0 = log.page(&AuditQuery { model: Some("m0".into()), since_ns: Some(103), ..Default::default() }, 200);
        assert_eq!(m0.records.iter().map(|r| r.entry.index).collect::<Vec<_>>(), [3, 6, 9]);
        let window = log.page(&AuditQuery { since_ns: Some(102), until_ns: Some(104), ..Default::default() }, 200);
        assert_eq!(window.records.iter().map(|r| r.entry.index).collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(window.next, None, "nothing after the range is scanned");
    }

    #[test]
    fn retention_drops_whole_entries_from_the_front_and_reuses_segments() {
        let layout = StableLayout::init(DefaultMemoryImpl::default());
        let mut log = AuditLog::init(&layout);
        log.set_retention(&AuditRetention { max_entries: Some(5), max_age_ns: None }, 0);
        let mut peak = 0;
        for n in 0..100u32 {
            log.append(n as u64, caller(1), None, change(n));
            let kept = all(&log, n as u64);
            assert_eq!(kept.first().map(|r| r.entry.index), Some((n as u64).saturating_sub(4)));
            assert_eq!(kept.len() as u64, (n as u64 + 1).min(5));
            assert_eq!(verify_chain(&kept), Ok(Some(log.head().to_vec())));
            peak = peak.max(log.segment(0).len() + log.segment(1).len());
        }
        assert!(peak <= 11, "at most about twice the retained entries are held: {peak}");

        // By age: entries before now − 10 go at once for readers, and from memory as appends come.
        log.set_retention(&AuditRetention { max_entries: None, max_age_ns: Some(10) }, 106);
        assert_eq!(log.first_kept(106), 96);
        assert_eq!(log.first_kept(150), 100, "all expired");
        assert!(log.get(95, 106).is_none() && log.get(96, 106).is_some());
        log.append(200, caller(1), None, change(0));
        assert_eq!(all(&log, 200).len(), 1);
        assert_eq!(log.first_index(), 98, "memory gives back two expired entries an append");
    }
}
