//! What every chunk of an upload needs to know of it, in a fixed layout: read and written at
//! every `put_chunk`, so it is copied, not candid-decoded and re-encoded (which cost about 1.3 M
//! instructions a chunk, and grew with the chunk count: benchmarks/NOTES.md, Upload). The
//! upload's request (description, labels, input declarations) is stored once, apart, and read
//! only at finish.

use std::borrow::Cow;

use candid::Principal;
use ic_stable_structures::storable::Bound;
use ic_stable_structures::Storable;

use crate::registry::{MAX_CHUNKS, MAX_NAME};
use crate::types::{ChunkRange, UploadStatus};

const BITMAP_BYTES: usize = MAX_CHUNKS as usize / 8;
/// Principals are at most 29 bytes.
const PRINCIPAL_BYTES: usize = 29;
/// id, blob, size, started_at_ns; chunk_size, chunk_count; sha256; principal and name, each
/// with its length; the received bitmap.
const ENCODED_BYTES: usize = 4 * 8 + 2 * 4 + 32 + (1 + PRINCIPAL_BYTES) + (1 + MAX_NAME) + BITMAP_BYTES;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadProgress {
    pub id: u64,
    /// The blob memory the chunks are written to.
    pub blob: u64,
    pub size: u64,
    pub chunk_size: u32,
    pub chunk_count: u32,
    pub started_by: Principal,
    pub started_at_ns: u64,
    pub name: String,
    /// The whole file's declared sha256.
    pub sha256: [u8; 32],
    /// Bit `i` is set once chunk `i` is stored.
    received: [u8; BITMAP_BYTES],
}

impl UploadProgress {
    /// A new upload with nothing received. `name` must be checked (≤ [`MAX_NAME`] bytes) and
    /// `chunk_count` ≤ [`MAX_CHUNKS`] before.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        blob: u64,
        size: u64,
        chunk_size: u32,
        chunk_count: u32,
        started_by: Principal,
        started_at_ns: u64,
        name: String,
        sha256: [u8; 32],
    ) -> Self {
        debug_assert!(name.len() <= MAX_NAME && chunk_count <= MAX_CHUNKS);
        UploadProgress {
            id,
            blob,
            size,
            chunk_size,
            chunk_count,
            started_by,
            started_at_ns,
            name,
            sha256,
            received: [0; BITMAP_BYTES],
        }
    }

    pub fn has(&self, index: u32) -> bool {
        self.received[index as usize / 8] & (1 << (index % 8)) != 0
    }

    pub fn set(&mut self, index: u32, received: bool) {
        let (byte, bit) = (index as usize / 8, 1u8 << (index % 8));
        if received {
            self.received[byte] |= bit;
        } else {
            self.received[byte] &= !bit;
        }
    }

    /// The byte length of chunk `index` (the last one may be shorter).
    pub fn chunk_len(&self, index: u32) -> u64 {
        let chunk = self.chunk_size as u64;
        if index + 1 == self.chunk_count {
            self.size - chunk * index as u64
        } else {
            chunk
        }
    }

    /// Where chunk `index` starts in the blob.
    pub fn offset(&self, index: u32) -> u64 {
        index as u64 * self.chunk_size as u64
    }

    pub fn missing(&self) -> Vec<ChunkRange> {
        ChunkRange::covering((0..self.chunk_count).filter(|&i| !self.has(i)))
    }

    pub fn status(&self) -> UploadStatus {
        let received_bytes = (0..self.chunk_count).filter(|&i| self.has(i)).map(|i| self.chunk_len(i)).sum();
        UploadStatus {
            upload_id: self.id,
            name: self.name.clone(),
            size: self.size,
            chunk_size: self.chunk_size,
            chunk_count: self.chunk_count,
            missing: self.missing(),
            received_bytes,
            sha256: self.sha256.to_vec(),
        }
    }
}

/// Writes `bytes` after its length byte into a field of `width` bytes.
fn put_sized(out: &mut Vec<u8>, bytes: &[u8], width: usize) {
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
    out.resize(out.len() + width - bytes.len(), 0);
}

/// Reads the fields back in the order they were written.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().expect("8 bytes"))
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().expect("4 bytes"))
    }
    fn sized(&mut self, width: usize) -> &[u8] {
        let len = self.take(1)[0] as usize;
        &self.take(width)[..len]
    }
}

impl Storable for UploadProgress {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.clone().into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENCODED_BYTES);
        for n in [self.id, self.blob, self.size, self.started_at_ns] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&self.chunk_size.to_le_bytes());
        out.extend_from_slice(&self.chunk_count.to_le_bytes());
        out.extend_from_slice(&self.sha256);
        put_sized(&mut out, self.started_by.as_slice(), PRINCIPAL_BYTES);
        put_sized(&mut out, self.name.as_bytes(), MAX_NAME);
        out.extend_from_slice(&self.received);
        debug_assert_eq!(out.len(), ENCODED_BYTES);
        out
    }

    fn from_bytes(bytes: Cow<'_, [u8]>) -> Self {
        let mut r = Reader(&bytes);
        let (id, blob, size, started_at_ns) = (r.u64(), r.u64(), r.u64(), r.u64());
        let (chunk_size, chunk_count) = (r.u32(), r.u32());
        let sha256 = r.take(32).try_into().expect("32 bytes");
        let started_by = Principal::from_slice(r.sized(PRINCIPAL_BYTES));
        let name = String::from_utf8(r.sized(MAX_NAME).to_vec()).expect("stored by this canister");
        let received = r.take(BITMAP_BYTES).try_into().expect("the bitmap");
        UploadProgress { id, blob, size, chunk_size, chunk_count, started_by, started_at_ns, name, sha256, received }
    }

    const BOUND: Bound = Bound::Bounded { max_size: ENCODED_BYTES as u32, is_fixed_size: true };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_a_fixed_size() {
        let mut p = UploadProgress::new(
            7,
            16,
            10_000,
            3_000,
            4,
            Principal::from_slice(&[9; 29]),
            42,
            "x".repeat(MAX_NAME),
            [5; 32],
        );
        p.set(0, true);
        p.set(3, true);
        p.set(0, false);
        p.set(MAX_CHUNKS - 1, true);
        let bytes = p.to_bytes().into_owned();
        assert_eq!(bytes.len(), ENCODED_BYTES);
        assert_eq!(UploadProgress::from_bytes(Cow::Owned(bytes)), p);
        assert_eq!(p.missing(), vec![ChunkRange { start: 0, end: 3 }]);
        assert_eq!((p.chunk_len(2), p.chunk_len(3)), (3_000, 1_000));
        assert_eq!(p.status().received_bytes, 1_000);
        let anonymous = UploadProgress { started_by: Principal::anonymous(), name: "a".into(), ..p };
        assert_eq!(UploadProgress::from_bytes(anonymous.to_bytes()), anonymous);
    }
}
