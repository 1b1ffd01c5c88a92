//! The transposes around a dynamic int8 model's depthwise convolution (see
//! [`crate::ops::layout`]), per image of `channels × pixels` values: the zero-point shift that
//! writes a planar (CHW) u8/i8 image channels-last (HWC) as f32, and the transpose back to planar
//! with the scale multiply and bias add folded in. simd128 on wasm (4 × 4 blocks, scalar edges),
//! scalar elsewhere; [`reference`] computes each output element from its index.

use super::Int8;

/// The family's interface. Both functions handle every whole image of `channels × pixels`
/// values in `x` and `y`.
pub trait LayoutKernels {
    /// `y[p·C + c] = x[c·P + p] − zero_point` as f32, for each image.
    fn shift_interleave<T: Int8>(x: &[T], y: &mut [f32], channels: usize, pixels: usize, zero_point: i32);
    /// `y[c·P + p] = x[p·C + c]`, for each image; with `affine = (s, b)`, `x·s + b[c]` (a
    /// multiply, then an add, as tract's `Mul` and `Add` nodes it replaces).
    fn to_planar(x: &[f32], y: &mut [f32], channels: usize, pixels: usize, affine: Option<(f32, &[f32])>);
}

/// One element at a time, image by image.
pub struct Scalar;

impl LayoutKernels for Scalar {
    fn shift_interleave<T: Int8>(x: &[T], y: &mut [f32], channels: usize, pixels: usize, zero_point: i32) {
        let image = channels * pixels;
        for (x, y) in x.chunks_exact(image).zip(y.chunks_exact_mut(image)) {
            for c in 0..channels {
                for p in 0..pixels {
                    y[p * channels + c] = x[c * pixels + p].to_i32().wrapping_sub(zero_point) as f32;
                }
            }
        }
    }

    fn to_planar(x: &[f32], y: &mut [f32], channels: usize, pixels: usize, affine: Option<(f32, &[f32])>) {
        let image = channels * pixels;
        for (x, y) in x.chunks_exact(image).zip(y.chunks_exact_mut(image)) {
            for c in 0..channels {
                for p in 0..pixels {
                    let v = x[p * channels + c];
                    y[c * pixels + p] = match affine {
                        Some((scale, bias)) => v * scale + bias[c],
                        None => v,
                    };
                }
            }
        }
    }
}

