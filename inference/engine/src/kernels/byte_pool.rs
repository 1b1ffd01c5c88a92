//! The max pool of a u8 or i8 image's plane (a QDQ model's pool moved onto the bytes,
//! [`crate::passes::byte_max_pool`]): each output the greatest byte of its window inside the
//! image, from the type's least value (which an output whose window holds only padding keeps).
//!
//! Separable, since bytes have no NaN and no signed zeros and the maximum of integers does not
//! depend on the order it is taken in: per output row, the column maxima of the window's rows
//! into a scratch row bordered by the type's least value (so that the windows at the image's
//! edges need no case of their own), then the maxima along that row at the pool's column step.
//! simd128 on wasm, sixteen bytes a vector with `u8x16.max` or `i8x16.max` for column steps of
//! one and two and undilated rows; scalar elsewhere. A per-output fold over the window, as the
//! f32 pool's kernel does, cost a fifth of a pool's instructions at the rows' edges and in
//! per-row set-up (`benchmarks/NOTES.md`). [`reference`] is the fold output by output.

use crate::kernels::integer_conv::pack::Geometry;

/// The family's interface.
pub trait BytePoolKernels {
    /// `out[oy · ow + ox]` := the greatest of plane `x`'s bytes (`input[0] × input[1]`, u8
    /// values if `unsigned`, else i8) in the window of output (oy, ox), by `g`'s kernel,
    /// strides, dilations and padding (its channel count is not read).
    fn plane(x: &[u8], g: &Geometry, unsigned: bool, out: &mut [u8]);
}

/// One byte at a time.
pub struct Scalar;

/// What the operator calls: [`Simd128`] in a wasm simd128 build, else [`Scalar`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub type Best = Simd128;
/// What the operator calls: `Simd128` in a wasm simd128 build, else [`Scalar`].
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub type Best = Scalar;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use simd::Simd128;

/// The bit that makes i8 bytes compare as u8 ones: flipped, −128 is the least and 127 the
/// greatest.
fn flip(unsigned: bool) -> u8 {
    if unsigned {
        0
    } else {
        0x80
    }
}

/// The input rows (first, count) that output row `oy`'s window reads inside the image, with the
/// row step (the vertical dilation).
fn window_rows(g: &Geometry, oy: usize) -> (usize, usize, usize) {
    let (h, kh, dy) = (g.input[0], g.kernel[0], g.dilations[0]);
    let top = (oy * g.strides[0]) as isize - g.pad_before[0] as isize;
    // Arithmetic, not an iterator's filter: at the canister's opt-level its closures are calls,
    // once per output row.
    let mut first = 0;
    while first < kh && top + ((first * dy) as isize) < 0 {
        first += 1;
    }
    let mut end = first;
    while end < kh && top + ((end * dy) as isize) < h as isize {
        end += 1;
    }
    if first == end {
        return (0, 0, dy);
    }
    ((top + (first * dy) as isize) as usize, end - first, dy)
}

/// The scratch row's length: the left padding, the image's columns, and as many as the last
/// output's window reaches past them, plus `slack` for vector reads past the last window.
fn scratch_len(g: &Geometry, slack: usize) -> usize {
    let reach = g.output[1].saturating_sub(1) * g.strides[1] + g.kernel[1].saturating_sub(1) * g.dilations[1] + 1;
    reach.max(g.pad_before[1] + g.input[1]) + slack
}

