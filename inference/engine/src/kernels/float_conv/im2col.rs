//! The matrix the kernel multiplies: one row per k of the filters (ONNX's (channel, kernel row,
//! kernel column) order), one column per output pixel, rows [`columns`] long (the pixels rounded
//! up to whole vectors, the extra columns zeros). Padding reads zeros.
//!
//! A planar 1×1 convolution with unit strides and no padding needs none: its input image is
//! already that matrix ([`is_identity`]).

use super::LANES;
use crate::kernels::integer_conv::pack::{Geometry, Layout};

/// A row's length: the pixels rounded up to whole vectors of [`LANES`].
pub fn columns(geometry: &Geometry) -> usize {
    geometry.pixels().div_ceil(LANES) * LANES
}

/// Whether an image held in `layout` is its own im2col matrix (see the module's documentation).
pub fn is_identity(geometry: &Geometry, layout: Layout) -> bool {
    layout == Layout::Planar
        && geometry.kernel == [1, 1]
        && geometry.strides == [1, 1]
        && geometry.pad_before == [0, 0]
        && geometry.output == geometry.input
        && geometry.pixels().is_multiple_of(LANES)
}

/// The im2col matrix of one image `x` held in `layout`.
pub fn im2col(x: &[f32], geometry: &Geometry, layout: Layout) -> Vec<f32> {
    let cols = columns(geometry);
    let (channels, [h, w]) = (geometry.channels, geometry.input);
    let ([kh, kw], [oh, ow], sx) = (geometry.kernel, geometry.output, geometry.strides[1]);
    assert!(x.len() >= channels * h * w);
    let mut matrix = vec![0f32; geometry.depth() * cols];
    // Where input (c, iy, ix) is, and how far apart two columns of a row are.
    let (channel_stride, pixel_stride) = match layout {
        Layout::Planar => (h * w, 1),
        Layout::Interleaved => (1, channels),
    };
    for c in 0..channels {
        for ky in 0..kh {
            for kx in 0..kw {
                let row = &mut matrix[((c * kh + ky) * kw + kx) * cols..][..cols];
                let (first, end, start) = geometry.columns_inside(kx);
                if first >= end {
                    continue;
                }
                let step = sx * pixel_stride;
                for oy in 0..oh {
                    let Some(iy) = geometry.input_row(oy, ky) else { continue };
                    let from = c * channel_stride + (iy * w + start) * pixel_stride;
                    let source = &x[from..][..(end - first - 1) * step + 1];
                    gather(source, step, &mut row[oy * ow + first..oy * ow + end]);
                }
            }
        }
    }
    matrix
}

/// `into[i] = from[i · step]` for every i of `into` (`from` holds at least that many).
///
/// Under the IC's metering a bounds-checked element copy costs several times a plain one, and
/// im2col copies K·N values for every M·K·N multiply-accumulates: with few output channels it
/// showed in the convolution's count (`benchmarks/profile.md`).
pub fn gather(from: &[f32], step: usize, into: &mut [f32]) {
    let count = into.len();
    assert!(count == 0 || from.len() > (count - 1) * step);
    let (src, dst) = (from.as_ptr(), into.as_mut_ptr());
    let mut i = 0;
    if step == 1 {
        while i + 4 <= count {
            // SAFETY: i + 4 <= count: from[i..i + 4] and into[i..i + 4] are in bounds (asserted).
            unsafe { copy4(src.add(i), dst.add(i)) };
            i += 4;
        }
    } else if step == 2 {
        // A strided convolution's rows (opennsfw's 7×7 first layer): four a vector while the
        // eight values read lie in `from`.
        while i + 4 <= count && 2 * i + 8 <= from.len() {
            // SAFETY: from[2i..2i + 8] and into[i..i + 4] are in bounds (checked just above).
            unsafe { copy_evens4(src.add(2 * i), dst.add(i)) };
            i += 4;
        }
    }
    let mut at = i * step;
    while i < count {
        // SAFETY: i < count, so at = i · step <= (count − 1) · step < from.len() (asserted), and
        // into[i] is in bounds.
        unsafe { *dst.add(i) = *src.add(at) };
        at += step;
        i += 1;
    }
}

/// `into[c · rows + r] = from[r · stride + c]` for r < `rows`, c < `cols`: a `[rows, cols]`
/// matrix (rows `stride` apart) transposed, without a bounds check per element (see [`gather`]).
pub fn transpose(from: &[f32], rows: usize, cols: usize, stride: usize, into: &mut [f32]) {
    assert!(cols <= stride && (rows == 0 || from.len() >= (rows - 1) * stride + cols) && into.len() >= rows * cols);
    let (src, dst) = (from.as_ptr(), into.as_mut_ptr());
    let mut r = 0;
    while r < rows {
        let (mut c, mut at) = (0, r);
        while c < cols {
            // SAFETY: r < rows and c < cols: from[r · stride + c] and into[c · rows + r] are in
            // bounds (asserted above).
            unsafe { *dst.add(at) = *src.add(r * stride + c) };
            at += rows;
            c += 1;
        }
        r += 1;
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
