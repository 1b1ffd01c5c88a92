//! `DynamicQuantizeLinear` (f32 → u8 with a scale and zero point computed from the tensor's own
//! range): the range fold and the quantize.
//!
//! tract 0.23.9 folds the range with scalar comparisons, then divides, rounds, converts and
//! clamps one element at a time: under the IC's cost table (`f32.div` and float→int conversions
//! are among its dearest instructions) that was a large share of a dynamic int8 inference once
//! its convolutions moved to our kernel (see `benchmarks/profile.md`). The simd128 range fold
//! uses `f32x4.pmin/pmax` (the same NaN and signed-zero behaviour as tract's `v < min` /
//! `v > max`), and the quantize uses the four-lane forms of tract's own operations in tract's
//! order: divide by the scale (not a multiply by its inverse, which rounds differently), round
//! half to even, saturate to i32, add the zero point, clamp. [`check`] compares with
//! [`reference`], a transcription of tract's code, on edge cases, natively and in the canister's
//! self-test.

/// tract's `scale_and_zero_point`: the range extended to include 0, over 255 levels. `max`
/// then `min`, not `clamp`: an all-zero range gives a NaN zero point, which `max` turns into 0
/// (as tract does) and `clamp` would keep.
#[allow(clippy::manual_clamp)]
pub fn scale_and_zero_point(min: f32, max: f32) -> (f32, u8) {
    let scale = (max - min) / 255.0;
    let zero_point = (-min / scale).round_ties_even().max(0.0).min(255.0);
    (scale, zero_point as u8)
}

/// tract's per-element quantize.
fn quantize_scalar(x: f32, scale: f32, zero_point: u8) -> u8 {
    (((x / scale).round_ties_even() as i32).wrapping_add(zero_point as i32)).clamp(0, 255) as u8
}

fn range_scalar(xs: &[f32], (mut min, mut max): (f32, f32)) -> (f32, f32) {
    for &v in xs {
        if v < min {
            min = v;
        } else if v > max {
            max = v;
        }
    }
    (min, max)
}

/// The family's interface.
pub trait DynamicQuantizeKernels {
    /// The range of `xs` extended to include 0 (`(0, 0)` for an empty slice), as tract folds it.
    fn range(xs: &[f32]) -> (f32, f32);
    /// `xs` quantized with `scale` and `zero_point` into `ys` (`min(xs.len(), ys.len())` values).
    fn quantize(xs: &[f32], scale: f32, zero_point: u8, ys: &mut [u8]);
}

/// One element at a time.
pub struct Scalar;

impl DynamicQuantizeKernels for Scalar {
    fn range(xs: &[f32]) -> (f32, f32) {
        range_scalar(xs, (0.0, 0.0))
    }

    fn quantize(xs: &[f32], scale: f32, zero_point: u8, ys: &mut [u8]) {
        for (x, y) in xs.iter().zip(ys) {
            *y = quantize_scalar(*x, scale, zero_point);
        }
    }
}

/// What the operator calls: [`Simd128`] in a wasm simd128 build, else [`Scalar`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub type Best = Simd128;
/// What the operator calls: `Simd128` in a wasm simd128 build, else [`Scalar`].
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub type Best = Scalar;

/// Four lanes at a time, with scalar tails.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub struct Simd128;

