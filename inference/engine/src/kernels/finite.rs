//! The check that an f32 input holds no NaN or infinity, over its little-endian bytes (as an
//! `F32Bytes` tensor arrives): the index of the first value whose exponent bits are all ones.
//!
//! The canister refuses such inputs before anything runs, so every f32 inference pays this pass
//! over its input. Element by element it was a scalar decode and test of each value; the simd128
//! version tests sixteen values a turn (an `and` and an `eq` a vector, the lanes' results or-ed
//! together) and only looks for the index when a turn found one (`benchmarks/NOTES.md`, "Byte
//! tables at a fixed address, the finite check in lanes").

/// The index of the first of the values (four little-endian bytes each, a trailing partial value
/// ignored) that is NaN or infinite.
pub fn first_not_finite(bytes: &[u8]) -> Option<usize> {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd::first_not_finite(bytes);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    return scalar(bytes, 0);
}

/// One value at a time, from value `from` on.
fn scalar(bytes: &[u8], from: usize) -> Option<usize> {
    let n = bytes.len() / 4;
    let mut i = from;
    while i < n {
        let b = &bytes[4 * i..4 * i + 4];
        if !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite() {
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    /// Sixteen values (four vectors) a turn; the rest, and the search for the index once a turn
    /// found a value, one at a time.
    pub fn first_not_finite(bytes: &[u8]) -> Option<usize> {
        let whole = bytes.len() / 64 * 64;
        let exponent = i32x4_splat(0x7f80_0000);
        let x = bytes.as_ptr();
        let mut at = 0;
        while at < whole {
            // SAFETY: at + 64 <= whole <= bytes.len(): the four vectors read are bytes[at..at +
            // 64]; no alignment is required.
            let found = unsafe {
                let v = core::hint::black_box(x.add(at)) as *const v128;
                let (a, b) = (all_ones(v128_load(v), exponent), all_ones(v128_load(v.add(1)), exponent));
                let (c, d) = (all_ones(v128_load(v.add(2)), exponent), all_ones(v128_load(v.add(3)), exponent));
                v128_any_true(v128_or(v128_or(a, b), v128_or(c, d)))
            };
            if found {
                return super::scalar(bytes, at / 4);
            }
            at += 64;
        }
        super::scalar(bytes, whole / 4)
    }

    /// Lanes whose exponent bits are all ones (NaN or infinite): a function, not a closure, so
    /// that it is inlined at the canister's opt-level.
    #[inline(always)]
    fn all_ones(v: v128, exponent: v128) -> v128 {
        i32x4_eq(v128_and(v, exponent), exponent)
    }
}

/// [`first_not_finite`] against the value-by-value test: NaNs, infinities and the largest
/// finite values at every position of inputs long and short (with a partial trailing value).
pub fn check() -> Result<(), String> {
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -f32::NAN];
    for len in [0usize, 1, 3, 15, 16, 17, 33, 64, 70] {
        let base: Vec<f32> =
            (0..len).map(|i| (i as f32 - 20.0) * 1.5e37).map(|v| v.clamp(-f32::MAX, f32::MAX)).collect();
        let bytes = |values: &[f32], tail: usize| {
            let mut b: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            b.extend(std::iter::repeat_n(0xff, tail));
            b
        };
        for tail in [0, 3] {
            if first_not_finite(&bytes(&base, tail)).is_some() {
                return Err(format!("finite check: {len} finite values (and {tail} trailing bytes) found not finite"));
            }
            for at in 0..len {
                for special in specials {
                    let mut values = base.clone();
                    values[at] = special;
                    if at + 1 < len {
                        values[len - 1] = f32::NAN;
                    }
                    let got = first_not_finite(&bytes(&values, tail));
                    if got != Some(at) {
                        return Err(format!("finite check: {special} at {at} of {len} found at {got:?}"));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_check_agrees_with_the_value_by_value_test() {
        super::check().unwrap();
    }
}