impl BytePoolKernels for Scalar {
    fn plane(x: &[u8], g: &Geometry, unsigned: bool, out: &mut [u8]) {
        let ([h, w], [_, kw], [oh, ow]) = (g.input, g.kernel, g.output);
        let (sx, dx, left, flip) = (g.strides[1], g.dilations[1], g.pad_before[1], flip(unsigned));
        assert!(x.len() >= h * w && out.len() >= oh * ow);
        // Bytes flipped (i8 as u8), so the least value is 0 throughout.
        let mut scratch = vec![0u8; scratch_len(g, 0)];
        for oy in 0..oh {
            let (first, count, dy) = window_rows(g, oy);
            for c in 0..w {
                let mut m = 0;
                for r in 0..count {
                    m = m.max(x[(first + r * dy) * w + c] ^ flip);
                }
                scratch[left + c] = m;
            }
            for ox in 0..ow {
                let mut m = 0;
                for kx in 0..kw {
                    m = m.max(scratch[ox * sx + kx * dx]);
                }
                out[oy * ow + ox] = m ^ flip;
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    use super::*;

    /// Sixteen bytes a vector for column steps of one and two without dilation; the rest
    /// [`Scalar`].
    pub struct Simd128;

    impl BytePoolKernels for Simd128 {
        fn plane(x: &[u8], g: &Geometry, unsigned: bool, out: &mut [u8]) {
            let vectors = g.dilations[1] == 1 && g.kernel[1] >= 1 && g.input[1] >= 16 && g.output[1] >= 16;
            match (vectors, g.strides[1], unsigned) {
                (true, 1, true) => plane::<1, true>(x, g, out),
                (true, 1, false) => plane::<1, false>(x, g, out),
                (true, 2, true) => plane::<2, true>(x, g, out),
                (true, 2, false) => plane::<2, false>(x, g, out),
                _ => Scalar::plane(x, g, unsigned, out),
            }
        }
    }

    /// The lanes' greater bytes as u8 or as i8 (a function, not a closure: at the canister's
    /// opt-level a closure stays a call).
    #[inline(always)]
    fn max<const UNSIGNED: bool>(a: v128, b: v128) -> v128 {
        if UNSIGNED {
            u8x16_max(a, b)
        } else {
            i8x16_max(a, b)
        }
    }

    /// Sixteen bytes `STEP` apart from `at`: one load, or two and a shuffle of the even bytes.
    ///
    /// # Safety
    /// `16 · STEP` bytes are readable at `at` (no alignment needed).
    #[inline(always)]
    unsafe fn taps<const STEP: usize>(at: *const u8) -> v128 {
        if STEP == 1 {
            v128_load(at as *const v128)
        } else {
            let (a, b) = (v128_load(at as *const v128), v128_load(at.add(16) as *const v128));
            i8x16_shuffle::<0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30>(a, b)
        }
    }

    /// The plane for column step `STEP` (1 or 2), dilation 1, at least sixteen input columns and
    /// sixteen outputs a row: the column maxima sixteen at a time (the last sixteen overlapping
    /// the ones before), the row maxima sixteen outputs at a time (likewise).
    fn plane<const STEP: usize, const UNSIGNED: bool>(x: &[u8], g: &Geometry, out: &mut [u8]) {
        let ([h, w], kw, [oh, ow], left) = (g.input, g.kernel[1], g.output, g.pad_before[1]);
        assert!(x.len() >= h * w && out.len() >= oh * ow && w >= 16 && ow >= 16 && g.strides[1] == STEP);
        let least = if UNSIGNED { 0u8 } else { 0x80 };
        // Slack: the last vector of outputs reads 16 · STEP bytes from its first window.
        let mut scratch = vec![least; scratch_len(g, 16 * STEP)];
        assert!((ow - 16) * STEP + kw.saturating_sub(1) + 16 * STEP <= scratch.len());
        let floor = u8x16_splat(least);
        let (src, row, dst) = (x.as_ptr(), scratch.as_mut_ptr(), out.as_mut_ptr());
        let mut oy = 0;
        while oy < oh {
            let (first, count, dy) = window_rows(g, oy);
            // SAFETY: rows first + r · dy < h for r < count (window_rows), so each read of
            // x[(first + r · dy) · w + c..][..16] with c + 16 <= w lies in the plane (asserted
            // above); the writes scratch[left + c..][..16] lie within left + w <= its length.
            unsafe {
                let top = src.add(first * w);
                let step = dy * w;
                let mut c = 0;
                loop {
                    let at = top.add(c);
                    // Three rows (3×3 pools) spelled out.
                    let m = if count == 3 {
                        let m = max::<UNSIGNED>(v128_load(at as *const v128), v128_load(at.add(step) as *const v128));
                        max::<UNSIGNED>(m, v128_load(at.add(2 * step) as *const v128))
                    } else {
                        let mut m = floor;
                        let mut r = 0;
                        while r < count {
                            m = max::<UNSIGNED>(m, v128_load(at.add(r * step) as *const v128));
                            r += 1;
                        }
                        m
                    };
                    v128_store(row.add(left + c) as *mut v128, m);
                    if c + 16 == w {
                        break;
                    }
                    c = (c + 16).min(w - 16);
                }
            }
            // SAFETY: outputs i..i + 16 with i + 16 <= ow read scratch[i · STEP + kx..][..16 ·
            // STEP] for kx < kw, within its length (asserted above), and write
            // out[oy · ow + i..][..16], within the plane's outputs.
            unsafe {
                let mut i = 0;
                loop {
                    let at = row.add(i * STEP) as *const u8;
                    let mut m = taps::<STEP>(at);
                    if kw == 3 {
                        m = max::<UNSIGNED>(m, taps::<STEP>(at.add(1)));
                        m = max::<UNSIGNED>(m, taps::<STEP>(at.add(2)));
                    } else {
                        let mut kx = 1;
                        while kx < kw {
                            m = max::<UNSIGNED>(m, taps::<STEP>(at.add(kx)));
                            kx += 1;
                        }
                    }
                    v128_store(dst.add(oy * ow + i) as *mut v128, m);
                    if i + 16 == ow {
                        break;
                    }
                    i = (i + 16).min(ow - 16);
                }
            }
            oy += 1;
        }
    }
}

pub mod reference {
    use super::{Best, BytePoolKernels, Geometry, Scalar};

    /// The fold output by output: the greatest value (as u8 or i8) its window reads inside the
    /// image, from the type's least.
    pub fn plane(x: &[u8], g: &Geometry, unsigned: bool, out: &mut [u8]) {
        let value = |b: u8| if unsigned { b as i32 } else { b as i8 as i32 };
        let ([h, w], [kh, kw], [oh, ow]) = (g.input, g.kernel, g.output);
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = if unsigned { 0 } else { -128 };
                for ky in 0..kh {
                    for kx in 0..kw {
                        let iy = (oy * g.strides[0] + ky * g.dilations[0]) as isize - g.pad_before[0] as isize;
                        let ix = (ox * g.strides[1] + kx * g.dilations[1]) as isize - g.pad_before[1] as isize;
                        if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                            m = m.max(value(x[iy as usize * w + ix as usize]));
                        }
                    }
                }
                out[oy * ow + ox] = m as u8;
            }
        }
    }

