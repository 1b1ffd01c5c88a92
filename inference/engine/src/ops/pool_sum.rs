//! [`PoolSum`]: tract's f32 `Reduce<Sum>` over an image's pixels (a global average pool's sum,
//! in squeeze-excitation blocks), four lanes at a time, the values tract's bit for bit.
//!
//! tract 0.23.9 sums two kinds of axes outside its own last-axis kernel, at 18–29 instructions
//! a value on the IC's meter (`benchmarks/profile.md`, rapidocr_cls's `Reduce<Sum>`):
//! - trailing axes (a planar image's pixels, `[N, C, H, W]` over `H, W`): through ndarray's
//!   `unrolled_fold` of each contiguous run, which keeps eight partial sums (one per position
//!   modulo eight), adds them pairwise (`p0 + p4`, …, `p3 + p7`) onto zero in that order, then
//!   the last values one by one. Two f32x4 vectors of partial sums are exactly those eight.
//! - leading axes (an interleaved image's, `[H, W, C]` over `H, W`): as a column sum of the
//!   `[rows, inner]` matrix, rows added in order into one partial row per block of
//!   `32768 / inner` rows, the partial rows then added in order onto zeros. Each lane is one
//!   column, the same additions in the same order.
//!
//! Wired by [`crate::passes::pool_sum`].

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// Which axes are summed: the first `n` or the last `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Summed {
    Leading(usize),
    Trailing(usize),
}

/// The sum of some leading or trailing axes of an f32 tensor, kept as axes of 1.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolSum {
    pub axes: Summed,
}

impl Op for PoolSum {
    fn name(&self) -> StaticName {
        "PoolSum".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}", self.axes)])
    }

    op_as_typed_op!();
}

impl PoolSum {
    /// The summed axes of a rank `rank` tensor.
    fn range(&self, rank: usize) -> std::ops::Range<usize> {
        match self.axes {
            Summed::Leading(n) => 0..n.min(rank),
            Summed::Trailing(n) => rank.saturating_sub(n)..rank,
        }
    }
}

impl EvalOp for PoolSum {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let shape = input.shape();
        let summed = self.range(shape.len());
        let out_shape: TVec<usize> =
            shape.iter().enumerate().map(|(axis, d)| if summed.contains(&axis) { 1 } else { *d }).collect();
        let xs = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let sums = match self.axes {
            Summed::Trailing(_) => {
                let run: usize = shape[summed].iter().product();
                if run == 0 {
                    vec![0.0; out_shape.iter().product()]
                } else {
                    xs.chunks_exact(run).map(fold).collect()
                }
            }
            Summed::Leading(_) => column_sums(xs, shape[summed.end..].iter().product()),
        };
        Ok(tvec!(Tensor::from_shape(&out_shape, &sums)?.into_tvalue()))
    }
}

impl TypedOp for PoolSum {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape = inputs[0].shape.clone();
        for axis in self.range(shape.len()) {
            shape.set(axis, 1.into());
        }
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

/// ndarray's `unrolled_fold` of `xs` with `+` from zero (see the module's documentation).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn fold(xs: &[f32]) -> f32 {
    scalar_fold(xs)
}

/// [`fold`] one value at a time: what the simd128 form is checked against ([`check`]).
fn scalar_fold(xs: &[f32]) -> f32 {
    let whole = xs.len() / 8 * 8;
    let mut p = [0.0f32; 8];
    for chunk in xs[..whole].chunks_exact(8) {
        for j in 0..8 {
            p[j] += chunk[j];
        }
    }
    let mut acc = 0.0f32;
    for j in 0..4 {
        acc += p[j] + p[j + 4];
    }
    for x in &xs[whole..] {
        acc += *x;
    }
    acc
}

/// [`fold`] on wasm simd128: the eight partial sums are two vectors of four lanes (`low` the
/// values at j mod 8 for j < 4, `high` for j ≥ 4), their pairwise sums `p[j] + p[j + 4]` one
/// vector addition, and those are added onto zero lane by lane in order, then the last values
/// one by one: the same additions in the same order. Kept in locals: through an array in memory
/// and an iterator, a 7 × 7 channel's sum cost about 600 instructions (`benchmarks/NOTES.md`,
/// "Global average pools' sums in locals").
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn fold(xs: &[f32]) -> f32 {
    use core::arch::wasm32::*;
    let (whole, at) = (xs.len() / 8 * 8, xs.as_ptr());
    let (mut low, mut high) = (f32x4_splat(0.0), f32x4_splat(0.0));
    let mut i = 0;
    while i < whole {
        // SAFETY: i + 8 <= whole <= xs.len(): xs[i..i + 8] is in bounds; no alignment is required.
        unsafe {
            low = f32x4_add(low, v128_load(at.add(i) as *const v128));
            high = f32x4_add(high, v128_load(at.add(i + 4) as *const v128));
        }
        i += 8;
    }
    let pairs = f32x4_add(low, high);
    let mut acc = 0.0f32;
    acc += f32x4_extract_lane::<0>(pairs);
    acc += f32x4_extract_lane::<1>(pairs);
    acc += f32x4_extract_lane::<2>(pairs);
    acc += f32x4_extract_lane::<3>(pairs);
    while i < xs.len() {
        // SAFETY: i < xs.len().
        acc += unsafe { *at.add(i) };
        i += 1;
    }
    acc
}