/// What the operators call: [`Simd128`] in a wasm simd128 build, else [`Scalar`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub type Best = Simd128;
/// What the operators call: `Simd128` in a wasm simd128 build, else [`Scalar`].
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub type Best = Scalar;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use simd::{transpose, Simd128};

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    use super::{Int8, LayoutKernels};

    /// 4 × 4 blocks of lanes, scalar edges.
    pub struct Simd128;

    /// Rows `a..d` (four lanes each) as columns: lane i of the result j is lane j of row i.
    #[inline(always)]
    pub fn transpose(a: v128, b: v128, c: v128, d: v128) -> [v128; 4] {
        let (t0, t1) = (i32x4_shuffle::<0, 4, 1, 5>(a, b), i32x4_shuffle::<2, 6, 3, 7>(a, b));
        let (t2, t3) = (i32x4_shuffle::<0, 4, 1, 5>(c, d), i32x4_shuffle::<2, 6, 3, 7>(c, d));
        [
            i32x4_shuffle::<0, 1, 4, 5>(t0, t2),
            i32x4_shuffle::<2, 3, 6, 7>(t0, t2),
            i32x4_shuffle::<0, 1, 4, 5>(t1, t3),
            i32x4_shuffle::<2, 3, 6, 7>(t1, t3),
        ]
    }

    impl LayoutKernels for Simd128 {
        fn shift_interleave<T: Int8>(x: &[T], y: &mut [f32], channels: usize, pixels: usize, zero_point: i32) {
            let image = channels * pixels;
            let unsigned = T::from_clamped(255).to_i32() == 255;
            let zero = i32x4_splat(zero_point);
            let (c4, p4) = (channels / 4 * 4, pixels / 4 * 4);
            let mut base = 0;
            while base + image <= x.len().min(y.len()) {
                let (xs, ys) = (&x[base..base + image], &mut y[base..base + image]);
                // Four bytes of channel row `c` at pixel `p`, as four f32 lanes minus the zero point.
                let lanes = |c: usize, p: usize| {
                    // SAFETY: called with c < c4 <= channels and p + 4 <= p4 <= pixels, so the
                    // four bytes read at c·pixels + p are xs[c·pixels + p..][..4], inside this
                    // image (`T` is one byte); the 32-bit load needs no alignment.
                    let bytes = unsafe { v128_load32_zero(xs.as_ptr().add(c * pixels + p) as *const u32) };
                    let wide = if unsigned {
                        u32x4_extend_low_u16x8(u16x8_extend_low_u8x16(bytes))
                    } else {
                        i32x4_extend_low_i16x8(i16x8_extend_low_i8x16(bytes))
                    };
                    f32x4_convert_i32x4(i32x4_sub(wide, zero))
                };
                let mut c = 0;
                while c < c4 {
                    let mut p = 0;
                    while p < p4 {
                        let rows = transpose(lanes(c, p), lanes(c + 1, p), lanes(c + 2, p), lanes(c + 3, p));
                        let mut j = 0;
                        while j < 4 {
                            let at = (p + j) * channels + c;
                            assert!(at + 4 <= ys.len());
                            // SAFETY: ys[at..at + 4] is in bounds (asserted); no alignment is
                            // required.
                            unsafe { v128_store(ys.as_mut_ptr().add(at) as *mut v128, rows[j]) };
                            j += 1;
                        }
                        p += 4;
                    }
                    c += 4;
                }
                // The edges: channels past the last four, pixels past the last four.
                for c in 0..channels {
                    let from = if c < c4 { p4 } else { 0 };
                    for p in from..pixels {
                        ys[p * channels + c] = xs[c * pixels + p].to_i32().wrapping_sub(zero_point) as f32;
                    }
                }
                base += image;
            }
        }

        fn to_planar(x: &[f32], y: &mut [f32], channels: usize, pixels: usize, affine: Option<(f32, &[f32])>) {
            let image = channels * pixels;
            if let Some((_, bias)) = affine {
                assert!(bias.len() >= channels);
            }
            let scale = f32x4_splat(affine.map(|(s, _)| s).unwrap_or(1.0));
            let (c4, p4) = (channels / 4 * 4, pixels / 4 * 4);
            let mut base = 0;
            while base + image <= x.len().min(y.len()) {
                let (xs, ys) = (&x[base..base + image], &mut y[base..base + image]);
                // Channels c..c + 4 of pixel p.
                let load = |p: usize, c: usize| {
                    assert!(p * channels + c + 4 <= xs.len());
                    // SAFETY: xs[p·channels + c..][..4] is in bounds (asserted); no alignment
                    // is required.
                    unsafe { v128_load(xs.as_ptr().add(p * channels + c) as *const v128) }
                };
                let mut p = 0;
                while p < p4 {
                    let mut c = 0;
                    while c < c4 {
                        let rows = transpose(load(p, c), load(p + 1, c), load(p + 2, c), load(p + 3, c));
                        let mut j = 0;
                        while j < 4 {
                            let at = (c + j) * pixels + p;
                            assert!(at + 4 <= ys.len());
                            let row = match affine {
                                Some((_, bias)) => f32x4_add(f32x4_mul(rows[j], scale), f32x4_splat(bias[c + j])),
                                None => rows[j],
                            };
                            // SAFETY: ys[at..at + 4] is in bounds (asserted); no alignment is
                            // required.
                            unsafe { v128_store(ys.as_mut_ptr().add(at) as *mut v128, row) };
                            j += 1;
                        }
                        c += 4;
                    }
                    p += 4;
                }
                for c in 0..channels {
                    let from = if c < c4 { p4 } else { 0 };
                    for p in from..pixels {
                        let v = xs[p * channels + c];
                        ys[c * pixels + p] = match affine {
                            Some((scale, bias)) => v * scale + bias[c],
                            None => v,
                        };
                    }
                }
                base += image;
            }
        }
    }
}

