//! SHA-256 of four byte strings at once: each 32-bit lane of a 128-bit vector carries one
//! string's compression, so one wasm `i32x4` instruction does the work of four scalar ones.
//!
//! Why: the IC meters every wasm instruction (`local.get`s included) and has no hashing system
//! call, so scalar SHA-256 costs about 76 instructions a byte (the `sha2` crate's unrolled
//! compression; benchmarks/NOTES.md, "Audit"). The audit hashes every inference's input, which
//! for a 600 KB image was more than a tenth of a quantized model's whole inference. Four
//! lanes cost about a third of that a byte ([`sha256x4`]'s benchmark is the `infer/*` entries'
//! `logging_instructions`).
//!
//! Each digest is the plain SHA-256 of its string (FIPS 180-4): the lanes run the strings'
//! common whole blocks in step, then each string's remaining blocks and its padding go through
//! `sha2`'s own compression. Off wasm (or without simd128) the lanes are four `u32`s, the same
//! code, which is how the tests compare it with `sha2` natively; the canister's tests compare
//! the wasm build's digests with the native ones.
#![no_std]

use sha2::digest::generic_array::GenericArray;

mod lanes;

use lanes::{Lanes, X4};

/// The SHA-256 digests of four byte strings (of any lengths).
pub fn sha256x4(strings: [&[u8]; 4]) -> [[u8; 32]; 4] {
    let common_blocks = strings.iter().map(|s| s.len() / 64).min().unwrap_or(0);
    let mut state = [X4::splat(0); 8];
    for (lane, word) in state.iter_mut().zip(INITIAL) {
        *lane = X4::splat(word);
    }
    let mut schedule = [X4::splat(0); 64];
    for block in 0..common_blocks {
        let at = block * 64;
        let blocks = strings.map(|s| &s[at..at + 64]);
        X4::load_block(blocks, &mut schedule);
        compress(&mut state, &mut schedule);
    }
    let states = lanes::unzip(&state);
    let mut digests = [[0u8; 32]; 4];
    for (lane, digest) in digests.iter_mut().enumerate() {
        *digest = finish(states[lane], strings[lane], common_blocks * 64);
    }
    digests
}

/// SHA-256's initial hash value (FIPS 180-4, 5.3.3).
const INITIAL: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// SHA-256's round constants (FIPS 180-4, 4.2.2).
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
];

/// One compression of four blocks (FIPS 180-4, 6.2.2): `schedule` holds the blocks' sixteen
/// words on entry and is extended to sixty-four.
///
/// The rounds go eight to a turn with the working variables renamed, not moved, from one round
/// to the next: rolled one to a turn the eight moves and the loop's own instructions were a
/// quarter of a round's cost on the IC's meter.
///
/// The schedule's words go eight to a turn, each read and written at a constant offset from one
/// pointer per turn made opaque to LLVM's loop strength reduction: computed one to a turn by
/// index, every load of the four earlier words paid an `i32.add` for its address (the
/// disassembly), a tenth of a word's cost on the IC's meter.
#[inline(always)]
fn compress<L: Lanes>(state: &mut [L; 8], schedule: &mut [L; 64]) {
    let words = schedule.as_mut_ptr();
    let mut t = 16;
    while t < 64 {
        // SAFETY: t is 16, 24, …, 56: the turn reads words t − 16..t + 6 and writes t..t + 8,
        // all below 64, the schedule's length.
        unsafe {
            let from = opaque(words.add(t - 16));
            macro_rules! word {
                ($i:literal) => {{
                    let (w2, w15) = (*from.add($i + 14), *from.add($i + 1));
                    let small_sigma1 = w2.rotr(17).xor(w2.rotr(19)).xor(w2.shr(10));
                    let small_sigma0 = w15.rotr(7).xor(w15.rotr(18)).xor(w15.shr(3));
                    *from.add($i + 16) = small_sigma1.add(*from.add($i + 9)).add(small_sigma0).add(*from.add($i));
                }};
            }
            word!(0);
            word!(1);
            word!(2);
            word!(3);
            word!(4);
            word!(5);
            word!(6);
            word!(7);
        }
        t += 8;
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    // Round i of a turn reads its word and constant at offset i from the turn's pointers, made
    // opaque as the schedule's are: by index, each paid an `i32.add` for its address.
    macro_rules! round {
        ($words:ident, $constants:ident, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $i:literal) => {
            let big_sigma1 = $e.rotr(6).xor($e.rotr(11)).xor($e.rotr(25));
            // Ch(e, f, g): f where e is set, g elsewhere.
            let choose = L::select($e, $f, $g);
            // SAFETY: the turn's pointers are at t, a multiple of 8 below 64: words t..t + 8 of
            // the schedule and of K.
            let (word, constant) = unsafe { (*$words.add($i), *$constants.add($i)) };
            let t1 = $h.add(big_sigma1).add(choose).add(L::splat(constant)).add(word);
            let big_sigma0 = $a.rotr(2).xor($a.rotr(13)).xor($a.rotr(22));
            // Maj(a, b, c): b where b and c agree, a where they differ.
            let majority = L::select($b.xor($c), $a, $b);
            $d = $d.add(t1);
            $h = t1.add(big_sigma0.add(majority));
        };
    }
    for t in (0..64).step_by(8) {
        // SAFETY: t + 8 <= 64, the length of the schedule and of K.
        let (words, constants) = unsafe { (opaque(schedule.as_ptr().add(t)), opaque(K.as_ptr().add(t))) };
        round!(words, constants, a, b, c, d, e, f, g, h, 0);
        round!(words, constants, h, a, b, c, d, e, f, g, 1);
        round!(words, constants, g, h, a, b, c, d, e, f, 2);
        round!(words, constants, f, g, h, a, b, c, d, e, 3);
        round!(words, constants, e, f, g, h, a, b, c, d, 4);
        round!(words, constants, d, e, f, g, h, a, b, c, 5);
        round!(words, constants, c, d, e, f, g, h, a, b, 6);
        round!(words, constants, b, c, d, e, f, g, h, a, 7);
    }
    for (word, new) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *word = word.add(new);
    }
}

