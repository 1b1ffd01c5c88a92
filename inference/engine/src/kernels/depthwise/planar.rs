//! The depthwise kernel's planar (CHW) path: one channel at a time, four adjacent outputs of a
//! row a vector, read from the channel's own plane and written straight into its output plane.
//!
//! Each channel is first copied into a [`Padded`] plane, the padding's zeros around it (zeroed
//! once per image; the copies write only the channel's values), so no output is an edge case.
//! For a column stride of two the plane is split into its even and odd columns ("phases"):
//! output columns `x..x + 4` then read four adjacent values of one phase at every tap, as they
//! do at stride one. A tap costs a load at a constant offset from its window row's pointer, the
//! weight (splatted once per channel, a local), a multiply and an add; the vectors of a unit
//! (four, two or one) share their window rows' pointers. Those pointers are computed from one
//! opaque pointer per unit (`black_box`): otherwise LLVM's loop strength reduction moves the loads' base to the
//! middle of the window, and a wasm load's offset cannot be negative, so every load paid an
//! `i32.add` (measured on the replica: `benchmarks/profile.md`, `Depthwise`).
//!
//! Replacing the four-channel blocks ([`super::Blocked`]) for planar images removed their
//! 4 × 4 transpositions in and out, and the zeroing of a whole padded copy of the image.

use super::{padded_extent, Activation, DepthwiseKernels};
use crate::kernels::integer_conv::pack::Geometry;
use crate::kernels::opaque;

/// Values past a [`Padded`] plane's last row: what a row of outputs taken in whole vectors reads
/// past its window's reach.
const SLACK: usize = 3;

/// One channel's image with zeros around it, as far as any tap of any output reads, split into
/// `phases` planes of its columns (`x % phases`; two for a column stride of two, else one). The
/// padding is zeroed when the buffer is made; [`Padded::fill`] writes only the channel's values,
/// so one buffer serves every channel of every image.
pub struct Padded {
    geometry: Geometry,
    phases: usize,
    rows: usize,
    /// Values per row of one phase.
    columns: usize,
    /// Where a row's first image column lands, from its padded row's start in the buffer (and,
    /// with two phases, its second column, in the other phase).
    first: [usize; 2],
    values: Vec<f32>,
}

impl Padded {
    /// A zeroed buffer for the channels of a convolution of `geometry`.
    pub fn new(geometry: &Geometry) -> Padded {
        let g = geometry;
        let [rows, width] = padded_extent(g);
        let phases = if g.strides[1] == 2 { 2 } else { 1 };
        let columns = width.div_ceil(phases);
        // Image column x lands in padded column left + x: phase (left + x) % phases, at
        // (left + x) / phases in it.
        let left = g.pad_before[1];
        let lands = |x: usize| ((left + x) % phases) * rows * columns + (left + x) / phases;
        Padded {
            geometry: g.clone(),
            phases,
            rows,
            columns,
            first: [lands(0), lands(1)],
            // Three values of slack: a row taken in whole vectors reads up to three values past
            // its window rows' reach (`simd::plane`).
            values: vec![0.0; phases * rows * columns + SLACK],
        }
    }

    /// Values from one phase's plane to the next.
    fn phase_stride(&self) -> usize {
        self.rows * self.columns
    }

    /// The value at padded row `y`, padded column `x`.
    fn at(&self, y: usize, x: usize) -> f32 {
        self.values[(x % self.phases) * self.phase_stride() + y * self.columns + x / self.phases]
    }

    /// The values from padded row `y`'s place `x` in phase `phase` (padded column
    /// `x · phases + phase`) to the buffer's end: a strided convolution's im2col copies its rows
    /// from here ([`crate::kernels::float_conv::im2col`]).
    pub fn phase_row(&self, phase: usize, y: usize, x: usize) -> &[f32] {
        assert!(phase < self.phases && y < self.rows && x < self.columns);
        &self.values[phase * self.phase_stride() + y * self.columns + x..]
    }

