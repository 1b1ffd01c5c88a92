//! Softmax over each row of a row-major f32 matrix whose rows are a whole number of vectors
//! long, in place: the values of tract's `Softmax` as the canister runs it, bit for bit.
//!
//! tract 0.23.9 runs such rows through its wasm kernel `softmax_rows_f32`: per row the maximum
//! (lane-wise `pmax` over the row's vectors, then the four lanes' `max`), `exp(x − max)` by a
//! polynomial and summed lane-wise, then a multiply by `1 / sum`. Its exponential is a function
//! kept out of line (a call per vector, its eleven constants made again at each call), about 35
//! of the IC's instructions a value in all (`benchmarks/profile.md`, `Softmax`, a transformer's
//! attention). Here the same operations in the same order run inline, the constants made once a
//! call; [`check`] compares the results with tract's operator in the canister's self-test.
//! Natively tract runs x86_64's kernels, so native runs differ from this in the last bits; the
//! native build runs [`reference::softmax_rows`], which follows the wasm kernel's lanes.

use crate::kernels::same_bits_or_nan;

/// What is applied to each value before the softmax: `x · scale + mask[column]`, as tract's
/// `OptBinChain(Mul+Add)` computes it (attention's scores scaled by 1/√d and masked), each
/// value's product then sum in f32.
#[derive(Clone, Copy, Debug)]
pub struct Affine<'a> {
    pub scale: f32,
    /// One value per column of a row.
    pub mask: &'a [f32],
}

/// A quantize then a dequantize with no int8 tensor between (a QDQ model's fake quantization),
/// as [`crate::ops::qdq::Conversion::Both`] computes it.
pub type FakeQuantize = (Quantize, Dequantize);

/// What a softmax of attention's scores computes around it, in its own passes: the scores'
/// fake quantization, their scale and mask, and the probabilities' fake quantization (a QDQ
/// model's), each where there is one, in that order.
#[derive(Clone, Copy, Debug, Default)]
pub struct Around<'a> {
    pub before: Option<FakeQuantize>,
    pub affine: Option<Affine<'a>>,
    pub after: Option<FakeQuantize>,
}