/// Each output element computed from its own index: which image, pixel and channel it is, and
/// where that value sits in the input.
pub mod reference {
    use super::Int8;

    /// [`super::LayoutKernels::shift_interleave`] over the whole images of `x`.
    pub fn shift_interleave<T: Int8>(x: &[T], channels: usize, pixels: usize, zero_point: i32) -> Vec<f32> {
        let image = channels * pixels;
        let len = x.len() / image.max(1) * image;
        (0..len)
            .map(|i| {
                let (n, p, c) = (i / image, i % image / channels, i % channels);
                x[n * image + c * pixels + p].to_i32().wrapping_sub(zero_point) as f32
            })
            .collect()
    }

    /// [`super::LayoutKernels::to_planar`] over the whole images of `x`.
    pub fn to_planar(x: &[f32], channels: usize, pixels: usize, affine: Option<(f32, &[f32])>) -> Vec<f32> {
        let image = channels * pixels;
        let len = x.len() / image.max(1) * image;
        (0..len)
            .map(|i| {
                let (n, c, p) = (i / image, i % image / pixels, i % pixels);
                let v = x[n * image + p * channels + c];
                match affine {
                    Some((scale, bias)) => v * scale + bias[c],
                    None => v,
                }
            })
            .collect()
    }
}

/// Compares [`Best`] with [`reference`] over shapes with and without edges, u8 and i8: an error
/// names the first that differs.
pub fn check() -> Result<(), String> {
    check_kernels::<Best>()
}

/// [`check`] for any implementation of the family.
pub fn check_kernels<K: LayoutKernels>() -> Result<(), String> {
    for (channels, pixels, images) in [(4, 4, 1), (16, 20, 2), (5, 7, 1), (18, 9, 1), (3, 2, 2), (1, 13, 1)] {
        let n = channels * pixels * images;
        let bytes: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
        let signed: Vec<i8> = bytes.iter().map(|b| *b as i8).collect();
        let mut got = vec![1f32; n];
        K::shift_interleave(&bytes, &mut got, channels, pixels, 131);
        let want = reference::shift_interleave(&bytes, channels, pixels, 131);
        let mut got_i = vec![1f32; n];
        K::shift_interleave(&signed, &mut got_i, channels, pixels, -7);
        let want_i = reference::shift_interleave(&signed, channels, pixels, -7);
        let mut back = vec![1f32; n];
        K::to_planar(&want, &mut back, channels, pixels, None);
        let back_want = reference::to_planar(&want, channels, pixels, None);
        let bias: Vec<f32> = (0..channels).map(|c| c as f32 * 0.37 - 1.0).collect();
        let mut affine = vec![1f32; n];
        K::to_planar(&want, &mut affine, channels, pixels, Some((0.0173, &bias)));
        let affine_want = reference::to_planar(&want, channels, pixels, Some((0.0173, &bias)));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        if got != want || got_i != want_i || back != back_want || bits(&affine) != bits(&affine_want) {
            return Err(format!(
                "zero-point shift or transpose differs at {channels} channels × {pixels} pixels × {images}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_equal_the_reference() {
        check().unwrap();
        check_kernels::<Scalar>().unwrap();
    }

    #[test]
    fn shifting_interleaves_and_to_planar_undoes_it() {
        let (channels, pixels) = (3usize, 5usize);
        let planar: Vec<u8> = (0..(2 * channels * pixels) as u8).collect();
        let mut interleaved = vec![0f32; planar.len()];
        Best::shift_interleave(&planar, &mut interleaved, channels, pixels, 1);
        // Image 0, pixel 1, channel 2 is planar element 2·5 + 1, minus the zero point.
        assert_eq!(interleaved[channels + 2], 10.0);
        // Image 1 starts after image 0's 15 values; its pixel 0, channel 1 is its element 5.
        assert_eq!(interleaved[15 + 1], 19.0);
        let mut back = vec![0f32; planar.len()];
        Best::to_planar(&interleaved, &mut back, channels, pixels, None);
        assert_eq!(back, planar.iter().map(|v| *v as f32 - 1.0).collect::<Vec<_>>());
    }
}
