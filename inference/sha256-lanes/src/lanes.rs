//! Four 32-bit lanes and the operations SHA-256 takes of them: wasm's `v128` where simd128 is
//! on (the canister), four `u32`s elsewhere (native builds and tests run the same code).

/// What a compression needs of four lanes; every operation is lane-wise.
pub trait Lanes: Copy {
    fn splat(word: u32) -> Self;
    fn add(self, other: Self) -> Self;
    fn xor(self, other: Self) -> Self;
    fn rotr(self, bits: u32) -> Self;
    fn shr(self, bits: u32) -> Self;
    /// `yes`'s bits where `mask`'s are set, `no`'s elsewhere.
    fn select(mask: Self, yes: Self, no: Self) -> Self;
    /// Lane `i` of `schedule[w]` := big-endian word `w` of `blocks[i]`, for the sixteen words.
    fn load_block(blocks: [&[u8]; 4], schedule: &mut [Self; 64]);
    fn lanes(self) -> [u32; 4];
}

/// Lane `i`'s eight state words.
pub fn unzip<L: Lanes>(state: &[L; 8]) -> [[u32; 8]; 4] {
    let mut states = [[0; 8]; 4];
    for (word, lanes) in state.iter().enumerate() {
        for (lane, value) in lanes.lanes().into_iter().enumerate() {
            states[lane][word] = value;
        }
    }
    states
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use simd::Simd as X4;

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub use portable::Portable as X4;

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod portable {
    use super::Lanes;

    #[derive(Clone, Copy)]
    pub struct Portable([u32; 4]);

    impl Portable {
        #[inline(always)]
        fn zip(self, other: Self, f: impl Fn(u32, u32) -> u32) -> Self {
            Portable([0, 1, 2, 3].map(|i| f(self.0[i], other.0[i])))
        }
    }

    impl Lanes for Portable {
        fn splat(word: u32) -> Self {
            Portable([word; 4])
        }
        fn add(self, other: Self) -> Self {
            self.zip(other, u32::wrapping_add)
        }
        fn xor(self, other: Self) -> Self {
            self.zip(other, |a, b| a ^ b)
        }
        fn rotr(self, bits: u32) -> Self {
            Portable(self.0.map(|a| a.rotate_right(bits)))
        }
        fn shr(self, bits: u32) -> Self {
            Portable(self.0.map(|a| a >> bits))
        }
        fn select(mask: Self, yes: Self, no: Self) -> Self {
            Portable([0, 1, 2, 3].map(|i| (yes.0[i] & mask.0[i]) | (no.0[i] & !mask.0[i])))
        }
        fn load_block(blocks: [&[u8]; 4], schedule: &mut [Self; 64]) {
            for (w, lanes) in schedule[..16].iter_mut().enumerate() {
                *lanes = Portable(blocks.map(|b| u32::from_be_bytes(b[4 * w..4 * w + 4].try_into().unwrap())));
            }
        }
        fn lanes(self) -> [u32; 4] {
            self.0
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    use super::Lanes;

    #[derive(Clone, Copy)]
    pub struct Simd(v128);

    impl Lanes for Simd {
        #[inline(always)]
        fn splat(word: u32) -> Self {
            Simd(u32x4_splat(word))
        }
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            Simd(i32x4_add(self.0, other.0))
        }
        #[inline(always)]
        fn xor(self, other: Self) -> Self {
            Simd(v128_xor(self.0, other.0))
        }
        /// wasm has no vector rotate: two shifts and an or.
        #[inline(always)]
        fn rotr(self, bits: u32) -> Self {
            Simd(v128_or(u32x4_shr(self.0, bits), i32x4_shl(self.0, 32 - bits)))
        }
        #[inline(always)]
        fn shr(self, bits: u32) -> Self {
            Simd(u32x4_shr(self.0, bits))
        }
        #[inline(always)]
        fn select(mask: Self, yes: Self, no: Self) -> Self {
            Simd(v128_bitselect(yes.0, no.0, mask.0))
        }
        /// Each sixteen bytes of the four blocks are a 4×4 matrix of words to transpose: the
        /// first four shuffles pair the words of two blocks and reverse their bytes (SHA-256's
        /// words are big-endian), the next four pair those pairs.
        #[inline(always)]
        fn load_block(blocks: [&[u8]; 4], schedule: &mut [Self; 64]) {
            for quarter in 0..4 {
                let at = 16 * quarter;
                // SAFETY: each block is at least 64 bytes long (the caller slices 64), so the
                // sixteen bytes at `at` ≤ 48 are in it; v128_load has no alignment requirement.
                let [r0, r1, r2, r3] = blocks.map(|b| {
                    assert!(b.len() >= 64);
                    unsafe { v128_load(b.as_ptr().add(at) as *const v128) }
                });
                let low01 = i8x16_shuffle::<3, 2, 1, 0, 19, 18, 17, 16, 7, 6, 5, 4, 23, 22, 21, 20>(r0, r1);
                let high01 = i8x16_shuffle::<11, 10, 9, 8, 27, 26, 25, 24, 15, 14, 13, 12, 31, 30, 29, 28>(r0, r1);
                let low23 = i8x16_shuffle::<3, 2, 1, 0, 19, 18, 17, 16, 7, 6, 5, 4, 23, 22, 21, 20>(r2, r3);
                let high23 = i8x16_shuffle::<11, 10, 9, 8, 27, 26, 25, 24, 15, 14, 13, 12, 31, 30, 29, 28>(r2, r3);
                let w = 4 * quarter;
                schedule[w] = Simd(i64x2_shuffle::<0, 2>(low01, low23));
                schedule[w + 1] = Simd(i64x2_shuffle::<1, 3>(low01, low23));
                schedule[w + 2] = Simd(i64x2_shuffle::<0, 2>(high01, high23));
                schedule[w + 3] = Simd(i64x2_shuffle::<1, 3>(high01, high23));
            }
        }
        #[inline(always)]
        fn lanes(self) -> [u32; 4] {
            [
                u32x4_extract_lane::<0>(self.0),
                u32x4_extract_lane::<1>(self.0),
                u32x4_extract_lane::<2>(self.0),
                u32x4_extract_lane::<3>(self.0),
            ]
        }
    }
}