    /// Values from one padded row of a phase to the next.
    pub fn row_length(&self) -> usize {
        self.columns
    }

    /// Copies one `[h, w]` channel, the first `h · w` values of `channel`, into the interior.
    ///
    /// Rows are copied without a bound per row: the bounds are checked once per channel,
    /// because the slicing and divisions of a checked copy per row cost several times the copy
    /// of a 14-value row (`benchmarks/profile.md`, `Depthwise`).
    pub fn fill(&mut self, channel: &[f32]) {
        let g = &self.geometry;
        let ([h, w], top) = (g.input, g.pad_before[0]);
        assert!(channel.len() >= h * w);
        if h == 0 || w == 0 {
            return;
        }
        let (columns, [first, second]) = (self.columns, self.first);
        // The last row's values land inside the buffer (Padded::new: rows >= top + h and
        // columns >= the last image column's place in its phase); so do all rows before it.
        let last_row = (top + h - 1) * columns;
        let fits = match self.phases {
            1 => first + last_row + w <= self.values.len(),
            _ => {
                first + last_row + w.div_ceil(2) <= self.values.len() && second + last_row + w / 2 <= self.values.len()
            }
        };
        assert!(fits);
        // Rows by pointers that step a row at a time, in two loops (one a phase count), and
        // the copies inlined: a call and the divisions of a general strided copy per row cost
        // more than a narrow row's values (`benchmarks/NOTES.md`, "Depthwise planes filled
        // row by row inline").
        let (from, values) = (channel.as_ptr(), self.values.as_mut_ptr());
        // SAFETY: (for both branches) row iy reads channel[iy · w..][..w], in bounds by the
        // first assert, and writes the row's values at (top + iy) · columns from `first` (and
        // `second`), in bounds by the second.
        unsafe {
            let into = values.add(first + top * columns);
            if self.phases == 1 {
                copy_rows(from, w, into, columns, h, w);
            } else {
                split_rows(from, into, values.add(second + top * columns), h, w, columns);
            }
        }
    }
}

/// `$unit!(i)` for every i below `$n − 1`, for `$n` from 1 to 8 (a run or a rest of `$n` units):
/// every unit but the last, which the caller places itself (a run's at `$unit!(n − 1)`, a rest's
/// ending at the row's end).
macro_rules! tail {
    ($n:expr, $unit:ident) => {
        match $n {
            1 => {}
            2 => $unit!(0),
            3 => {
                $unit!(0);
                $unit!(1)
            }
            4 => {
                $unit!(0);
                $unit!(1);
                $unit!(2)
            }
            5 => {
                $unit!(0);
                $unit!(1);
                $unit!(2);
                $unit!(3)
            }
            6 => {
                $unit!(0);
                $unit!(1);
                $unit!(2);
                $unit!(3);
                $unit!(4)
            }
            7 => {
                $unit!(0);
                $unit!(1);
                $unit!(2);
                $unit!(3);
                $unit!(4);
                $unit!(5)
            }
            _ => {
                $unit!(0);
                $unit!(1);
                $unit!(2);
                $unit!(3);
                $unit!(4);
                $unit!(5);
                $unit!(6)
            }
        }
    };
}

