//! The matrix the kernel multiplies: one row per k of the filters (ONNX's (channel, kernel row,
//! kernel column) order), one column per output pixel, rows as long as the pixels (the kernel
//! takes a last partial vector of columns one column at a time, so the rows need no padding).
//! Padding reads zeros.
//!
//! A planar 1×1 convolution with unit strides and no padding needs none: its input image is
//! already that matrix ([`is_identity`]).

use super::LANES;
use crate::kernels::depthwise::planar::copy_rows;
use crate::kernels::depthwise::Padded;
use crate::kernels::integer_conv::pack::{Geometry, Layout};

/// Whether an image held in `layout` is its own im2col matrix (see the module's documentation;
/// a one-pixel image is the same memory in either layout).
pub fn is_identity(geometry: &Geometry, layout: Layout) -> bool {
    (layout == Layout::Planar || geometry.input == [1, 1])
        && geometry.kernel == [1, 1]
        && geometry.strides == [1, 1]
        && geometry.pad_before == [0, 0]
        && geometry.output == geometry.input
}

/// The im2col matrix of one image `x` held in `layout`.
///
/// Each channel is first copied into a plane with its padding's zeros around it (once per
/// channel, not once per kernel position), so each of the matrix's row segments is one copy
/// from that plane without a bound to compute; where the padded plane is the channel itself
/// (planar, no padding) the copies read the image. Every element of the matrix is written once,
/// into memory the allocator does not clear first. Gathering each segment with its own bounds
/// and padding, and zeroing the matrix first, cost more than the copies themselves: several
/// times a 3×3 layer's products on 7×7 images (`benchmarks/profile.md`, `FloatConv`).
pub fn im2col(x: &[f32], geometry: &Geometry, layout: Layout) -> Vec<f32> {
    let (channels, [h, w]) = (geometry.channels, geometry.input);
    let ([kh, kw], [oh, ow]) = (geometry.kernel, geometry.output);
    let ([sy, sx], [dy, dx], [top, left]) = (geometry.strides, geometry.dilations, geometry.pad_before);
    let pixels = oh * ow;
    assert!(x.len() >= channels * h * w);
    let length = geometry.depth() * pixels;
    let mut matrix: Vec<f32> = Vec::with_capacity(length);
    // Debug builds (the native tests) start from NaNs, so an element the loops below missed
    // shows in the comparison with the direct convolution instead of reading as a lucky zero.
    #[cfg(debug_assertions)]
    matrix.spare_capacity_mut().fill(core::mem::MaybeUninit::new(f32::NAN));
    let base = matrix.as_mut_ptr();
    if pixels > 0 && layout == Layout::Planar && sx == 2 && dx == 1 {
        // SAFETY: `matrix` has capacity for `length` values, the x.len() bound is asserted.
        unsafe { from_phases(x, geometry, base) };
    } else if pixels > 0 {
        // The padded plane: every position a kernel reads, the image's inside it at (top, left).
        let (ph, pw) = ((oh - 1) * sy + (kh - 1) * dy + 1, (ow - 1) * sx + (kw - 1) * dx + 1);
        let (channel_stride, pixel_stride) = match layout {
            Layout::Planar => (h * w, 1),
            Layout::Interleaved => (1, channels),
        };
        let reads_image = layout == Layout::Planar && top == 0 && left == 0 && ph <= h && pw <= w;
        let (mut plane, plane_width) = if reads_image { (Vec::new(), w) } else { (vec![0f32; ph * pw], pw) };
        // The rows of the image that land in the plane, and their values that do.
        let inside_cols = w.min(pw.saturating_sub(left));
        let inside_rows = if inside_cols == 0 { 0 } else { h.min(ph.saturating_sub(top)) };
        for c in 0..channels {
            let source: &[f32] = if reads_image {
                &x[c * channel_stride..][..h * w]
            } else {
                for iy in 0..inside_rows {
                    let from = &x[c * channel_stride + iy * w * pixel_stride..];
                    gather(from, pixel_stride, &mut plane[(top + iy) * pw + left..][..inside_cols]);
                }
                &plane
            };
            // Every read below is at most (ph − 1) · width + pw − 1: the plane's last value, or
            // within the channel's (ph <= h, pw <= w).
            assert!((ph - 1) * plane_width + pw <= source.len());
            for ky in 0..kh {
                for kx in 0..kw {
                    let row = ((c * kh + ky) * kw + kx) * pixels;
                    let first = ky * dy * plane_width + kx * dx;
                    // SAFETY: reads: each run's last value is at first + (oy · sy) · width +
                    // (ow − 1) · sx <= the bound asserted above, and `strided` reads no further
                    // than `readable`. Writes: the row's columns 0..pixels lie within the
                    // matrix's capacity (row + pixels <= length), and the runs write them all.
                    unsafe {
                        let (from, into) = (source.as_ptr().add(first), base.add(row));
                        if sx == 1 && sy * plane_width == ow {
                            strided(from, 1, source.len() - first, into, pixels);
                        } else {
                            for oy in 0..oh {
                                let at = oy * sy * plane_width;
                                strided(from.add(at), sx, source.len() - first - at, into.add(oy * ow), ow);
                            }
                        }
                    }
                }
            }
        }
    }
    // SAFETY: every row's columns 0..pixels were written above (or there are none), so all
    // `length` elements are initialised.
    unsafe { matrix.set_len(length) };
    matrix
}

