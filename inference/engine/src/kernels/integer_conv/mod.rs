//! The integer convolution's kernel: widening int8 values to i16, and the multiply of packed
//! weights by a packed im2col matrix ([`pack`]) with the epilogue that makes each integer sum an
//! f32 output. simd128 on wasm, scalar elsewhere; [`reference`] is a direct convolution of the
//! unpacked values, which packing then multiplying must equal bit for bit.
//!
//! The simd128 kernel accumulates `Σ x·w` exactly in i32 lanes with `i32x4.dot_i16x8_s`, eight
//! multiply-accumulates for one instruction under the IC's cost table. Lanes are four output
//! channels. Each step covers four K pairs of four pixels: it loads the block's weight vectors,
//! splats each pixel's pairs, and adds a pixel's four dot products before touching its
//! accumulator, since reading and writing a local costs as much as the dot product itself. With
//! sixteen-channel blocks (channel counts that are multiples of 16) each splat feeds four dot
//! products, which is markedly cheaper per MAC than four-channel blocks on large convolutions
//! (per-operator figures in `benchmarks/profile.md`).
//!
//! Loops index with plain counters, as in [`super::qdq`]: at the canister's opt-level,
//! iterator adaptors stay calls. LLVM's loop strength reduction costs the loads their constant
//! offsets (an `i32.add` each); `-C llvm-args=-disable-lsr` would remove those here but slows
//! tract's f32 kernels, so the build keeps it.

pub mod pack;
pub mod reference;

pub use reference::{check, check_kernels};

use super::Int8;
use pack::{Epilogue, PackedWeights, Strides};

/// The family's interface.
pub trait ConvKernels {
    /// Values widened to i16 (`min(xs.len(), ys.len())` of them).
    fn widen<T: Int8>(xs: &[T], ys: &mut [i16]);
    /// The outputs of one image from its packed im2col matrix ([`pack`]): output (channel m,
    /// pixel p) at `out[m · strides.channel + p · strides.pixel]`.
    fn multiply(
        weights: &PackedWeights,
        input: &[i16],
        pixels: usize,
        epilogue: &Epilogue,
        strides: Strides,
        out: &mut [f32],
    );
}

/// One multiply-accumulate at a time.
pub struct Scalar;

/// What the operator and the packing call: [`Simd128`] in a wasm simd128 build, else [`Scalar`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub type Best = Simd128;
/// What the operator and the packing call: `Simd128` in a wasm simd128 build, else [`Scalar`].
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub type Best = Scalar;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use simd::Simd128;

fn widen_scalar<T: Int8>(xs: &[T], ys: &mut [i16]) {
    let (len, mut i) = (xs.len().min(ys.len()), 0);
    while i < len {
        ys[i] = xs[i].to_i32() as i16;
        i += 1;
    }
}

/// The two i16 of a packed pair.
fn halves(w: u32) -> (i32, i32) {
    (w as u16 as i16 as i32, (w >> 16) as u16 as i16 as i32)
}

fn multiply_scalar(
    weights: &PackedWeights,
    input: &[i16],
    pixels: usize,
    epilogue: &Epilogue,
    strides: Strides,
    out: &mut [f32],
) {
    let (pairs, rows) = (weights.pairs, weights.rows);
    for m in 0..weights.channels {
        let (block, r) = (m / rows, m % rows);
        for p in 0..pixels {
            let mut acc = 0i32;
            for q in 0..pairs {
                let (w0, w1) = halves(weights.panels[(block * pairs + q) * rows + r]);
                let x = &input[(p * pairs + q) * 2..][..2];
                acc = acc.wrapping_add(x[0] as i32 * w0 + x[1] as i32 * w1);
            }
            out[m * strides.channel + p * strides.pixel] = epilogue.scalar(m, acc, weights.sums[m]);
        }
    }
}

impl ConvKernels for Scalar {
    fn widen<T: Int8>(xs: &[T], ys: &mut [i16]) {
        widen_scalar(xs, ys)
    }