/// `h` rows of `w` values, `from_stride` apart from `from`, copied `into_stride` apart into `into`
/// (a channel into its padded plane, or a strided convolution's im2col rows out of one).
///
/// Each row goes by vectors: runs of eight at constant offsets from pointers made opaque to
/// LLVM's loop strength reduction (which otherwise moves them and loses every load's and
/// store's offset, an `i32.add` each), then the rest by a branch on their count (the same for
/// every row), the last vector ending at the row's end (overlapping the one before; the same
/// values written twice). A loop over a row's vectors cost about 14 instructions a vector in its
/// tests and pointer updates, most of a 14-value row's copy (`benchmarks/NOTES.md`, "Depthwise
/// rows copied by straight-line code").
///
/// # Safety
/// Every row's `w` values are readable at `from + iy · from_stride` and writable at
/// `into + iy · into_stride`, and the two do not overlap.
#[inline(always)]
pub(crate) unsafe fn copy_rows(
    from: *const f32,
    from_stride: usize,
    into: *mut f32,
    into_stride: usize,
    h: usize,
    w: usize,
) {
    if w < 4 {
        let (mut from, mut into) = (from, into);
        for _ in 0..h {
            // SAFETY: the caller's.
            unsafe { core::ptr::copy_nonoverlapping(from, into, w) };
            // Wrapping: past the last row the pointers may leave the buffers; they are not used.
            (from, into) = (from.wrapping_add(from_stride), into.wrapping_add(into_stride));
        }
        return;
    }
    // The branch on the rest's count taken once per channel, not once per row.
    // SAFETY: the caller's.
    unsafe {
        match (w.div_ceil(4) - 1) % 8 + 1 {
            1 => copy_rows_ending::<1>(from, from_stride, into, into_stride, h, w),
            2 => copy_rows_ending::<2>(from, from_stride, into, into_stride, h, w),
            3 => copy_rows_ending::<3>(from, from_stride, into, into_stride, h, w),
            4 => copy_rows_ending::<4>(from, from_stride, into, into_stride, h, w),
            5 => copy_rows_ending::<5>(from, from_stride, into, into_stride, h, w),
            6 => copy_rows_ending::<6>(from, from_stride, into, into_stride, h, w),
            7 => copy_rows_ending::<7>(from, from_stride, into, into_stride, h, w),
            _ => copy_rows_ending::<8>(from, from_stride, into, into_stride, h, w),
        }
    }
}

/// [`copy_rows`] for rows of w ≥ 4 values whose vectors after the runs of eight are `REST`.
///
/// # Safety
/// As for [`copy_rows`].
#[inline(always)]
unsafe fn copy_rows_ending<const REST: usize>(
    mut from: *const f32,
    from_stride: usize,
    mut into: *mut f32,
    into_stride: usize,
    h: usize,
    w: usize,
) {
    let runs = (w.div_ceil(4) - REST) / 8;
    for _ in 0..h {
        // SAFETY: the row's vectors are its values 0..w (the runs' 32 · runs + 4 · (REST − 1) =
        // 4 · (vectors − 1) < w, then w − 4..w), readable at `from` and writable at `into`.
        unsafe {
            let (mut f, mut t) = (from, into);
            macro_rules! unit {
                ($i:literal) => {
                    copy4(f.add($i * 4), t.add($i * 4))
                };
            }
            for _ in 0..runs {
                (f, t) = (opaque(f), opaque(t));
                tail!(8, unit);
                unit!(7);
                (f, t) = (f.add(32), t.add(32));
            }
            tail!(REST, unit);
            copy4(from.add(w - 4), into.add(w - 4));
            // Wrapping: past the last row the pointers may leave the buffers; they are not used.
            (from, into) = (from.wrapping_add(from_stride), into.wrapping_add(into_stride));
        }
    }
}

/// `h` rows of `w` values, `w` apart from `from`, split into their even and odd columns,
/// `columns` apart from `evens` and `odds` (as [`split`] does), with runs of four splits of eight
/// values and the rest by a branch on their count, as [`copy_rows`] copies.
///
/// # Safety
/// As for [`split`], for every row: `w` values readable at `from + iy · w`, ⌈w/2⌉ writable at
/// `evens + iy · columns` and ⌊w/2⌋ at `odds + iy · columns`.
#[inline(always)]
unsafe fn split_rows(from: *const f32, evens: *mut f32, odds: *mut f32, h: usize, w: usize, columns: usize) {
    if w / 2 < 4 {
        let (mut from, mut evens, mut odds) = (from, evens, odds);
        for _ in 0..h {
            // SAFETY: the caller's.
            unsafe { split(from, w, evens, odds) };
            // Wrapping: past the last row the pointers may leave the buffers; they are not used.
            (from, evens, odds) = (from.wrapping_add(w), evens.wrapping_add(columns), odds.wrapping_add(columns));
        }
        return;
    }
    // SAFETY: the caller's.
    unsafe {
        match ((w / 2).div_ceil(4) - 1) % 4 + 1 {
            1 => split_rows_ending::<1>(from, evens, odds, h, w, columns),
            2 => split_rows_ending::<2>(from, evens, odds, h, w, columns),
            3 => split_rows_ending::<3>(from, evens, odds, h, w, columns),
            _ => split_rows_ending::<4>(from, evens, odds, h, w, columns),
        }
    }
}