/// The im2col matrix of a planar image at column stride two, written at `into`: each channel is
/// split into its padded plane's even and odd columns ([`Padded`], the depthwise kernel's), so
/// each row segment is a run of adjacent values of one phase instead of every other value of the
/// plane. A stride-two gather costs two loads and a shuffle a vector; a split once per channel
/// and then plain copies for each of the window's taps cost less (`benchmarks/NOTES.md`,
/// "A first layer's im2col from even and odd columns").
///
/// # Safety
/// `x` holds the image (`channels · h · w` values, as asserted by the caller), `into` has room
/// for the matrix's `depth · pixels` values, and the geometry has column stride two and column
/// dilation one.
unsafe fn from_phases(x: &[f32], geometry: &Geometry, into: *mut f32) {
    let (channels, [h, w]) = (geometry.channels, geometry.input);
    let ([kh, kw], [oh, ow]) = (geometry.kernel, geometry.output);
    let (sy, dy, pixels) = (geometry.strides[0], geometry.dilations[0], geometry.pixels());
    let mut padded = Padded::new(geometry);
    for c in 0..channels {
        padded.fill(&x[c * h * w..][..h * w]);
        for ky in 0..kh {
            for kx in 0..kw {
                // Output column ox reads padded column 2 · ox + kx: phase kx % 2, at ox + kx / 2
                // in it; output row oy the padded row oy · sy + ky · dy.
                let first = padded.phase_row(kx % 2, ky * dy, kx / 2);
                let stride = sy * padded.row_length();
                assert!(first.len() >= (oh - 1) * stride + ow);
                let row = ((c * kh + ky) * kw + kx) * pixels;
                // SAFETY: the oh rows of ow values `stride` apart are readable at `first` (the
                // assert); they are written at the row's columns 0..pixels (oh · ow), within the
                // matrix (row + pixels <= length), which does not overlap the plane.
                unsafe { copy_rows(first.as_ptr(), stride, into.add(row), ow, oh, ow) };
            }
        }
    }
}

/// `into[i] = from[i · step]` for every i of `into` (`from` holds at least that many).
///
/// Under the IC's metering a bounds-checked element copy costs several times a plain one, and
/// im2col copies K·N values for every M·K·N multiply-accumulates: with few output channels it
/// showed in the convolution's count (`benchmarks/profile.md`).
pub fn gather(from: &[f32], step: usize, into: &mut [f32]) {
    let count = into.len();
    assert!(count == 0 || from.len() > (count - 1) * step);
    // SAFETY: `from` holds its length in readable values, `into` its length in writable ones,
    // and the assertion is `strided`'s condition on them.
    unsafe { strided(from.as_ptr(), step, from.len(), into.as_mut_ptr(), count) }
}