/// A vector's four lanes.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn lanes(v: core::arch::wasm32::v128) -> [f32; 4] {
    use core::arch::wasm32::*;
    [f32x4_extract_lane::<0>(v), f32x4_extract_lane::<1>(v), f32x4_extract_lane::<2>(v), f32x4_extract_lane::<3>(v)]
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
impl DynamicQuantizeKernels for Simd128 {
    /// The range in four lanes, then across them. `pmin(a, v)` is `v < a ? v : a`: a NaN never
    /// replaces, and -0 never replaces the starting +0, as in tract's fold.
    fn range(xs: &[f32]) -> (f32, f32) {
        use core::arch::wasm32::*;
        let (n, whole) = (xs.len() / 8 * 8, xs.len() / 16 * 16);
        let (mut min, mut max) = (f32x4_splat(0.0), f32x4_splat(0.0));
        let x = xs.as_ptr();
        let mut i = 0;
        // Four vectors an iteration (then two), each folded into both accumulators in turn:
        // the same comparisons in the same order per lane as one vector at a time. Four a turn
        // share the loop's test and the accumulators' reads and writes among sixteen values
        // (`benchmarks/NOTES.md`, "The dynamic range four vectors a turn").
        while i < whole {
            // SAFETY: i + 16 <= whole <= xs.len(): xs[i..i + 16] is in bounds; v128 loads need
            // no alignment.
            let (a, b, c, d) = unsafe {
                let v = x.add(i);
                (
                    v128_load(v as *const v128),
                    v128_load(v.add(4) as *const v128),
                    v128_load(v.add(8) as *const v128),
                    v128_load(v.add(12) as *const v128),
                )
            };
            min = f32x4_pmin(f32x4_pmin(f32x4_pmin(f32x4_pmin(min, a), b), c), d);
            max = f32x4_pmax(f32x4_pmax(f32x4_pmax(f32x4_pmax(max, a), b), c), d);
            i += 16;
        }
        if i < n {
            // SAFETY: i + 8 = n <= xs.len(): xs[i..i + 8] is in bounds.
            let (a, b) = unsafe { (v128_load(x.add(i) as *const v128), v128_load(x.add(i + 4) as *const v128)) };
            min = f32x4_pmin(f32x4_pmin(min, a), b);
            max = f32x4_pmax(f32x4_pmax(max, a), b);
        }
        let folded = range_scalar(&lanes(min), (0.0, 0.0)).0;
        let folded_max = range_scalar(&lanes(max), (0.0, 0.0)).1;
        range_scalar(&xs[n..], (folded, folded_max))
    }

    fn quantize(xs: &[f32], scale: f32, zero_point: u8, ys: &mut [u8]) {
        use core::arch::wasm32::*;
        let len = xs.len().min(ys.len());
        let n = len / 16 * 16;
        let (divisor, zero) = (f32x4_splat(scale), i32x4_splat(zero_point as i32));
        let (bias, flip) = (i16x8_splat(128), u8x16_splat(0x80));
        // A function, not a closure: at the canister's opt-level ("z") a closure stays a call.
        // Unclamped: the narrows below clamp.
        #[inline(always)]
        fn quantized(v: v128, divisor: v128, zero: v128) -> v128 {
            i32x4_add(i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_div(v, divisor))), zero)
        }
        macro_rules! q {
            ($v:expr) => {
                quantized($v, divisor, zero)
            };
        }
        let (x, y) = (xs.as_ptr() as *const v128, ys.as_mut_ptr());
        let mut i = 0;
        while i < n {
            // SAFETY: i + 16 <= n <= len: the four vectors read at x + i / 4 are xs[i..i + 16],
            // the 16 bytes written at y + i are ys[i..i + 16]; no alignment is required.
            unsafe {
                let v = x.add(i / 4);
                let (a, b) = (q!(v128_load(v)), q!(v128_load(v.add(1))));
                let (c, d) = (q!(v128_load(v.add(2))), q!(v128_load(v.add(3))));
                // clamp(v, 0, 255) by saturating narrows: i32 to i16, less 128 (saturating),
                // to i8, then the top bit flipped back. (`u8x16_narrow_i16x8` would be one
                // instruction, but LLVM spells it as a clamp, an `and` and the narrow, and merges
                // that clamp into the narrow before it: some twenty instructions a vector.)
                let (low, high) = (i16x8_narrow_i32x4(a, b), i16x8_narrow_i32x4(c, d));
                let shifted = i8x16_narrow_i16x8(i16x8_sub_sat(low, bias), i16x8_sub_sat(high, bias));
                v128_store(y.add(i) as *mut v128, v128_xor(shifted, flip));
            }
            i += 16;
        }
        while i < len {
            ys[i] = quantize_scalar(xs[i], scale, zero_point);
            i += 1;
        }
    }
}