/// [`split_rows`] for rows of w ≥ 8 values whose splits after the runs of four are `REST`.
///
/// # Safety
/// As for [`split_rows`].
#[inline(always)]
unsafe fn split_rows_ending<const REST: usize>(
    mut from: *const f32,
    mut evens: *mut f32,
    mut odds: *mut f32,
    h: usize,
    w: usize,
    columns: usize,
) {
    let pairs = w / 2;
    let runs = (pairs.div_ceil(4) - REST) / 4;
    for _ in 0..h {
        // SAFETY: the row's splits cover pairs 0..pairs (the runs' and the rest's 4 · (splits −
        // 1) < pairs, then pairs − 4..pairs), within the caller's bounds; an odd width's last
        // value is even column ⌊w/2⌋.
        unsafe {
            let (mut f, mut e, mut o) = (from, evens, odds);
            macro_rules! unit {
                ($i:literal) => {
                    split8(f.add($i * 8), e.add($i * 4), o.add($i * 4))
                };
            }
            for _ in 0..runs {
                (f, e, o) = (opaque(f), opaque(e), opaque(o));
                tail!(4, unit);
                unit!(3);
                (f, e, o) = (f.add(32), e.add(16), o.add(16));
            }
            tail!(REST, unit);
            split8(from.add(2 * pairs - 8), evens.add(pairs - 4), odds.add(pairs - 4));
            if w % 2 == 1 {
                *evens.add(pairs) = *from.add(2 * pairs);
            }
            // Wrapping: past the last row the pointers may leave the buffers; they are not used.
            (from, evens, odds) = (from.wrapping_add(w), evens.wrapping_add(columns), odds.wrapping_add(columns));
        }
    }
}

/// Four adjacent values from `from` to `into`: one vector on wasm simd128.
///
/// # Safety
/// Four values are readable at `from` and writable at `into`, and the two do not overlap.
#[inline(always)]
unsafe fn copy4(from: *const f32, into: *mut f32) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    // SAFETY: the caller's.
    unsafe {
        use core::arch::wasm32::*;
        v128_store(into as *mut v128, v128_load(from as *const v128));
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    // SAFETY: the caller's.
    unsafe {
        core::ptr::copy_nonoverlapping(from, into, 4)
    };
}

/// One row of `w` values split into its even and odd columns: `evens[i] = from[2i]` for
/// i < ⌈w/2⌉, `odds[i] = from[2i + 1]` for i < ⌊w/2⌋. Eight values at a time on wasm simd128 (two
/// loads, two shuffles, two stores), the last eight overlapping the ones before.
///
/// # Safety
/// `w` values are readable at `from`, ⌈w/2⌉ writable at `evens` and ⌊w/2⌋ at `odds`.
#[inline(always)]
unsafe fn split(from: *const f32, w: usize, evens: *mut f32, odds: *mut f32) {
    let pairs = w / 2;
    let mut i = 0;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if pairs >= 4 {
        let last = pairs - 4;
        while i < last {
            // SAFETY: i + 4 <= pairs: from[2i..2i + 8] is readable, evens[i..i + 4] and
            // odds[i..i + 4] writable.
            unsafe { split8(from.add(2 * i), evens.add(i), odds.add(i)) };
            i += 4;
        }
        // SAFETY: as above for i = last = pairs − 4.
        unsafe { split8(from.add(2 * last), evens.add(last), odds.add(last)) };
        i = pairs;
    }
    while i < pairs {
        // SAFETY: 2i + 1 < w, i < ⌊w/2⌋.
        unsafe {
            *evens.add(i) = *from.add(2 * i);
            *odds.add(i) = *from.add(2 * i + 1);
        }
        i += 1;
    }
    if w % 2 == 1 {
        // SAFETY: 2 · pairs = w − 1 < w, pairs < ⌈w/2⌉.
        unsafe { *evens.add(pairs) = *from.add(2 * pairs) };
    }
}