/// `into[i] = from[i · step]` for i < `count`, reading nothing at or past `from + readable`.
///
/// Steps of one and two go four values a vector, the last vector overlapping the one before
/// when `count` is not a multiple of four (the same values written twice): a row of seven costs
/// two vectors instead of one and three values one at a time.
///
/// # Safety
/// `readable` values are readable at `from`, with (count − 1) · step < readable when count > 0,
/// and `count` values are writable at `into`.
pub(crate) unsafe fn strided(from: *const f32, step: usize, readable: usize, into: *mut f32, count: usize) {
    if count >= LANES && step == 1 {
        let last = count - LANES;
        let mut i = 0;
        // Four vectors a turn of the loop, which costs as much as a vector's copy.
        while i + 4 * LANES <= last {
            // SAFETY: i + 16 <= count: from[i..i + 16] is readable, into[i..i + 16] writable.
            let (s, d) = (from.add(i), into.add(i));
            copy4(s, d);
            copy4(s.add(LANES), d.add(LANES));
            copy4(s.add(2 * LANES), d.add(2 * LANES));
            copy4(s.add(3 * LANES), d.add(3 * LANES));
            i += 4 * LANES;
        }
        while i < last {
            // SAFETY: i + 4 <= count: from[i..i + 4] is readable, into[i..i + 4] writable.
            copy4(from.add(i), into.add(i));
            i += LANES;
        }
        copy4(from.add(last), into.add(last));
        return;
    }
    // A strided convolution's rows (opennsfw's 7×7 first layer): each vector reads eight
    // values, so the last one reaches 2 · count; when that is past `readable`, vectors while they
    // fit and the rest one at a time.
    let mut i = 0;
    if count >= LANES && step == 2 {
        let last = count - LANES;
        if 2 * count <= readable {
            while i + 4 * LANES <= last {
                // SAFETY: 2i + 32 <= 2 · count <= readable; i + 16 <= count.
                let (s, d) = (from.add(2 * i), into.add(i));
                copy_evens4(s, d);
                copy_evens4(s.add(2 * LANES), d.add(LANES));
                copy_evens4(s.add(4 * LANES), d.add(2 * LANES));
                copy_evens4(s.add(6 * LANES), d.add(3 * LANES));
                i += 4 * LANES;
            }
            while i < last {
                // SAFETY: 2i + 8 <= 2 · count <= readable; i + 4 <= count.
                copy_evens4(from.add(2 * i), into.add(i));
                i += LANES;
            }
            copy_evens4(from.add(2 * last), into.add(last));
            return;
        }
        while i + LANES <= count && 2 * i + 2 * LANES <= readable {
            // SAFETY: as checked just above.
            copy_evens4(from.add(2 * i), into.add(i));
            i += LANES;
        }
    }
    let mut at = i * step;
    while i < count {
        // SAFETY: at = i · step <= (count − 1) · step < readable, and i < count.
        *into.add(i) = *from.add(at);
        at += step;
        i += 1;
    }
}

/// `into[c · rows + r] = from[r · stride + c]` for r < `rows`, c < `cols`: a `[rows, cols]`
/// matrix (rows `stride` apart) transposed ([`transpose_into`] with the rows packed).
pub fn transpose(from: &[f32], rows: usize, cols: usize, stride: usize, into: &mut [f32]) {
    transpose_into(from, rows, cols, stride, into, rows)
}

/// `into[c · into_stride + r] = from[r · stride + c]` for r < `rows`, c < `cols`: a `[rows,
/// cols]` matrix (rows `stride` apart) transposed into rows `into_stride` apart, nothing else of
/// `into` written. On wasm simd128 by blocks of 4 × 4 (four loads, eight shuffles, four stores:
/// about 4 of the IC's instructions a value, where a value at a time costs 14 or more), the
/// edges a value at a time; without a bounds check per value (see [`gather`]).
pub fn transpose_into(from: &[f32], rows: usize, cols: usize, stride: usize, into: &mut [f32], into_stride: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(cols <= stride && from.len() >= (rows - 1) * stride + cols);
    assert!(rows <= into_stride && into.len() >= (cols - 1) * into_stride + rows);
    let (src, dst) = (from.as_ptr(), into.as_mut_ptr());
    // Rows and columns in whole blocks of four (all of them without simd128).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let (whole_rows, whole_cols) = (rows / 4 * 4, cols / 4 * 4);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let (whole_rows, whole_cols) = (0, 0);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let mut r = 0;
        while r < whole_rows {
            let mut c = 0;
            while c < whole_cols {
                // SAFETY: r + 3 < rows and c + 3 < cols: the block's four rows of four values,
                // from[(r + i) · stride + c..][..4], and its four columns' destinations,
                // into[(c + j) · into_stride + r..][..4], are in bounds (asserted above).
                unsafe { block4(src.add(r * stride + c), stride, dst.add(c * into_stride + r), into_stride) };
                c += 4;
            }
            r += 4;
        }
    }
    // What the blocks left: the last columns of their rows, then the last rows.
    let mut r = 0;
    while r < rows {
        let mut c = if r < whole_rows { whole_cols } else { 0 };
        while c < cols {
            // SAFETY: r < rows and c < cols: both are in bounds (asserted above).
            unsafe { *dst.add(c * into_stride + r) = *src.add(r * stride + c) };
            c += 1;
        }
        r += 1;
    }
}