/// Every `row_len` row of `values` (`row_len` a multiple of four, `values` whole rows) replaced
/// by its softmax, with what is `around` it.
pub fn softmax_rows(values: &mut [f32], row_len: usize, around: Around) {
    assert!(row_len > 0 && row_len.is_multiple_of(4) && values.len().is_multiple_of(row_len));
    assert!(around.affine.is_none_or(|a| a.mask.len() == row_len));
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    match around.affine {
        Some(a) => simd::softmax_rows::<true>(values, row_len, a.scale, a.mask, around),
        None => simd::softmax_rows::<false>(values, row_len, 1.0, &[], around),
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    reference::softmax_rows(values, row_len, around);
}

/// Every column of each `rows × columns` matrix of `values` (row-major; `rows` and `columns`
/// multiples of four, `values` whole matrices) replaced by its softmax, with what is `around` it
/// (the mask one value per row): [`softmax_rows`] of the transposed matrices, bit for bit.
/// Attention's scores laid out keys by queries, so that the probabilities are the values'
/// product's right operand as they lie (`crate::passes::attention_layout`). Each lane is a
/// column: its maximum is the column's (one of its values), and its sum takes the rows four
/// apart into four partial sums, as the row kernel's lanes take a row's values, added in the
/// same order.
pub fn softmax_columns(values: &mut [f32], rows: usize, columns: usize, around: Around) {
    assert!(rows > 0 && rows.is_multiple_of(4) && columns > 0 && columns.is_multiple_of(4));
    assert!(values.len().is_multiple_of(rows * columns));
    assert!(around.affine.is_none_or(|a| a.mask.len() == rows));
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    match around.affine {
        Some(a) => simd::softmax_columns::<true>(values, rows, columns, a.scale, a.mask, around),
        None => simd::softmax_columns::<false>(values, rows, columns, 1.0, &[], around),
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    reference::softmax_columns(values, rows, columns, around);
}

/// The exponential's polynomial, highest degree first, spelled as tract spells it (the same f32
/// values).
#[allow(clippy::excessive_precision)]
const C: [f32; 6] =
    [8.297653546e-03, 4.191538191e-02, 1.666757475e-01, 4.999889485e-01, 9.999996920e-01, 1.000000072e+00];

use crate::kernels::qdq::{Dequantize, Quantize};

/// log₂e, and ln 2 in two parts (high and low), spelled as tract spells them.
#[allow(clippy::excessive_precision, clippy::approx_constant)]
const LOG2E: f32 = 1.442_695_04;
const LN2_HIGH: f32 = 0.693_145_75;
const LN2_LOW: f32 = 1.428_606_8e-6;

/// tract's wasm kernel lane by lane.
pub mod reference {
    use super::{C, LN2_HIGH, LN2_LOW, LOG2E};

    /// tract's `exp_ps` of one lane: `2^k · q(r)` with k = round(x · log₂e) and r the
    /// remainder, 0 below −103 (and above 0, which `x − max` never is).
    pub fn exp(x: f32) -> f32 {
        let kf = (x * LOG2E).round_ties_even();
        let mut r = x - kf * LN2_HIGH;
        r -= kf * LN2_LOW;
        let mut q = C[0];
        for c in &C[1..] {
            q = c + q * r;
        }
        // i32x4.trunc_sat_f32x4, then a wrapping add as i32x4.add.
        let k = kf as i32;
        let biased = k.wrapping_add(127).clamp(1, 254);
        let scale = f32::from_bits((biased as u32) << 23);
        // Not a range's `contains`: a NaN is neither below nor above, and stays NaN.
        #[allow(clippy::manual_range_contains)]
        if x < -103.0 || x > 0.0 {
            0.0
        } else {
            q * scale
        }
    }

    /// One row: its maximum and its sum of exponentials lane by lane, as four lanes of vectors
    /// would (two vectors a turn, then one).
    pub fn softmax_row(row: &mut [f32]) {
        let n = row.len();
        // f32x4.pmax(acc, v): v where acc < v, else acc.
        let mut lanes = [f32::NEG_INFINITY; 4];
        for chunk in row.chunks_exact(4) {
            for (acc, v) in lanes.iter_mut().zip(chunk) {
                if *acc < *v {
                    *acc = *v;
                }
            }
        }
        let max = lanes[0].max(lanes[1]).max(lanes[2]).max(lanes[3]);
        let mut sums = [0f32; 4];
        let mut i = 0;
        while i + 8 <= n {
            let (y0, y1): ([f32; 4], [f32; 4]) =
                (core::array::from_fn(|l| exp(row[i + l] - max)), core::array::from_fn(|l| exp(row[i + 4 + l] - max)));
            row[i..i + 4].copy_from_slice(&y0);
            row[i + 4..i + 8].copy_from_slice(&y1);
            for l in 0..4 {
                sums[l] += y0[l];
                sums[l] += y1[l];
            }
            i += 8;
        }
        if i < n {
            for l in 0..4 {
                let y = exp(row[i + l] - max);
                row[i + l] = y;
                sums[l] += y;
            }
        }
        let r = (sums[0] + sums[1] + sums[2] + sums[3]).recip();
        for v in row {
            *v *= r;
        }
    }

    /// Every row, with what is `around` it.
    pub fn softmax_rows(values: &mut [f32], row_len: usize, around: super::Around) {
        for row in values.chunks_exact_mut(row_len) {
            if let Some((q, d)) = around.before {
                row.iter_mut().for_each(|x| *x = d.scalar(q.scalar(*x)));
            }
            if let Some(a) = around.affine {
                for (x, m) in row.iter_mut().zip(a.mask) {
                    *x = *x * a.scale + *m;
                }
            }
            softmax_row(row);
            if let Some((q, d)) = around.after {
                row.iter_mut().for_each(|x| *x = d.scalar(q.scalar(*x)));
            }
        }
    }

    /// Every column of each `rows × columns` matrix, as a row through [`softmax_rows`].
    pub fn softmax_columns(values: &mut [f32], rows: usize, columns: usize, around: super::Around) {
        let mut column = vec![0f32; rows];
        for matrix in values.chunks_exact_mut(rows * columns) {
            for j in 0..columns {
                for (r, v) in column.iter_mut().enumerate() {
                    *v = matrix[r * columns + j];
                }
                softmax_rows(&mut column, rows, around);
                for (r, v) in column.iter().enumerate() {
                    matrix[r * columns + j] = *v;
                }
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    use super::{C, LN2_HIGH, LN2_LOW, LOG2E};
    use crate::kernels::opaque;
    use crate::kernels::qdq::{DequantizeLanes, QuantizeLanes};

    /// The exponential's constants, made once (named fields: LLVM keeps them in locals).
    #[derive(Clone, Copy)]
    struct Constants {
        log2e: v128,
        ln2_high: v128,
        ln2_low: v128,
        c0: v128,
        c1: v128,
        c2: v128,
        c3: v128,
        c4: v128,
        c5: v128,
        bias: v128,
        one: v128,
        floor: v128,
    }

    impl Constants {
        fn new() -> Constants {
            Constants {
                log2e: f32x4_splat(LOG2E),
                ln2_high: f32x4_splat(LN2_HIGH),
                ln2_low: f32x4_splat(LN2_LOW),
                c0: f32x4_splat(C[0]),
                c1: f32x4_splat(C[1]),
                c2: f32x4_splat(C[2]),
                c3: f32x4_splat(C[3]),
                c4: f32x4_splat(C[4]),
                c5: f32x4_splat(C[5]),
                bias: i32x4_splat(127),
                one: i32x4_splat(1),
                floor: f32x4_splat(-103.0),
            }
        }
    }

    /// What every pass of either softmax uses, made once a call (named fields: LLVM keeps them
    /// in locals once destructured).
    struct Setup {
        k: Constants,
        vscale: v128,
        before: Option<(QuantizeLanes, DequantizeLanes)>,
        after: Option<(QuantizeLanes, DequantizeLanes)>,
        /// Whether the first pass writes its values back (they were scaled and masked, or fake
        /// quantized).
        rewrite: bool,
    }

    impl Setup {
        #[inline(always)]
        fn new(affine: bool, scale: f32, around: super::Around) -> Setup {
            let lanes =
                |f: Option<super::FakeQuantize>| f.map(|(q, d)| (QuantizeLanes::new(&q), DequantizeLanes::new(&d)));
            let (before, after) = (lanes(around.before), lanes(around.after));
            Setup {
                k: Constants::new(),
                vscale: f32x4_splat(scale),
                before,
                after,
                rewrite: affine || before.is_some(),
            }
        }
    }

    /// tract's `exp_ps`, inline, of a value less its row's maximum: never above 0 (or a NaN).
    /// Two of tract's tests are then decided and left out, each result the same bits: the
    /// exponent's clamp to 254 (k = round(x · log₂e) ≤ 0, so k + 127 ≤ 127) and the zero for
    /// x > 0. That is five of the IC's instructions a vector of the 80-odd it costs.
    #[inline(always)]
    fn exp(x: v128, k: &Constants) -> v128 {
        let kf = f32x4_nearest(f32x4_mul(x, k.log2e));
        let mut r = f32x4_sub(x, f32x4_mul(kf, k.ln2_high));
        r = f32x4_sub(r, f32x4_mul(kf, k.ln2_low));
        let mut q = k.c0;
        q = f32x4_add(k.c1, f32x4_mul(q, r));
        q = f32x4_add(k.c2, f32x4_mul(q, r));
        q = f32x4_add(k.c3, f32x4_mul(q, r));
        q = f32x4_add(k.c4, f32x4_mul(q, r));
        q = f32x4_add(k.c5, f32x4_mul(q, r));
        let biased = i32x4_max(i32x4_add(i32x4_trunc_sat_f32x4(kf), k.bias), k.one);
        let scale = i32x4_shl(biased, 23);
        // Zero (all bits clear) below −103, as tract's select of its zero.
        v128_andnot(f32x4_mul(q, scale), f32x4_lt(x, k.floor))
    }

    /// Every row: its maximum (each value first scaled and masked where `AFFINE`, and written
    /// back), its exponentials and their sum, then the multiply, each a pass over the row.
    pub fn softmax_rows<const AFFINE: bool>(
        values: &mut [f32],
        row_len: usize,
        scale: f32,
        mask: &[f32],
        around: super::Around,
    ) {
        let Setup { k, vscale, before, after, rewrite } = Setup::new(AFFINE, scale, around);
        let m = mask.as_ptr();
        let rows = values.len() / row_len;
        let base = values.as_mut_ptr();
        for row in 0..rows {
            // SAFETY: (for the block) every vector read or written is row `row`'s, whose
            // row_len values (a multiple of four) lie within `values` (asserted by the caller:
            // whole rows), or the mask's at the same columns (row_len values where AFFINE).
            unsafe {
                let p = base.add(row * row_len);
                let mut acc = f32x4_splat(f32::NEG_INFINITY);
                let mut i = 0;
                // Sixteen values a turn while there are, then eight (the maximum is the same
                // whatever the order of the `pmax`es: it is one of the values).
                while i + 16 <= row_len {
                    let at = opaque(p.add(i)) as *mut v128;
                    let (mut v0, mut v1, mut v2, mut v3) =
                        (v128_load(at), v128_load(at.add(1)), v128_load(at.add(2)), v128_load(at.add(3)));
                    if let Some((q, d)) = before {
                        (v0, v1) = (d.apply(q.quantized(v0)), d.apply(q.quantized(v1)));
                        (v2, v3) = (d.apply(q.quantized(v2)), d.apply(q.quantized(v3)));
                    }
                    if AFFINE {
                        // The mask's row_len values (the caller's) are read at the row's columns.
                        let mask = m.add(i) as *const v128;
                        v0 = f32x4_add(f32x4_mul(v0, vscale), v128_load(mask));
                        v1 = f32x4_add(f32x4_mul(v1, vscale), v128_load(mask.add(1)));
                        v2 = f32x4_add(f32x4_mul(v2, vscale), v128_load(mask.add(2)));
                        v3 = f32x4_add(f32x4_mul(v3, vscale), v128_load(mask.add(3)));
                    }
                    if rewrite {
                        v128_store(at, v0);
                        v128_store(at.add(1), v1);
                        v128_store(at.add(2), v2);
                        v128_store(at.add(3), v3);
                    }
                    acc = f32x4_pmax(f32x4_pmax(f32x4_pmax(f32x4_pmax(acc, v0), v1), v2), v3);
                    i += 16;
                }
                while i + 8 <= row_len {
                    let at = opaque(p.add(i)) as *mut v128;
                    let (mut v0, mut v1) = (v128_load(at), v128_load(at.add(1)));
                    if let Some((q, d)) = before {
                        (v0, v1) = (d.apply(q.quantized(v0)), d.apply(q.quantized(v1)));
                    }
                    if AFFINE {
                        // The mask's row_len values (the caller's) are read at the row's columns.
                        let mask = m.add(i) as *const v128;
                        v0 = f32x4_add(f32x4_mul(v0, vscale), v128_load(mask));
                        v1 = f32x4_add(f32x4_mul(v1, vscale), v128_load(mask.add(1)));
                    }
                    if rewrite {
                        v128_store(at, v0);
                        v128_store(at.add(1), v1);
                    }
                    acc = f32x4_pmax(acc, v0);
                    acc = f32x4_pmax(acc, v1);
                    i += 8;
                }
                if i < row_len {
                    let at = p.add(i) as *mut v128;
                    let mut v = v128_load(at);
                    if let Some((q, d)) = before {
                        v = d.apply(q.quantized(v));
                    }
                    if AFFINE {
                        v = f32x4_add(f32x4_mul(v, vscale), v128_load(m.add(i) as *const v128));
                    }
                    if rewrite {
                        v128_store(at, v);
                    }
                    acc = f32x4_pmax(acc, v);
                }
                let max = f32x4_extract_lane::<0>(acc)
                    .max(f32x4_extract_lane::<1>(acc))
                    .max(f32x4_extract_lane::<2>(acc))
                    .max(f32x4_extract_lane::<3>(acc));
                let vmax = f32x4_splat(max);
                let mut sum = f32x4_splat(0.0);
                let mut i = 0;
                // Thirty-two values a turn while there are, then sixteen, then eight: the same
                // additions to the sum in the same order as tract's turns of eight.
                while i + 32 <= row_len {
                    let at = opaque(p.add(i)) as *mut v128;
                    let y0 = exp(f32x4_sub(v128_load(at), vmax), &k);
                    let y1 = exp(f32x4_sub(v128_load(at.add(1)), vmax), &k);
                    let y2 = exp(f32x4_sub(v128_load(at.add(2)), vmax), &k);
                    let y3 = exp(f32x4_sub(v128_load(at.add(3)), vmax), &k);
                    let y4 = exp(f32x4_sub(v128_load(at.add(4)), vmax), &k);
                    let y5 = exp(f32x4_sub(v128_load(at.add(5)), vmax), &k);
                    let y6 = exp(f32x4_sub(v128_load(at.add(6)), vmax), &k);
                    let y7 = exp(f32x4_sub(v128_load(at.add(7)), vmax), &k);
                    v128_store(at, y0);
                    v128_store(at.add(1), y1);
                    v128_store(at.add(2), y2);
                    v128_store(at.add(3), y3);
                    v128_store(at.add(4), y4);
                    v128_store(at.add(5), y5);
                    v128_store(at.add(6), y6);
                    v128_store(at.add(7), y7);
                    sum = f32x4_add(f32x4_add(f32x4_add(f32x4_add(sum, y0), y1), y2), y3);
                    sum = f32x4_add(f32x4_add(f32x4_add(f32x4_add(sum, y4), y5), y6), y7);
                    i += 32;
                }
                while i + 16 <= row_len {
                    let at = opaque(p.add(i)) as *mut v128;
                    let y0 = exp(f32x4_sub(v128_load(at), vmax), &k);
                    let y1 = exp(f32x4_sub(v128_load(at.add(1)), vmax), &k);
                    let y2 = exp(f32x4_sub(v128_load(at.add(2)), vmax), &k);
                    let y3 = exp(f32x4_sub(v128_load(at.add(3)), vmax), &k);
                    v128_store(at, y0);
                    v128_store(at.add(1), y1);
                    v128_store(at.add(2), y2);
                    v128_store(at.add(3), y3);
                    sum = f32x4_add(f32x4_add(f32x4_add(f32x4_add(sum, y0), y1), y2), y3);
                    i += 16;
                }
                while i + 8 <= row_len {
                    let at = opaque(p.add(i)) as *mut v128;
                    let y0 = exp(f32x4_sub(v128_load(at), vmax), &k);
                    let y1 = exp(f32x4_sub(v128_load(at.add(1)), vmax), &k);
                    v128_store(at, y0);
                    v128_store(at.add(1), y1);
                    sum = f32x4_add(f32x4_add(sum, y0), y1);
                    i += 8;
                }
                if i < row_len {
                    let at = p.add(i) as *mut v128;
                    let y = exp(f32x4_sub(v128_load(at), vmax), &k);
                    v128_store(at, y);
                    sum = f32x4_add(sum, y);
                }
                let total = f32x4_extract_lane::<0>(sum)
                    + f32x4_extract_lane::<1>(sum)
                    + f32x4_extract_lane::<2>(sum)
                    + f32x4_extract_lane::<3>(sum);
                let r = f32x4_splat(total.recip());
                let mut i = 0;
                while i + 16 <= row_len {
                    let at = opaque(p.add(i)) as *mut v128;
                    let (mut y0, mut y1) = (f32x4_mul(v128_load(at), r), f32x4_mul(v128_load(at.add(1)), r));
                    let (mut y2, mut y3) = (f32x4_mul(v128_load(at.add(2)), r), f32x4_mul(v128_load(at.add(3)), r));
                    if let Some((q, d)) = after {
                        (y0, y1) = (d.apply(q.quantized(y0)), d.apply(q.quantized(y1)));
                        (y2, y3) = (d.apply(q.quantized(y2)), d.apply(q.quantized(y3)));
                    }
                    v128_store(at, y0);
                    v128_store(at.add(1), y1);
                    v128_store(at.add(2), y2);
                    v128_store(at.add(3), y3);
                    i += 16;
                }
                while i + 8 <= row_len {
                    let at = opaque(p.add(i)) as *mut v128;
                    let (mut y0, mut y1) = (f32x4_mul(v128_load(at), r), f32x4_mul(v128_load(at.add(1)), r));
                    if let Some((q, d)) = after {
                        (y0, y1) = (d.apply(q.quantized(y0)), d.apply(q.quantized(y1)));
                    }
                    v128_store(at, y0);
                    v128_store(at.add(1), y1);
                    i += 8;
                }
                if i < row_len {
                    let at = p.add(i) as *mut v128;
                    let mut y = f32x4_mul(v128_load(at), r);
                    if let Some((q, d)) = after {
                        y = d.apply(q.quantized(y));
                    }
                    v128_store(at, y);
                }
            }
        }
    }

    /// One pass's work on one row of a strip of columns, for the vectors named (a local and the
    /// strip's offset in vectors each): the first pass's (the fake quantization, the scale and
    /// the row's mask value, written back where `rewrite`, and the columns' maxima).
    macro_rules! first_pass_row {
        ($at:expr, $affine:expr, $mask:expr, $vscale:expr, $before:expr, $rewrite:expr; $($x:ident $max:ident $o:literal),+) => {{
            let at = $at;
            $( let mut $x = v128_load(at.add($o)); )+
            if let Some((q, d)) = $before {
                $( $x = d.apply(q.quantized($x)); )+
            }
            if $affine {
                let mask = f32x4_splat($mask);
                $( $x = f32x4_add(f32x4_mul($x, $vscale), mask); )+
            }
            if $rewrite {
                $( v128_store(at.add($o), $x); )+
            }
            $( $max = f32x4_pmax($max, $x); )+
        }};
    }

    /// The exponentials of one row of a strip, written back and added to that row's partial sums.
    macro_rules! exponentials_row {
        ($at:expr, $k:expr; $($y:ident $max:ident $sum:ident $o:literal),+) => {{
            let at = $at;
            $( let $y = exp(f32x4_sub(v128_load(at.add($o)), $max), $k); )+
            $( v128_store(at.add($o), $y); )+
            $( $sum = f32x4_add($sum, $y); )+
        }};
    }

    /// One row of a strip times its columns' inverse sums, fake quantized where there is one.
    macro_rules! last_pass_row {
        ($at:expr, $after:expr; $($y:ident $inverse:ident $o:literal),+) => {{
            let at = $at;
            $( let mut $y = f32x4_mul(v128_load(at.add($o)), $inverse); )+
            if let Some((q, d)) = $after {
                $( $y = d.apply(q.quantized($y)); )+
            }
            $( v128_store(at.add($o), $y); )+
        }};
    }

    /// `1 / total` of four partial sums, the total the row kernel's: the sum of rows ≡ 0 (mod 4)
    /// plus that of rows ≡ 1, then ≡ 2, then ≡ 3, as its lanes 0 to 3.
    #[inline(always)]
    fn inverse_total(s0: v128, s1: v128, s2: v128, s3: v128, one: v128) -> v128 {
        f32x4_div(one, f32x4_add(f32x4_add(f32x4_add(s0, s1), s2), s3))
    }

    /// The exponentials of sixteen columns from `p` down `rows` rows `columns` apart, less their
    /// `maxima`, written back, and the inverses of their sums. Not inlined: its one copy serves
    /// every strip of sixteen or thirty-two columns of both kinds of softmax (about 5 KB each).
    ///
    /// # Safety
    ///
    /// `p` is a matrix's column whose sixteen columns from it lie within each of `rows` rows
    /// (a multiple of four) `columns` values apart.
    #[inline(never)]
    unsafe fn exponentials_of_sixteen(p: *mut f32, rows: usize, columns: usize, maxima: [v128; 4]) -> [v128; 4] {
        let k = Constants::new();
        let [a0, a1, a2, a3] = maxima;
        let zero = f32x4_splat(0.0);
        let (mut s00, mut s01, mut s02, mut s03) = (zero, zero, zero, zero);
        let (mut s10, mut s11, mut s12, mut s13) = (zero, zero, zero, zero);
        let (mut s20, mut s21, mut s22, mut s23) = (zero, zero, zero, zero);
        let (mut s30, mut s31, mut s32, mut s33) = (zero, zero, zero, zero);
        let mut r = 0;
        while r < rows {
            // SAFETY: rows r to r + 3 are the matrix's (r < rows, a multiple of four), and their
            // sixteen columns from p (the caller's).
            unsafe {
                let row = |r: usize| opaque(p.add(r * columns)) as *mut v128;
                exponentials_row!(row(r), &k; y0 a0 s00 0, y1 a1 s01 1, y2 a2 s02 2, y3 a3 s03 3);
                exponentials_row!(row(r + 1), &k; y0 a0 s10 0, y1 a1 s11 1, y2 a2 s12 2, y3 a3 s13 3);
                exponentials_row!(row(r + 2), &k; y0 a0 s20 0, y1 a1 s21 1, y2 a2 s22 2, y3 a3 s23 3);
                exponentials_row!(row(r + 3), &k; y0 a0 s30 0, y1 a1 s31 1, y2 a2 s32 2, y3 a3 s33 3);
            }
            r += 4;
        }
        let one = f32x4_splat(1.0);
        [
            inverse_total(s00, s10, s20, s30, one),
            inverse_total(s01, s11, s21, s31, one),
            inverse_total(s02, s12, s22, s32, one),
            inverse_total(s03, s13, s23, s33, one),
        ]
    }

    /// Every column of each `rows × columns` matrix (see [`super::softmax_columns`]): strips of
    /// thirty-two columns while there are, then of sixteen, then of four; each strip's three
    /// passes go down its rows, the exponentials' four rows a turn (one partial sum each).
    pub fn softmax_columns<const AFFINE: bool>(
        values: &mut [f32],
        rows: usize,
        columns: usize,
        scale: f32,
        mask: &[f32],
        around: super::Around,
    ) {
        let Setup { k, vscale, before, after, rewrite } = Setup::new(AFFINE, scale, around);
        let m = mask.as_ptr();
        let neg_inf = f32x4_splat(f32::NEG_INFINITY);
        let (zero, one) = (f32x4_splat(0.0), f32x4_splat(1.0));
        let matrices = values.len() / (rows * columns);
        let base = values.as_mut_ptr();
        for matrix in 0..matrices {
            // SAFETY: (for the block) every vector read or written is in matrix `matrix`'s
            // `rows` rows, at columns j..j + 32 (or j..j + 16, j..j + 4) below `columns` (a
            // multiple of four); the matrices are whole (asserted by the caller); the mask holds `rows`
            // values where AFFINE (asserted by the caller).
            unsafe {
                let p = base.add(matrix * rows * columns);
                // Row r's vectors from column j.
                macro_rules! row {
                    ($r:expr, $j:expr) => {
                        opaque(p.add($r * columns + $j)) as *mut v128
                    };
                }
                let mut j = 0;
                // Strips of thirty-two columns: the first and last passes eight vectors a row
                // (each row's mask, pointer and turn paid once for them), the exponentials'
                // pass sixteen columns at a time.
                while j + 32 <= columns {
                    let (mut a0, mut a1, mut a2, mut a3) = (neg_inf, neg_inf, neg_inf, neg_inf);
                    let (mut a4, mut a5, mut a6, mut a7) = (neg_inf, neg_inf, neg_inf, neg_inf);
                    for r in 0..rows {
                        let mask = if AFFINE { *m.add(r) } else { 0.0 };
                        first_pass_row!(row!(r, j), AFFINE, mask, vscale, before, rewrite;
                            x0 a0 0, x1 a1 1, x2 a2 2, x3 a3 3, x4 a4 4, x5 a5 5, x6 a6 6, x7 a7 7);
                    }
                    let [i0, i1, i2, i3] = exponentials_of_sixteen(p.add(j), rows, columns, [a0, a1, a2, a3]);
                    let [i4, i5, i6, i7] = exponentials_of_sixteen(p.add(j + 16), rows, columns, [a4, a5, a6, a7]);
                    for r in 0..rows {
                        last_pass_row!(row!(r, j), after;
                            y0 i0 0, y1 i1 1, y2 i2 2, y3 i3 3, y4 i4 4, y5 i5 5, y6 i6 6, y7 i7 7);
                    }
                    j += 32;
                }
                while j + 16 <= columns {
                    let (mut a0, mut a1, mut a2, mut a3) = (neg_inf, neg_inf, neg_inf, neg_inf);
                    for r in 0..rows {
                        let mask = if AFFINE { *m.add(r) } else { 0.0 };
                        first_pass_row!(row!(r, j), AFFINE, mask, vscale, before, rewrite; x0 a0 0, x1 a1 1, x2 a2 2, x3 a3 3);
                    }
                    let [i0, i1, i2, i3] = exponentials_of_sixteen(p.add(j), rows, columns, [a0, a1, a2, a3]);
                    for r in 0..rows {
                        last_pass_row!(row!(r, j), after; y0 i0 0, y1 i1 1, y2 i2 2, y3 i3 3);
                    }
                    j += 16;
                }
                while j < columns {
                    let mut a0 = neg_inf;
                    for r in 0..rows {
                        let mask = if AFFINE { *m.add(r) } else { 0.0 };
                        first_pass_row!(row!(r, j), AFFINE, mask, vscale, before, rewrite; x0 a0 0);
                    }
                    let (mut s0, mut s1, mut s2, mut s3) = (zero, zero, zero, zero);
                    let mut r = 0;
                    while r < rows {
                        exponentials_row!(row!(r, j), &k; y0 a0 s0 0);
                        exponentials_row!(row!(r + 1, j), &k; y0 a0 s1 0);
                        exponentials_row!(row!(r + 2, j), &k; y0 a0 s2 0);
                        exponentials_row!(row!(r + 3, j), &k; y0 a0 s3 0);
                        r += 4;
                    }
                    let i0 = inverse_total(s0, s1, s2, s3, one);
                    for r in 0..rows {
                        last_pass_row!(row!(r, j), after; y0 i0 0);
                    }
                    j += 4;
                }
            }
        }
    }
}

/// [`softmax_rows`] against [`reference::softmax_rows`] on rows of 4 to 40 values (whole turns of
/// two vectors and not), among them a row holding a NaN, a row of −∞ but one value, rows where
/// exponentials underflow, without and with a scale and a mask (−∞ at some columns) and fake
/// quantizations before and after, and in the
/// canister against tract's own `Softmax` operator, bit for bit: an error names the first
/// difference.
pub fn check() -> Result<(), String> {
    for row_len in (4..=40).step_by(4) {
        let rows = 5;
        let mut values: Vec<f32> = (0..rows * row_len).map(|i| ((i as f32) * 0.37).sin() * 9.0 - 2.0).collect();
        values[row_len + 1] = f32::NAN;
        for (i, v) in values[2 * row_len..3 * row_len].iter_mut().enumerate() {
            *v = if i == row_len / 2 { 3.0 } else { f32::NEG_INFINITY };
        }
        for (i, v) in values[3 * row_len..4 * row_len].iter_mut().enumerate() {
            *v = i as f32 * 40.0 - 200.0;
        }
        let mask: Vec<f32> =
            (0..row_len).map(|i| if i % 5 == 3 { f32::NEG_INFINITY } else { i as f32 * 0.25 - 1.0 }).collect();
        for around in arounds_to_check(Affine { scale: 0.176_776_7, mask: &mask }) {
            let mut got = values.clone();
            softmax_rows(&mut got, row_len, around);
            let mut want = values.clone();
            reference::softmax_rows(&mut want, row_len, around);
            if let Some(at) = (0..got.len()).find(|&i| !same_bits_or_nan(got[i], want[i])) {
                return Err(format!(
                    "softmax of rows of {row_len}: value {at} is {:e}, the reference's {:e}",
                    got[at], want[at]
                ));
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            if around.before.is_none() && around.affine.is_none() && around.after.is_none() {
                let tract = tracts(&values, row_len).map_err(|e| format!("tract's Softmax: {e}"))?;
                if let Some(at) = (0..got.len()).find(|&i| !same_bits_or_nan(got[i], tract[i])) {
                    return Err(format!(
                        "softmax of rows of {row_len}: value {at} is {:e}, tract's {:e}",
                        got[at], tract[at]
                    ));
                }
            }
        }
    }
    check_columns()
}

/// What the checks compute around the softmax: nothing, `affine`, and a QDQ model's fake
/// quantizations of the scores and probabilities (u8, as onnxruntime's static quantizer makes
/// them) with and without `affine`.
fn arounds_to_check(affine: Affine) -> [Around; 4] {
    use tract_onnx::prelude::Datum;
    let scores = (
        Quantize { inv_scale: 1.0 / 0.07, zero_point: 130, dt: u8::datum_type() },
        Dequantize { scale: 0.07, zero_point: 130 },
    );
    let probabilities = (
        Quantize { inv_scale: 255.0, zero_point: 0, dt: u8::datum_type() },
        Dequantize { scale: 1.0 / 255.0, zero_point: 0 },
    );
    [
        Around::default(),
        Around { affine: Some(affine), ..Around::default() },
        Around { before: Some(scores), affine: Some(affine), after: Some(probabilities) },
        Around { before: Some(scores), after: Some(probabilities), ..Around::default() },
    ]
}

/// [`softmax_columns`] against [`softmax_rows`] of the transposed matrices, bit for bit: two
/// matrices of 4 to 40 rows by 4 to 52 columns (strips of thirty-two, sixteen and four), a column holding
/// a NaN, a column of −∞ but one value, a column whose exponentials underflow, without and with
/// a scale and a mask and fake quantizations.
fn check_columns() -> Result<(), String> {
    for rows in (4..=40).step_by(4) {
        for columns in [4, 16, 20, 36, 52] {
            let matrices = 2;
            // As rows: each column of the matrices below is one row here.
            let mut as_rows: Vec<f32> =
                (0..matrices * columns * rows).map(|i| ((i as f32) * 0.53).cos() * 8.0 - 1.5).collect();
            as_rows[rows + 1] = f32::NAN;
            if columns > 2 {
                for (i, v) in as_rows[2 * rows..3 * rows].iter_mut().enumerate() {
                    *v = if i == rows / 2 { 2.0 } else { f32::NEG_INFINITY };
                }
            }
            if columns > 3 {
                for (i, v) in as_rows[3 * rows..4 * rows].iter_mut().enumerate() {
                    *v = i as f32 * 45.0 - 210.0;
                }
            }
            let transpose = |from: &[f32], from_rows: usize, from_columns: usize| {
                let mut to = vec![0f32; from.len()];
                for (src, dst) in from.chunks(from_rows * from_columns).zip(to.chunks_mut(from_rows * from_columns)) {
                    for r in 0..from_rows {
                        for c in 0..from_columns {
                            dst[c * from_rows + r] = src[r * from_columns + c];
                        }
                    }
                }
                to
            };
            let as_columns = transpose(&as_rows, columns, rows);
            let mask: Vec<f32> =
                (0..rows).map(|i| if i % 7 == 5 { f32::NEG_INFINITY } else { i as f32 * 0.3 - 2.0 }).collect();
            for around in arounds_to_check(Affine { scale: 0.125, mask: &mask }) {
                let mut want = as_rows.clone();
                softmax_rows(&mut want, rows, around);
                let mut got = as_columns.clone();
                softmax_columns(&mut got, rows, columns, around);
                let got = transpose(&got, rows, columns);
                if let Some(at) = (0..got.len()).find(|&i| !same_bits_or_nan(got[i], want[i])) {
                    return Err(format!(
                        "softmax of columns of {rows} ({columns} columns): value {at} (as rows) is {:e}, the rows' {:e}",
                        got[at], want[at]
                    ));
                }
            }
        }
    }
    Ok(())
}

/// tract's `Softmax` operator over the last axis of `[values.len() / row_len, row_len]`.
#[cfg_attr(not(all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))]
fn tracts(values: &[f32], row_len: usize) -> tract_onnx::prelude::TractResult<Vec<f32>> {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::internal::{EvalContext, EvalOp};
    use tract_onnx::tract_core::ops::nn::{Softmax, SoftmaxKind};
    let input = tensor1(values).into_shape(&[values.len() / row_len, row_len])?;
    let op = Softmax { axes: tvec!(1), quant_output_dt: None, kind: SoftmaxKind::Softmax };
    let out = op.eval(&EvalContext::out_of_plan(), tvec!(input.into_tvalue()))?;
    Ok(out[0].try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_equals_the_reference() {
        check().unwrap();
    }

    /// Natively tract's softmax runs x86_64's kernels: the reference is within a few units in
    /// the last place of it, and its rows sum to one.
    #[test]
    fn the_reference_is_tracts_softmax_within_rounding() {
        for row_len in [4usize, 12, 32, 128] {
            let values: Vec<f32> = (0..7 * row_len).map(|i| ((i as f32) * 0.61).cos() * 12.0).collect();
            let tract = tracts(&values, row_len).unwrap();
            let mut ours = values.clone();
            reference::softmax_rows(&mut ours, row_len, Around::default());
            for (a, b) in ours.iter().zip(&tract) {
                assert!((a - b).abs() <= 1e-6 + 1e-5 * b.abs(), "rows of {row_len}: {a} against tract's {b}");
            }
            for row in ours.chunks(row_len) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
    }
}