/// Eight values split into their four even and four odd ones (one value at a time off wasm
/// simd128).
///
/// # Safety
/// Eight values are readable at `from`, four writable at `evens` and at `odds`.
#[inline(always)]
unsafe fn split8(from: *const f32, evens: *mut f32, odds: *mut f32) {
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for i in 0..4 {
        // SAFETY: the caller's.
        unsafe {
            *evens.add(i) = *from.add(2 * i);
            *odds.add(i) = *from.add(2 * i + 1);
        }
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    // SAFETY: the caller's.
    unsafe {
        use core::arch::wasm32::*;
        let (a, b) = (v128_load(from as *const v128), v128_load(from.add(4) as *const v128));
        v128_store(evens as *mut v128, i32x4_shuffle::<0, 2, 4, 6>(a, b));
        v128_store(odds as *mut v128, i32x4_shuffle::<1, 3, 5, 7>(a, b));
    }
}

/// The output of a planar `[C, h, w]` image `x` as `[C, oh, ow]` by kernel family `K`: each
/// channel copied into `padded` (made for the same geometry), then [`DepthwiseKernels::plane`].
/// `weights` are `[C, kh · kw]`, `bias` one per channel, `scale` (if any) for every channel.
/// `out` starts with the `C` output planes; values after them may be written over (each plane's
/// kernel may write a few values past it, [`DepthwiseKernels::plane`]).
pub fn planar<K: DepthwiseKernels>(
    padded: &mut Padded,
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    scale: Option<f32>,
    activation: Activation,
    out: &mut [f32],
) {
    let g = padded.geometry.clone();
    let ([h, w], taps, pixels) = (g.input, g.kernel[0] * g.kernel[1], g.pixels());
    assert!(x.len() >= g.channels * h * w && weights.len() >= g.channels * taps && bias.len() >= g.channels);
    assert!(out.len() >= g.channels * pixels);
    for c in 0..g.channels {
        // SAFETY: c < channels: the channel's values, weights, bias and output plane are in
        // bounds by the asserts above. (A checked slicing is a call at the canister's opt-level,
        // several a channel: `benchmarks/NOTES.md`, "Depthwise channels without checked slices".)
        let (image, window, b, plane) = unsafe {
            (
                x.get_unchecked(c * h * w..),
                weights.get_unchecked(c * taps..c * taps + taps),
                *bias.get_unchecked(c),
                out.get_unchecked_mut(c * pixels..),
            )
        };
        padded.fill(image);
        K::plane(padded, window, b, scale, activation, plane);
    }
}

/// [`DepthwiseKernels::plane`] one output at a time: `bias + Σ w · x` in (kernel row, kernel
/// column) order (or `(Σ w · x) · scale + bias`), then the activation.
pub fn scalar_plane(
    padded: &Padded,
    weights: &[f32],
    bias: f32,
    scale: Option<f32>,
    activation: Activation,
    out: &mut [f32],
) {
    scalar_rows(padded, weights, bias, scale, activation, out, 0);
}

/// [`scalar_plane`]'s rows from `from` on.
fn scalar_rows(
    padded: &Padded,
    weights: &[f32],
    bias: f32,
    scale: Option<f32>,
    activation: Activation,
    out: &mut [f32],
    from: usize,
) {
    let g = &padded.geometry;
    let ([oh, ow], [kh, kw], [sy, sx], [dy, dx]) = (g.output, g.kernel, g.strides, g.dilations);
    for oy in from..oh {
        for ox in 0..ow {
            let mut acc = if scale.is_some() { 0.0 } else { bias };
            for ky in 0..kh {
                for kx in 0..kw {
                    acc += padded.at(oy * sy + ky * dy, ox * sx + kx * dx) * weights[ky * kw + kx];
                }
            }
            if let Some(s) = scale {
                acc = acc * s + bias;
            }
            out[oy * ow + ox] = activation.apply(acc);
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod simd {
    use core::arch::wasm32::*;
    use core::hint::black_box;

    use super::*;
    use crate::kernels::activation::{activate, activate_each};
    use crate::kernels::depthwise::vectorised;

    /// [`DepthwiseKernels::plane`] four outputs a vector for the [`vectorised`] windows on rows
    /// of at least four outputs; the rest as [`scalar_plane`], and so is the last row where
    /// `out` ends too soon for its extra outputs.
    pub fn plane(
        padded: &Padded,
        weights: &[f32],
        bias: f32,
        scale: Option<f32>,
        activation: Activation,
        out: &mut [f32],
    ) {
        let g = &padded.geometry;
        if !vectorised(g) || g.output[1] < 4 {
            return scalar_plane(padded, weights, bias, scale, activation, out);
        }
        assert!(weights.len() >= g.kernel[0] * g.kernel[1] && out.len() >= g.pixels());
        // Every read below is within the buffer: Padded::new sized each phase's rows and
        // columns to the window's reach over every output, with SLACK after them.
        assert!(padded.values.len() >= padded.phases * padded.phase_stride() + SLACK);
        // Rows are taken in whole vectors, the last one's extra outputs (at most three) written
        // over the next row's first ones, which that row then writes: a 14-wide row is one unit
        // of four vectors instead of two pairs overlapping by two outputs. The last row's extra
        // outputs land on the next channel's plane, written after this one; after the last
        // plane, where `out` ends, that row is computed one output at a time.
        let [oh, ow] = g.output;
        let rows = if ow % 4 == 0 || out.len() >= g.pixels() + 3 { oh } else { oh.saturating_sub(1) };
        assert!(out.len() >= g.pixels() && (rows == 0 || out.len() >= (rows - 1) * ow + ow.next_multiple_of(4)));
        // SAFETY: the asserts above (the window's weights, the plane's outputs, every value a
        // tap reads).
        unsafe {
            // Scaled planes (dynamic int8 models) have loops of their own: a test on the scale
            // in the loops cost the f32 models' planes about three instructions an output.
            let (w, b, a) = (weights, bias, activation);
            match (g.kernel[0], g.strides[1], scale) {
                (3, 1, None) => plane_3::<1, false>(padded, w, b, 0.0, a, out, rows),
                (3, _, None) => plane_3::<2, false>(padded, w, b, 0.0, a, out, rows),
                (5, 1, None) => plane_5::<1, false>(padded, w, b, 0.0, a, out, rows),
                (_, _, None) => plane_5::<2, false>(padded, w, b, 0.0, a, out, rows),
                (3, 1, Some(s)) => plane_3::<1, true>(padded, w, b, s, a, out, rows),
                (3, _, Some(s)) => plane_3::<2, true>(padded, w, b, s, a, out, rows),
                (5, 1, Some(s)) => plane_5::<1, true>(padded, w, b, s, a, out, rows),
                (_, _, Some(s)) => plane_5::<2, true>(padded, w, b, s, a, out, rows),
            }
        }
        if rows < oh {
            scalar_rows(padded, weights, bias, scale, activation, out, rows);
        }
    }

    /// A scaled plane's sums, `sum · scale + bias` ([`DepthwiseKernels::plane`]).
    #[inline(always)]
    fn rescaled(sum: v128, scale: v128, bias: v128) -> v128 {
        f32x4_add(f32x4_mul(sum, scale), bias)
    }

    /// One vector's window summed onto `$bias`: `$rows[ky]` (and `$odd[ky]`, the odd phase's)
    /// point at the window's rows, the vector `$shift` values on from them; taps in (row,
    /// column) order, one chain on the wasm stack. At column stride two an even kernel column
    /// `kx` reads the even phase `kx / 2` on, an odd one the odd phase.
    macro_rules! window {
        ($bias:ident, $rows:ident, $odd:ident, $shift:literal, $w:ident, $k:literal, [$($ky:literal)*], $kxs:tt) => {{
            let mut acc = $bias;
            $( window!(@row acc, $rows, $odd, $shift, $w, $k, $ky, $kxs); )*
            acc
        }};
        (@row $acc:ident, $rows:ident, $odd:ident, $shift:literal, $w:ident, $k:literal, $ky:literal, [$($kx:literal)*]) => {
            $(
                let (from, column) = if S == 1 {
                    ($rows[$ky], $kx)
                } else if $kx % 2 == 0 {
                    ($rows[$ky], $kx / 2)
                } else {
                    ($odd[$ky], $kx / 2)
                };
                $acc = f32x4_add($acc, f32x4_mul(v128_load(from.add($shift + column) as *const v128), $w[$ky * $k + $kx]));
            )*
        };
    }

    /// The output plane of one channel's k×k window at column stride `S` (see the module's
    /// documentation): per output row, in whole vectors (see [`plane`]), units of four vectors
    /// (where `$quads`), pairs, then single vectors.
    /// `SCALED`: the sums start at zero and are `rescaled` by `scale` and the bias (else `scale`
    /// is unused and the sums start at the bias).
    macro_rules! plane_window {
        ($name:ident, $k:literal, $kys:tt, $kxs:tt, [$($i:literal)*], $quads:expr) => {
            /// # Safety
            /// `padded` holds every value a tap reads (see [`plane`]), `weights` the window's,
            /// `out` the plane's first `vector_rows` rows, the last one in whole vectors, and
            /// `ow >= 4`.
            unsafe fn $name<const S: usize, const SCALED: bool>(
                padded: &Padded,
                weights: &[f32],
                bias: f32,
                scale: f32,
                activation: Activation,
                out: &mut [f32],
                vector_rows: usize,
            ) {
                let (g, activation) = (&padded.geometry, activation.lanes());
                let (ow, sy) = (g.output[1], g.strides[0]);
                let (columns, phase_stride) = (padded.columns, padded.phase_stride());
                let (values, out) = (padded.values.as_ptr(), out.as_mut_ptr());
                // SAFETY: (for the block) the caller's conditions: the weights, every output,
                // and every value a tap reads, are in bounds.
                unsafe {
                    let wp = weights.as_ptr() as *const u32;
                    let w = [$( v128_load32_splat(wp.add($i)) ),*];
                    let b = f32x4_splat(bias);
                    let (start, scale) = (if SCALED { f32x4_splat(0.0) } else { b }, f32x4_splat(scale));
                    // The window rows' distances from the first, in bytes, computed once: in
                    // values, each row's pointer paid a shift by two.
                    let offsets = plane_window!(@offsets columns, $kys);
                    let phase_bytes = phase_stride * core::mem::size_of::<f32>();
                    // Rows in whole vectors (see [`plane`]).
                    let (quads, whole) = ($quads, ow.next_multiple_of(4));
                    let mut oy = 0;
                    while oy < vector_rows {
                        let (first, to) = (values.add(oy * sy * columns), out.add(oy * ow));
                        let ow = whole;
                        let mut ox = 0;
                        // Units of four vectors, then pairs, then single vectors: the
                        // pointers, the loop's test and the activation's branch are paid once
                        // per unit, so wider units pay less a vector (`benchmarks/NOTES.md`,
                        // "Depthwise rows four vectors a turn").
                        while quads && ox + 16 <= ow {
                            let at = ox;
                            let p = black_box(first.add(at));
                            let rows = plane_window!(@rows p, offsets, $kys);
                            let odd = if S == 2 { plane_window!(@rows p.byte_add(phase_bytes), offsets, $kys) } else { rows };
                            let mut v0 = window!(start, rows, odd, 0, w, $k, $kys, $kxs);
                            let mut v1 = window!(start, rows, odd, 4, w, $k, $kys, $kxs);
                            let mut v2 = window!(start, rows, odd, 8, w, $k, $kys, $kxs);
                            let mut v3 = window!(start, rows, odd, 12, w, $k, $kys, $kxs);
                            if SCALED {
                                (v0, v1) = (rescaled(v0, scale, b), rescaled(v1, scale, b));
                                (v2, v3) = (rescaled(v2, scale, b), rescaled(v3, scale, b));
                            }
                            activate_each!(activation, v0, v1, v2, v3);
                            v128_store(to.add(at) as *mut v128, v0);
                            v128_store(to.add(at + 4) as *mut v128, v1);
                            v128_store(to.add(at + 8) as *mut v128, v2);
                            v128_store(to.add(at + 12) as *mut v128, v3);
                            ox = at + 16;
                        }
                        while ox + 8 <= ow {
                            let at = ox;
                            let p = black_box(first.add(at));
                            let rows = plane_window!(@rows p, offsets, $kys);
                            let odd = if S == 2 { plane_window!(@rows p.byte_add(phase_bytes), offsets, $kys) } else { rows };
                            let mut v0 = window!(start, rows, odd, 0, w, $k, $kys, $kxs);
                            let mut v1 = window!(start, rows, odd, 4, w, $k, $kys, $kxs);
                            if SCALED {
                                (v0, v1) = (rescaled(v0, scale, b), rescaled(v1, scale, b));
                            }
                            activate_each!(activation, v0, v1);
                            v128_store(to.add(at) as *mut v128, v0);
                            v128_store(to.add(at + 4) as *mut v128, v1);
                            ox = at + 8;
                        }
                        while ox < ow {
                            let at = ox;
                            let p = black_box(first.add(at));
                            let rows = plane_window!(@rows p, offsets, $kys);
                            let odd = if S == 2 { plane_window!(@rows p.byte_add(phase_bytes), offsets, $kys) } else { rows };
                            let mut v = window!(start, rows, odd, 0, w, $k, $kys, $kxs);
                            if SCALED {
                                v = rescaled(v, scale, b);
                            }
                            let v = activate(v, activation);
                            v128_store(to.add(at) as *mut v128, v);
                            ox = at + 4;
                        }
                        oy += 1;
                    }
                }
            }
        };
        (@offsets $columns:ident, [$($ky:literal)*]) => {
            [$( $ky * $columns * core::mem::size_of::<f32>() ),*]
        };
        (@rows $p:expr, $offsets:ident, [$($ky:literal)*]) => {{
            let p = $p;
            [$( p.byte_add($offsets[$ky]) ),*]
        }};
    }

    // Four vectors a turn for 3×3 windows, and for 5×5 ones at column stride one and unscaled
    // (f32 models): their 14-wide rows are one such unit in whole vectors. The others' would
    // cost code the module's budget does not have for rows too narrow to use it
    // (`benchmarks/NOTES.md`, "Depthwise rows four vectors a turn", "Depthwise rows in whole
    // vectors").
    plane_window!(plane_3, 3, [0 1 2], [0 1 2], [0 1 2 3 4 5 6 7 8], true);
    plane_window!(
        plane_5,
        5,
        [0 1 2 3 4],
        [0 1 2 3 4],
        [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24],
        S == 1 && !SCALED
    );
}