/// tract 0.23.9's code (`tract-onnx`'s `ops/quant.rs`, private there), transcribed as written.
pub mod reference {
    /// tract's fold in `scale_and_zero_point`.
    pub fn range(xs: &[f32]) -> (f32, f32) {
        xs.iter().fold((0., 0.), |(a_min, a_max), &v| {
            if v < a_min {
                (v, a_max)
            } else if v > a_max {
                (a_min, v)
            } else {
                (a_min, a_max)
            }
        })
    }

    /// tract's `dynamic_quantize_linear_u8`. tract adds the zero point unchecked; it cannot
    /// overflow here but for a NaN scale's saturated values, so it wraps as the kernels do.
    pub fn quantize(xs: &[f32], scale: f32, zero_point: u8) -> Vec<u8> {
        xs.iter()
            .map(|x| {
                (((x / scale).round_ties_even() as i32).wrapping_add(zero_point as i32))
                    .clamp(u8::MIN as i32, u8::MAX as i32) as u8
            })
            .collect()
    }
}

/// Compares [`Best`] with [`reference`] on edge cases (ties, signed zeros, NaN, infinities,
/// all-negative, all-positive and all-zero tensors, every tail length): an error names the first
/// difference.
pub fn check() -> Result<(), String> {
    check_kernels::<Best>()
}

/// [`check`] for any implementation of the family.
pub fn check_kernels<K: DynamicQuantizeKernels>() -> Result<(), String> {
    let specials =
        [0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 126.5, 127.5, 3e38, -3e38, f32::NAN, 1e-40, 0.49999997, 7.0, -7.0];
    let ramp: Vec<f32> = specials.iter().copied().chain((0..100).map(|i| (i as f32 - 40.0) * 0.731)).collect();
    let positive: Vec<f32> = (0..37).map(|i| 1.0 + i as f32 * 0.37).collect();
    let negative: Vec<f32> = (0..37).map(|i| -1.0 - i as f32 * 0.37).collect();
    let zeros = vec![0f32; 21];
    let infinite = vec![1.0, f32::INFINITY, -2.0, 3.0, 0.0, -0.0, 5.0, 6.0, 7.0];
    for (name, xs) in
        [("ramp", &ramp), ("positive", &positive), ("negative", &negative), ("zeros", &zeros), ("infinite", &infinite)]
    {
        for len in [xs.len(), 1, 3, 4, 15, 16, 17, 25, 33, 40] {
            let xs = &xs[..len.min(xs.len())];
            let (min, max) = K::range(xs);
            let want = reference::range(xs);
            if (min.to_bits(), max.to_bits()) != (want.0.to_bits(), want.1.to_bits()) {
                return Err(format!("dynamic quantize range differs from tract's on {name}[..{len}]"));
            }
            let (scale, zero_point) = scale_and_zero_point(min, max);
            let mut got = vec![0u8; xs.len()];
            K::quantize(xs, scale, zero_point, &mut got);
            if got != reference::quantize(xs, scale, zero_point) {
                return Err(format!("dynamic quantize differs from tract's on {name}[..{len}]"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_equal_tracts_scalar_code() {
        check().unwrap();
        check_kernels::<Scalar>().unwrap();
    }

    /// tract's own test data (from the ONNX operator documentation).
    #[test]
    fn scale_and_zero_point_match_the_onnx_examples() {
        for (xs, scale, zero_point) in [
            (&[0., 2., -3., -2.5, 1.34, 0.5][..], 0.019_607_844f32, 153u8),
            (&[-1., -2.1, -1.3, -2.5, -3.34, -4.], 0.015_686_275, 255),
            (&[1., 2.1, 1.3, 2.5, 3.34, 4., 1.5, 2.6, 3.9, 4., 3., 2.345], 0.015_686_275, 0),
        ] {
            let (min, max) = Best::range(xs);
            let (s, z) = scale_and_zero_point(min, max);
            assert!((s - scale).abs() < 1e-8 && z == zero_point, "{xs:?}: {s} {z}");
        }
    }
}