/// [`transpose_into`] against a value-by-value transposition, on matrices of whole blocks and
/// not (rows and columns of 1 to 9), rows wider apart than they are long, and destinations
/// whose rows are wider than needed (whose other values must stay untouched).
pub fn check_transpose() -> Result<(), String> {
    for rows in 1..=9 {
        for cols in 1..=9 {
            let (stride, into_stride) = (cols + rows % 3, rows + cols % 2);
            let from: Vec<f32> = (0..(rows - 1) * stride + cols).map(|i| i as f32 * 0.5 - 7.0).collect();
            let mut into = vec![f32::NAN; (cols - 1) * into_stride + rows + 3];
            transpose_into(&from, rows, cols, stride, &mut into, into_stride);
            for (i, got) in into.iter().enumerate() {
                let (c, r) = (i / into_stride, i % into_stride);
                let want = if c < cols && r < rows { from[r * stride + c] } else { f32::NAN };
                if got.to_bits() != want.to_bits() {
                    return Err(format!(
                        "transpose of [{rows}, {cols}] (strides {stride}, {into_stride}): value {i} is {got}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A 4 × 4 block transposed: four rows `stride` apart at `from` into four rows `into_stride`
/// apart at `into`.
///
/// # Safety
/// Four values are readable at `from + i · stride` and writable at `into + j · into_stride` for
/// i, j < 4.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
unsafe fn block4(from: *const f32, stride: usize, into: *mut f32, into_stride: usize) {
    use core::arch::wasm32::*;
    // SAFETY: the caller's.
    unsafe {
        let r0 = v128_load(from as *const v128);
        let r1 = v128_load(from.add(stride) as *const v128);
        let r2 = v128_load(from.add(2 * stride) as *const v128);
        let r3 = v128_load(from.add(3 * stride) as *const v128);
        // Columns 0 and 1, then 2 and 3, of rows 0 and 1 (and of rows 2 and 3) interleaved.
        let (low01, high01) = (i32x4_shuffle::<0, 4, 1, 5>(r0, r1), i32x4_shuffle::<2, 6, 3, 7>(r0, r1));
        let (low23, high23) = (i32x4_shuffle::<0, 4, 1, 5>(r2, r3), i32x4_shuffle::<2, 6, 3, 7>(r2, r3));
        v128_store(into as *mut v128, i32x4_shuffle::<0, 1, 4, 5>(low01, low23));
        v128_store(into.add(into_stride) as *mut v128, i32x4_shuffle::<2, 3, 6, 7>(low01, low23));
        v128_store(into.add(2 * into_stride) as *mut v128, i32x4_shuffle::<0, 1, 4, 5>(high01, high23));
        v128_store(into.add(3 * into_stride) as *mut v128, i32x4_shuffle::<2, 3, 6, 7>(high01, high23));
    }
}

/// Four adjacent f32 from `from` to `into`: one vector on wasm simd128.
///
/// # Safety
/// Four values are readable at `from` and writable at `into` (no alignment needed).
#[inline(always)]
unsafe fn copy4(from: *const f32, into: *mut f32) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    core::arch::wasm32::v128_store(into as *mut _, core::arch::wasm32::v128_load(from as *const _));
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    core::ptr::copy_nonoverlapping(from, into, 4);
}

/// The four even-indexed of eight adjacent f32 from `from` to `into`: two loads and a shuffle on
/// wasm simd128.
///
/// # Safety
/// Eight values are readable at `from` and four writable at `into` (no alignment needed).
#[inline(always)]
unsafe fn copy_evens4(from: *const f32, into: *mut f32) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::*;
        let (a, b) = (v128_load(from as *const v128), v128_load(from.add(4) as *const v128));
        v128_store(into as *mut v128, i32x4_shuffle::<0, 2, 4, 6>(a, b));
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for j in 0..4 {
        *into.add(j) = *from.add(2 * j);
    }
}
