//! GELU without approximation, `x · ½ · (1 + erf(x / √2))`, in place: the values of tract's
//! `GeluExact` as the canister runs it, bit for bit.
//!
//! tract 0.23.9's `GeluExact` makes three passes over a chunk: a scalar loop scaling each value
//! by 1/√2 into a scratch buffer, its `Erf` kernel over the buffer (on wasm simd128 a polynomial
//! of |t| raised to the sixteenth power, inverted, four lanes at a time), then a scalar loop
//! `(x · 0.5) · (erf + 1)`. On the IC's meter that is about 77 instructions a value
//! (`benchmarks/profile.md`, `GeluExact`, a transformer's feed-forward layers); here the three
//! are one pass of four lanes. Each value goes through the same f32 operations in the same order
//! as tract's scalar loops and its wasm `Erf` kernel (`WasmErf4`), so the results are the same
//! bits there; [`check`] compares them with tract's operator in the canister's self-test.
//! Natively tract's `Erf` is another kernel (x86_64's own), so native runs of tract and of this
//! differ in the last bits; the native build runs [`reference::gelu`], which this module's
//! tests hold within a few units in the last place of tract's.

use crate::kernels::same_bits_or_nan;

/// tract's coefficients of `erf(t) ≈ 1 − (1 + a₁t + … + a₆t⁶)⁻¹⁶` for t ≥ 0 (Abramowitz and
/// Stegun 7.1.28), highest first, spelled as tract spells them (the same f32 values).
#[allow(clippy::excessive_precision)]
const A: [f32; 6] = [0.0000430638, 0.0002765672, 0.0001520143, 0.0092705272, 0.0422820123, 0.0705230784];

/// 1/√2 as tract computes it.
fn inv_sqrt2() -> f32 {
    2f32.sqrt().recip()
}

/// Every value of `xs` replaced by its GELU.
pub fn gelu_in_place(xs: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let done = simd::gelu_in_place(xs);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let done = 0;
    for x in &mut xs[done..] {
        *x = reference::gelu(*x);
    }
}

/// One value at a time, in the order of tract's loops and its wasm `Erf` kernel.
pub mod reference {
    use super::{inv_sqrt2, A};

    /// tract's wasm `Erf` of one value: the polynomial of |t|, `1 − (y + 1)⁻¹⁶` by four
    /// squarings and a division, and t's sign bit or-ed in.
    pub fn erf(t: f32) -> f32 {
        let abs = f32::from_bits(t.to_bits() & 0x7fff_ffff);
        let mut y = A[0] * abs;
        for a in &A[1..] {
            y = (y + a) * abs;
        }
        let mut power = y + 1.0;
        for _ in 0..4 {
            power *= power;
        }
        let e = 1.0 - 1.0 / power;
        f32::from_bits(e.to_bits() | (t.to_bits() & 0x8000_0000))
    }