/// `x`, which LLVM cannot see through (a volatile read of a local: a store and a load).
#[inline(always)]
fn opaque<T: Copy>(x: T) -> T {
    // SAFETY: reads a live local, aligned and initialised.
    unsafe { core::ptr::read_volatile(&x) }
}

/// One lane's digest: `state` has compressed `string[..done]` (whole blocks); the rest and the
/// padding (a one bit, zeros, the length in bits as a big-endian u64) go through `sha2`.
fn finish(mut state: [u32; 8], string: &[u8], done: usize) -> [u8; 32] {
    let rest = &string[done..];
    let whole = rest.len() / 64 * 64;
    let (blocks, tail) = rest.split_at(whole);
    for block in blocks.chunks_exact(64) {
        sha2::compress256(&mut state, &[*GenericArray::from_slice(block)]);
    }
    let mut last = [0u8; 128];
    last[..tail.len()].copy_from_slice(tail);
    last[tail.len()] = 0x80;
    let padded = if tail.len() < 56 { 64 } else { 128 };
    last[padded - 8..padded].copy_from_slice(&((string.len() as u64) * 8).to_be_bytes());
    for block in last[..padded].chunks_exact(64) {
        sha2::compress256(&mut state, &[*GenericArray::from_slice(block)]);
    }
    let mut digest = [0u8; 32];
    for (bytes, word) in digest.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    use super::*;

    fn plain(s: &[u8]) -> [u8; 32] {
        Sha256::digest(s).into()
    }

    #[test]
    fn the_empty_strings_digests_are_sha256s() {
        let digests = sha256x4([b"", b"abc", b"", b""]);
        assert_eq!(digests[1], plain(b"abc"));
        assert_eq!(digests[0], plain(b""));
    }

    #[test]
    fn every_padding_boundary_gives_sha256() {
        // Tails of 55, 56, 63 and 64 bytes take one or two padding blocks; the common whole
        // blocks run in the lanes.
        let data: Vec<u8> = (0..700u32).map(|i| (i * 31 + 7) as u8).collect();
        for extra in [0, 1, 55, 56, 63, 64, 65, 119, 120, 200] {
            let strings = [&data[..128 + extra], &data[1..129], &data[2..300], &data[..640 + extra % 60]];
            let digests = sha256x4(strings);
            for (digest, string) in digests.iter().zip(strings) {
                assert_eq!(*digest, plain(string), "length {}", string.len());
            }
        }
    }

    proptest! {
        #[test]
        fn each_lane_is_the_plain_sha256_of_its_string(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            cuts in proptest::array::uniform8(0usize..2000),
        ) {
            let slice = |i: usize| {
                let (x, y) = (cuts[2 * i] % (data.len() + 1), cuts[2 * i + 1] % (data.len() + 1));
                &data[x.min(y)..x.max(y)]
            };
            let strings = [slice(0), slice(1), slice(2), slice(3)];
            let digests = sha256x4(strings);
            for (digest, string) in digests.iter().zip(strings) {
                prop_assert_eq!(*digest, plain(string));
            }
        }
    }
}