    /// Compares [`Best`] and [`Scalar`] with [`plane`], u8 and i8, over pools of 3×3 and 2×2
    /// windows, strides 1 to 3, dilations 1 and 2, paddings on either side and none, with
    /// planes narrower and wider than a vector (and not a multiple of one), over bytes that are
    /// both types' extremes and their neighbours. An error names the first case that differs.
    pub fn check() -> Result<(), String> {
        let special = [0u8, 255, 127, 128, 1, 254, 0x7e, 0x81];
        for unsigned in [true, false] {
            // Kernel, strides, dilations, padding before and after.
            let cases: [[[usize; 2]; 5]; 6] = [
                [[3, 3], [2, 2], [1, 1], [1, 1], [1, 1]],
                [[3, 3], [2, 2], [1, 1], [0, 0], [1, 1]],
                [[3, 3], [1, 1], [1, 1], [1, 1], [1, 1]],
                [[2, 2], [2, 2], [1, 1], [0, 0], [0, 0]],
                [[3, 2], [3, 2], [2, 1], [2, 0], [0, 1]],
                [[3, 3], [1, 2], [1, 2], [0, 2], [2, 2]],
            ];
            for [kernel, strides, dilations, pad_before, pad_after] in cases {
                for [h, w] in [[5usize, 9usize], [7, 16], [6, 33], [9, 47], [4, 64]] {
                    let output: [usize; 2] = std::array::from_fn(|a| {
                        let span = (kernel[a] - 1) * dilations[a] + 1;
                        ([h, w][a] + pad_before[a] + pad_after[a]).saturating_sub(span) / strides[a] + 1
                    });
                    let g = Geometry { channels: 1, input: [h, w], kernel, strides, dilations, pad_before, output };
                    let x: Vec<u8> = (0..h * w)
                        .map(|i| if i % 3 == 0 { special[i / 3 % special.len()] } else { (i * 37 % 251) as u8 })
                        .collect();
                    let mut want = vec![0u8; output[0] * output[1]];
                    plane(&x, &g, unsigned, &mut want);
                    for (name, got) in
                        [("Best", run::<Best>(&x, &g, unsigned)), ("Scalar", run::<Scalar>(&x, &g, unsigned))]
                    {
                        if got != want {
                            return Err(format!(
                                "byte max pool ({g:?}, unsigned {unsigned}): {name} differs from the reference"
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn run<K: BytePoolKernels>(x: &[u8], g: &Geometry, unsigned: bool) -> Vec<u8> {
        let mut out = vec![0u8; g.output[0] * g.output[1]];
        K::plane(x, g, unsigned, &mut out);
        out
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn kernels_equal_the_reference() {
            super::check().unwrap();
        }
    }
}