    /// tract's `GeluExact` of one value.
    pub fn gelu(x: f32) -> f32 {
        (x * 0.5) * (erf(x * inv_sqrt2()) + 1.0)
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    use super::{inv_sqrt2, A};
    use crate::kernels::opaque;

    /// Four values a lane each: [`reference::gelu`]'s operations on a vector. Answers how many
    /// values it replaced (the whole vectors; the rest are the caller's).
    pub fn gelu_in_place(xs: &mut [f32]) -> usize {
        let whole = xs.len() / 4 * 4;
        let (scale, half, one) = (f32x4_splat(inv_sqrt2()), f32x4_splat(0.5), f32x4_splat(1.0));
        let (magnitude, sign) = (i32x4_splat(0x7fff_ffff), i32x4_splat(i32::MIN));
        // Named locals, not an array: LLVM at the canister's opt-level keeps an array's
        // vectors in memory (`benchmarks/NOTES.md`, "Thirty-two channels a tile").
        let (a0, a1, a2) = (f32x4_splat(A[0]), f32x4_splat(A[1]), f32x4_splat(A[2]));
        let (a3, a4, a5) = (f32x4_splat(A[3]), f32x4_splat(A[4]), f32x4_splat(A[5]));
        // One vector's GELU, spelled out where it is used (a closure here was not inlined).
        macro_rules! gelu {
            ($x:expr) => {{
                let x = $x;
                let t = f32x4_mul(x, scale);
                // |t| by its sign bit cleared: the bits f32x4.abs gives, for one instruction
                // where `abs` costs two on the IC's table.
                let abs = v128_and(t, magnitude);
                let mut y = f32x4_mul(a0, abs);
                y = f32x4_mul(f32x4_add(y, a1), abs);
                y = f32x4_mul(f32x4_add(y, a2), abs);
                y = f32x4_mul(f32x4_add(y, a3), abs);
                y = f32x4_mul(f32x4_add(y, a4), abs);
                y = f32x4_mul(f32x4_add(y, a5), abs);
                let mut power = f32x4_add(y, one);
                power = f32x4_mul(power, power);
                power = f32x4_mul(power, power);
                power = f32x4_mul(power, power);
                power = f32x4_mul(power, power);
                let e = v128_or(f32x4_sub(one, f32x4_div(one, power)), v128_and(t, sign));
                f32x4_mul(f32x4_mul(x, half), f32x4_add(e, one))
            }};
        }
        let p = xs.as_mut_ptr();
        let mut i = 0;
        // Four vectors a turn while there are (the loop's own instructions paid once per
        // sixteen values), then one.
        while i + 16 <= whole {
            // SAFETY: i + 16 <= whole <= xs.len(): the vectors read and written are
            // xs[i..i + 16]; no alignment is required.
            unsafe {
                let at = opaque(p.add(i)) as *mut v128;
                let (x0, x1, x2, x3) =
                    (v128_load(at), v128_load(at.add(1)), v128_load(at.add(2)), v128_load(at.add(3)));
                v128_store(at, gelu!(x0));
                v128_store(at.add(1), gelu!(x1));
                v128_store(at.add(2), gelu!(x2));
                v128_store(at.add(3), gelu!(x3));
            }
            i += 16;
        }
        while i < whole {
            // SAFETY: i + 4 <= whole <= xs.len(): the vector read and written is xs[i..i + 4];
            // no alignment is required.
            unsafe {
                let at = opaque(p.add(i)) as *mut v128;
                v128_store(at, gelu!(v128_load(at)));
            }
            i += 4;
        }
        whole
    }
}

/// [`gelu_in_place`] against [`reference::gelu`] on every length up to a few vectors and on edge
/// values (signed zeros, the tails where erf saturates, NaN, infinities, subnormals), and in the
/// canister against tract's own `GeluExact` operator, bit for bit: an error names the first
/// difference.
pub fn check() -> Result<(), String> {
    let specials = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -3.0,
        3.0,
        -5.5,
        9.0,
        -9.0,
        40.0,
        -40.0,
        1e-40,
        -1e-40,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    let values: Vec<f32> = specials.iter().copied().chain((0..90).map(|i| (i as f32 - 45.0) * 0.137)).collect();
    for len in (0..=9).chain([values.len()]) {
        let mut got = values[..len].to_vec();
        gelu_in_place(&mut got);
        for (x, y) in values.iter().zip(&got) {
            let want = reference::gelu(*x);
            if !same_bits_or_nan(*y, want) {
                return Err(format!("GELU of {x:e} is {y:e}, the reference's {want:e} (length {len})"));
            }
        }
    }
    let mut nan = [f32::NAN; 5];
    gelu_in_place(&mut nan);
    if !nan.iter().all(|v| v.is_nan()) {
        return Err("GELU of NaN is not NaN".into());
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let got = values.iter().map(|x| reference::gelu(*x)).collect::<Vec<_>>();
        let want = tracts(&values).map_err(|e| format!("tract's GeluExact: {e}"))?;
        if let Some(at) = (0..values.len()).find(|&i| !same_bits_or_nan(got[i], want[i])) {
            return Err(format!("GELU of {:e} is {:e}, tract's {:e}", values[at], got[at], want[at]));
        }
    }
    Ok(())
}

/// tract's `GeluExact` operator over `values`.
#[cfg_attr(not(all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))]
fn tracts(values: &[f32]) -> tract_onnx::prelude::TractResult<Vec<f32>> {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::internal::{EvalContext, EvalOp};
    use tract_onnx::tract_core::ops::nn::gelu_exact::gelu_exact;
    let out = gelu_exact().eval(&EvalContext::out_of_plan(), tvec!(tensor1(values).into_tvalue()))?;
    Ok(out[0].try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_equals_the_reference() {
        check().unwrap();
    }

    /// Natively tract's `Erf` is another kernel than the wasm one this follows: the two agree
    /// to within a few units in the last place of a GELU's value (or 1e-6 near zero, where
    /// the values are that small).
    #[test]
    fn the_reference_is_tracts_gelu_within_rounding() {
        let values: Vec<f32> = (0..4001).map(|i| (i as f32 - 2000.0) * 0.004).collect();
        let tract = tracts(&values).unwrap();
        for (x, want) in values.iter().zip(&tract) {
            let got = reference::gelu(*x);
            let tolerance = (want.abs() * 8.0 * f32::EPSILON).max(1e-6);
            assert!((got - want).abs() <= tolerance, "GELU({x}) = {got}, tract's {want}");
        }
    }

    /// The textbook values: GELU(0) = 0, GELU(x) → x for large x and → 0 for large −x,
    /// GELU(1) ≈ 0.8413.
    #[test]
    fn known_values() {
        assert_eq!(reference::gelu(0.0), 0.0);
        assert_eq!(reference::gelu(20.0), 20.0);
        assert_eq!(reference::gelu(-20.0), 0.0);
        assert!((reference::gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((reference::gelu(-1.0) + 0.158_655_25).abs() < 1e-6);
    }
}