/// Compares [`fold`] with [`scalar_fold`] bit for bit over lengths around the eight-value chunks
/// and a 7 × 7 channel's, with zeros of both signs, infinities and NaN among the values. It
/// means something in the canister's self-test, where `fold` is the simd128 form; natively the
/// two are the same function.
pub fn check() -> Result<(), String> {
    let special = [-0.0, 0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1.0e7, -3.3e-3];
    for len in [0, 1, 3, 7, 8, 9, 15, 16, 17, 49, 50, 196] {
        for salt in 0..3usize {
            let xs: Vec<f32> = (0..len)
                .map(|i| match (i * 7 + salt) % 13 {
                    0 if salt > 0 => special[(i + salt) % special.len()],
                    1 => -0.0,
                    k => (k as f32 - 6.5) * 0.37 * 10f32.powi((i % 5) as i32 - 2),
                })
                .collect();
            if fold(&xs).to_bits() != scalar_fold(&xs).to_bits() {
                return Err(format!("pooled sum of {len} values (salt {salt}) differs from the scalar sum"));
            }
        }
    }
    Ok(())
}

/// tract's column sums of the `[rows, inner]` matrix `xs` (see the module's documentation).
fn column_sums(xs: &[f32], inner: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; inner];
    if inner == 0 {
        return out;
    }
    let block = (32768 / inner).max(1);
    let mut partial = vec![0.0f32; inner];
    for rows in xs.chunks(block * inner) {
        partial.fill(0.0);
        for row in rows.chunks_exact(inner) {
            add_into(&mut partial, row);
        }
        add_into(&mut out, &partial);
    }
    out
}

/// `acc[i] += xs[i]` for every i of `acc` (`xs` at least as long): four lanes at a time on wasm
/// simd128, each lane the same addition.
fn add_into(acc: &mut [f32], xs: &[f32]) {
    let n = acc.len();
    assert!(xs.len() >= n);
    let mut i = 0;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::*;
        let (a, x) = (acc.as_mut_ptr(), xs.as_ptr());
        while i + 4 <= n {
            // SAFETY: i + 4 <= n, and both slices hold at least n values; no alignment is
            // required.
            unsafe {
                let sum = f32x4_add(v128_load(a.add(i) as *const v128), v128_load(x.add(i) as *const v128));
                v128_store(a.add(i) as *mut v128, sum);
            }
            i += 4;
        }
    }
    while i < n {
        acc[i] += xs[i];
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};

    use super::*;

    fn values(len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| match i % 9 {
                0 => -0.0,
                1 => 1.0e7,
                2 => -3.3e-3,
                _ => (i as f32 * 0.37).sin() * 10f32.powi((i % 5) as i32 - 2),
            })
            .collect()
    }

    fn assert_sums_as_tract(shape: &[usize], axes: Summed) {
        let x = tensor1(&values(shape.iter().product())).into_shape(shape).unwrap();
        let ours = PoolSum { axes };
        let theirs = Reduce { axes: ours.range(shape.len()).collect(), reducer: Reducer::Sum };
        let want = theirs.eval(&EvalContext::out_of_plan(), tvec!(x.clone().into_tvalue())).unwrap().remove(0);
        let got = ours.eval(&EvalContext::out_of_plan(), tvec!(x.into_tvalue())).unwrap().remove(0);
        assert_eq!(got.shape(), want.shape(), "{shape:?} {axes:?}");
        assert_eq!(
            got.try_as_plain_ram().unwrap().as_bytes(),
            want.try_as_plain_ram().unwrap().as_bytes(),
            "{shape:?} {axes:?}"
        );
    }

    /// Runs of every length up to 40 (whole chunks of eight and tails), over values of mixed
    /// magnitudes and signs, negative zeros among them, sum to tract's `Reduce<Sum>` bit for
    /// bit, over two and three trailing axes; and leading axes, over one block of rows and
    /// over several (4096 columns: blocks of eight rows).
    #[test]
    fn sums_what_tracts_reduce_sums() {
        for run in 0..40usize {
            assert_sums_as_tract(&[3, 1, run], Summed::Trailing(2));
            assert_sums_as_tract(&[2, 3, 1, run], Summed::Trailing(3));
            assert_sums_as_tract(&[1, 2, run, 1], Summed::Trailing(2));
            assert_sums_as_tract(&[run, 3, 7], Summed::Leading(2));
            assert_sums_as_tract(&[2, run, 13], Summed::Leading(2));
        }
        assert_sums_as_tract(&[5, 4, 4096], Summed::Leading(2));
        assert_sums_as_tract(&[19, 4096], Summed::Leading(1));
    }
}