    fn multiply(
        weights: &PackedWeights,
        input: &[i16],
        pixels: usize,
        epilogue: &Epilogue,
        strides: Strides,
        out: &mut [f32],
    ) {
        multiply_scalar(weights, input, pixels, epilogue, strides, out)
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    use super::pack::{PIXELS, ROWS, STEP, WIDE_ROWS};
    use super::*;

    /// `i32x4.dot_i16x8_s` over four- or sixteen-channel blocks of four pixels.
    pub struct Simd128;

    impl ConvKernels for Simd128 {
        fn widen<T: Int8>(xs: &[T], ys: &mut [i16]) {
            widen(xs, ys)
        }

        fn multiply(
            weights: &PackedWeights,
            input: &[i16],
            pixels: usize,
            epilogue: &Epilogue,
            strides: Strides,
            out: &mut [f32],
        ) {
            multiply(weights, input, pixels, epilogue, strides, out)
        }
    }

    #[inline(always)]
    fn widen<T: Int8>(xs: &[T], ys: &mut [i16]) {
        let len = xs.len().min(ys.len());
        let n = len / 8 * 8;
        let unsigned = T::from_clamped(255).to_i32() == 255;
        let (x, y) = (xs.as_ptr() as *const u8, ys.as_mut_ptr());
        let mut i = 0;
        while i < n {
            // SAFETY: i + 8 <= n <= len: the 8 bytes read at x + i are xs[i..i + 8] (`T` is one
            // byte), the 8 i16 written at y + i are ys[i..i + 8]; no alignment is required.
            unsafe {
                let wide = if unsigned {
                    u16x8_load_extend_u8x8(x.add(i))
                } else {
                    i16x8_load_extend_i8x8(x.add(i) as *const i8)
                };
                v128_store(y.add(i) as *mut v128, wide);
            }
            i += 8;
        }
        widen_scalar(&xs[n..len], &mut ys[n..len]);
    }

    /// The epilogue's parameters for one block of four channels, as lanes.
    struct Lanes {
        offset: v128,
        scale: v128,
        bias: v128,
        /// Channels of the block that exist (the last block may have fewer than four).
        count: usize,
    }

    impl Lanes {
        fn new(weights: &PackedWeights, epilogue: &Epilogue, first: usize) -> Lanes {
            let count = (weights.channels - first).min(ROWS);
            let mut values = [[0f32; 4]; 2];
            let mut offsets = [0i32; 4];
            for r in 0..count {
                values[0][r] = epilogue.scales[first + r];
                values[1][r] = epilogue.bias[first + r];
                offsets[r] = epilogue.zero_point.wrapping_mul(weights.sums[first + r]);
            }
            let [s, b] = values;
            Lanes {
                offset: i32x4(offsets[0], offsets[1], offsets[2], offsets[3]),
                scale: f32x4(s[0], s[1], s[2], s[3]),
                bias: f32x4(b[0], b[1], b[2], b[3]),
                count,
            }
        }

        /// Four lanes of [`Epilogue::scalar`], written at `out[at + r · stride]`: one store when
        /// the four channels are adjacent.
        #[inline(always)]
        fn finish(&self, acc: v128, out: &mut [f32], at: usize, stride: usize) {
            let lanes = f32x4_add(f32x4_mul(f32x4_convert_i32x4(i32x4_sub(acc, self.offset)), self.scale), self.bias);
            if stride == 1 && self.count == 4 {
                assert!(at + 4 <= out.len());
                // SAFETY: out[at..at + 4] is in bounds (asserted); no alignment is required.
                unsafe { v128_store(out.as_mut_ptr().add(at) as *mut v128, lanes) };
            } else {
                out[at] = f32x4_extract_lane::<0>(lanes);
                if self.count > 1 {
                    out[at + stride] = f32x4_extract_lane::<1>(lanes);
                }
                if self.count > 2 {
                    out[at + 2 * stride] = f32x4_extract_lane::<2>(lanes);
                }
                if self.count > 3 {
                    out[at + 3 * stride] = f32x4_extract_lane::<3>(lanes);
                }
            }
        }
    }

    #[inline(always)]
    fn multiply(
        weights: &PackedWeights,
        input: &[i16],
        pixels: usize,
        epilogue: &Epilogue,
        strides: Strides,
        out: &mut [f32],
    ) {
        if weights.rows == WIDE_ROWS {
            multiply_wide(weights, input, pixels, epilogue, strides, out)
        } else {
            multiply_narrow(weights, input, pixels, epilogue, strides, out)
        }
    }

    /// Per block of four channels and group of four pixels, four accumulators; each step covers
    /// [`STEP`] K pairs: four weight vectors, sixteen pixel splats, sixteen dot products.
    fn multiply_narrow(
        weights: &PackedWeights,
        input: &[i16],
        pixels: usize,
        epilogue: &Epilogue,
        strides: Strides,
        out: &mut [f32],
    ) {
        let pairs = weights.pairs;
        assert_eq!(weights.rows, ROWS);
        let blocks = weights.channels.div_ceil(ROWS);
        let groups = pixels.div_ceil(PIXELS);
        assert!(
            pairs.is_multiple_of(STEP)
                && weights.panels.len() >= blocks * pairs * ROWS
                && input.len() >= groups * PIXELS * pairs * 2
        );
        assert!(epilogue.scales.len() >= weights.channels && epilogue.bias.len() >= weights.channels);
        let mut block = 0;
        while block < blocks {
            let first = block * ROWS;
            let lanes = Lanes::new(weights, epilogue, first);
            let mut group = 0;
            while group < groups {
                let z = i32x4_splat(0);
                let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
                // SAFETY: the asserts above bound every read: weight block `block` (< blocks)
                // spans `pairs` vectors of `panels` from block · pairs · ROWS u32, and the four
                // pixel rows of `group` (< groups) span `pairs` u32 each of `input` from
                // group · PIXELS · pairs · 2 i16; the loop stops when row 0 reaches row 1's start.
                // No load needs alignment.
                unsafe {
                    let mut w = weights.panels.as_ptr().add(block * pairs * ROWS) as *const v128;
                    let mut x0 = input.as_ptr().add(group * PIXELS * pairs * 2) as *const u32;
                    let (mut x1, mut x2, mut x3) = (x0.add(pairs), x0.add(2 * pairs), x0.add(3 * pairs));
                    let end = x1;
                    while x0 < end {
                        let (v0, v1, v2, v3) =
                            (v128_load(w), v128_load(w.add(1)), v128_load(w.add(2)), v128_load(w.add(3)));
                        macro_rules! pixel {
                            ($acc:ident, $x:ident) => {
                                $acc = i32x4_add(
                                    $acc,
                                    i32x4_add(
                                        i32x4_add(
                                            i32x4_dot_i16x8(v0, v128_load32_splat($x)),
                                            i32x4_dot_i16x8(v1, v128_load32_splat($x.add(1))),
                                        ),
                                        i32x4_add(
                                            i32x4_dot_i16x8(v2, v128_load32_splat($x.add(2))),
                                            i32x4_dot_i16x8(v3, v128_load32_splat($x.add(3))),
                                        ),
                                    ),
                                );
                            };
                        }
                        pixel!(a0, x0);
                        pixel!(a1, x1);
                        pixel!(a2, x2);
                        pixel!(a3, x3);
                        w = w.add(STEP);
                        x0 = x0.add(STEP);
                        x1 = x1.add(STEP);
                        x2 = x2.add(STEP);
                        x3 = x3.add(STEP);
                    }
                }
                let p = group * PIXELS;
                let at = first * strides.channel + p * strides.pixel;
                lanes.finish(a0, out, at, strides.channel);
                if p + 1 < pixels {
                    lanes.finish(a1, out, at + strides.pixel, strides.channel);
                }
                if p + 2 < pixels {
                    lanes.finish(a2, out, at + 2 * strides.pixel, strides.channel);
                }
                if p + 3 < pixels {
                    lanes.finish(a3, out, at + 3 * strides.pixel, strides.channel);
                }
                group += 1;
            }
            block += 1;
        }
    }
    /// Per block of sixteen channels and group of four pixels, sixteen accumulators; each step
    /// covers [`STEP`] K pairs: sixteen weight vectors, sixteen pixel splats each feeding four
    /// dot products (under the IC's metering a splat's address and load cost as much as the
    /// dot product, so sharing it is most of the gain over [`multiply_narrow`]).
    fn multiply_wide(
        weights: &PackedWeights,
        input: &[i16],
        pixels: usize,
        epilogue: &Epilogue,
        strides: Strides,
        out: &mut [f32],
    ) {
        let pairs = weights.pairs;
        let blocks = weights.channels / WIDE_ROWS;
        let groups = pixels.div_ceil(PIXELS);
        assert!(weights.rows == WIDE_ROWS && weights.channels.is_multiple_of(WIDE_ROWS));
        assert!(
            pairs.is_multiple_of(STEP)
                && weights.panels.len() >= blocks * pairs * WIDE_ROWS
                && input.len() >= groups * PIXELS * pairs * 2
        );
        assert!(epilogue.scales.len() >= weights.channels && epilogue.bias.len() >= weights.channels);
        let mut block = 0;
        while block < blocks {
            let first = block * WIDE_ROWS;
            let lanes = [
                Lanes::new(weights, epilogue, first),
                Lanes::new(weights, epilogue, first + 4),
                Lanes::new(weights, epilogue, first + 8),
                Lanes::new(weights, epilogue, first + 12),
            ];
            let mut group = 0;
            while group < groups {
                let z = i32x4_splat(0);
                let (mut a00, mut a01, mut a02, mut a03) = (z, z, z, z);
                let (mut a10, mut a11, mut a12, mut a13) = (z, z, z, z);
                let (mut a20, mut a21, mut a22, mut a23) = (z, z, z, z);
                let (mut a30, mut a31, mut a32, mut a33) = (z, z, z, z);
                // SAFETY: the asserts above bound every read: weight block `block` (< blocks)
                // spans `pairs · 4` vectors of `panels` from block · pairs · WIDE_ROWS u32, and
                // the four pixel rows of `group` (< groups) span `pairs` u32 each of `input`
                // from group · PIXELS · pairs · 2 i16; the loop stops when row 0 reaches row 1's
                // start. No load needs alignment.
                unsafe {
                    let mut w = weights.panels.as_ptr().add(block * pairs * WIDE_ROWS) as *const v128;
                    let mut x0 = input.as_ptr().add(group * PIXELS * pairs * 2) as *const u32;
                    let (mut x1, mut x2, mut x3) = (x0.add(pairs), x0.add(2 * pairs), x0.add(3 * pairs));
                    let end = x1;
                    while x0 < end {
                        // w{u}{g}: K pair u of the step, channels 4g..4g + 4 of the block.
                        let (w00, w01, w02, w03) =
                            (v128_load(w), v128_load(w.add(1)), v128_load(w.add(2)), v128_load(w.add(3)));
                        let (w10, w11, w12, w13) =
                            (v128_load(w.add(4)), v128_load(w.add(5)), v128_load(w.add(6)), v128_load(w.add(7)));
                        let (w20, w21, w22, w23) =
                            (v128_load(w.add(8)), v128_load(w.add(9)), v128_load(w.add(10)), v128_load(w.add(11)));
                        let (w30, w31, w32, w33) =
                            (v128_load(w.add(12)), v128_load(w.add(13)), v128_load(w.add(14)), v128_load(w.add(15)));
                        macro_rules! pixel {
                            ($x:ident, $a0:ident, $a1:ident, $a2:ident, $a3:ident) => {
                                let (s0, s1, s2, s3) = (
                                    v128_load32_splat($x),
                                    v128_load32_splat($x.add(1)),
                                    v128_load32_splat($x.add(2)),
                                    v128_load32_splat($x.add(3)),
                                );
                                $a0 = i32x4_add(
                                    $a0,
                                    i32x4_add(
                                        i32x4_add(i32x4_dot_i16x8(w00, s0), i32x4_dot_i16x8(w10, s1)),
                                        i32x4_add(i32x4_dot_i16x8(w20, s2), i32x4_dot_i16x8(w30, s3)),
                                    ),
                                );
                                $a1 = i32x4_add(
                                    $a1,
                                    i32x4_add(
                                        i32x4_add(i32x4_dot_i16x8(w01, s0), i32x4_dot_i16x8(w11, s1)),
                                        i32x4_add(i32x4_dot_i16x8(w21, s2), i32x4_dot_i16x8(w31, s3)),
                                    ),
                                );
                                $a2 = i32x4_add(
                                    $a2,
                                    i32x4_add(
                                        i32x4_add(i32x4_dot_i16x8(w02, s0), i32x4_dot_i16x8(w12, s1)),
                                        i32x4_add(i32x4_dot_i16x8(w22, s2), i32x4_dot_i16x8(w32, s3)),
                                    ),
                                );
                                $a3 = i32x4_add(
                                    $a3,
                                    i32x4_add(
                                        i32x4_add(i32x4_dot_i16x8(w03, s0), i32x4_dot_i16x8(w13, s1)),
                                        i32x4_add(i32x4_dot_i16x8(w23, s2), i32x4_dot_i16x8(w33, s3)),
                                    ),
                                );
                            };
                        }
                        pixel!(x0, a00, a01, a02, a03);
                        pixel!(x1, a10, a11, a12, a13);
                        pixel!(x2, a20, a21, a22, a23);
                        pixel!(x3, a30, a31, a32, a33);
                        w = w.add(STEP * 4);
                        x0 = x0.add(STEP);
                        x1 = x1.add(STEP);
                        x2 = x2.add(STEP);
                        x3 = x3.add(STEP);
                    }
                }
                let p = group * PIXELS;
                let at = first * strides.channel + p * strides.pixel;
                let quarter = 4 * strides.channel;
                let accumulators =
                    [[a00, a01, a02, a03], [a10, a11, a12, a13], [a20, a21, a22, a23], [a30, a31, a32, a33]];
                let mut j = 0;
                while j < PIXELS && p + j < pixels {
                    let at = at + j * strides.pixel;
                    let [g0, g1, g2, g3] = accumulators[j];
                    lanes[0].finish(g0, out, at, strides.channel);
                    lanes[1].finish(g1, out, at + quarter, strides.channel);
                    lanes[2].finish(g2, out, at + 2 * quarter, strides.channel);
                    lanes[3].finish(g3, out, at + 3 * quarter, strides.channel);
                    j += 1;
                }
                group += 1;
            }
            block += 1;
        }
    }
}
