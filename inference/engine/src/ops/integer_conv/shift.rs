//! The input and output of a dynamic int8 model's grouped or depthwise convolution that
//! [`super::rewrite`] moves to tract's f32 convolution, where sums of at most 256 products of
//! small integers are exact:
//! - [`ZeroPointShift`]: `x − zero_point` as f32, the zero point an input computed per
//!   inference, optionally written channels-last (HWC) for tract's wasm depthwise kernel, which
//!   is 4.5× cheaper there than on channel planes;
//! - [`ToPlanar`]: the convolution's HWC output back to the CHW the rest of the graph reads.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::super::qdq::{kernels as qdq_kernels, Dequantize};

/// `[N,] C, H, W` → `[N,] H, W, C`: the shape of a planar image held interleaved.
fn interleaved_shape<D: Clone>(shape: &[D], batch: bool) -> TVec<D> {
    let image = &shape[batch as usize..];
    shape[..batch as usize].iter().chain(&image[1..]).chain(&image[..1]).cloned().collect()
}

/// `[N,] H, W, C` → `[N,] C, H, W`.
fn planar_shape<D: Clone>(shape: &[D], batch: bool) -> TVec<D> {
    let image = &shape[batch as usize..];
    let last = image.len() - 1;
    shape[..batch as usize].iter().chain(&image[last..]).chain(&image[..last]).cloned().collect()
}

/// The transposes, per image of `channels × pixels` values: simd128 on wasm (4 × 4 blocks,
/// scalar edges), scalar elsewhere and as the self-test's reference.
pub mod kernels {
    use super::super::super::qdq::Int8;

    /// `y[p·C + c] = x[c·P + p] − zero_point` as f32, for each image.
    pub fn shift_interleave_scalar<T: Int8>(x: &[T], y: &mut [f32], channels: usize, pixels: usize, zero_point: i32) {
        let image = channels * pixels;
        for (x, y) in x.chunks_exact(image).zip(y.chunks_exact_mut(image)) {
            for c in 0..channels {
                for p in 0..pixels {
                    y[p * channels + c] = x[c * pixels + p].to_i32().wrapping_sub(zero_point) as f32;
                }
            }
        }
    }

    /// `y[c·P + p] = x[p·C + c]`, for each image; with `affine = (s, b)`, `x·s + b[c]` (a
    /// multiply, then an add, as tract's `Mul` and `Add` nodes it replaces).
    pub fn to_planar_scalar(x: &[f32], y: &mut [f32], channels: usize, pixels: usize, affine: Option<(f32, &[f32])>) {
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

    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    pub fn shift_interleave<T: Int8>(x: &[T], y: &mut [f32], channels: usize, pixels: usize, zero_point: i32) {
        shift_interleave_scalar(x, y, channels, pixels, zero_point)
    }

    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    pub fn to_planar(x: &[f32], y: &mut [f32], channels: usize, pixels: usize, affine: Option<(f32, &[f32])>) {
        to_planar_scalar(x, y, channels, pixels, affine)
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    mod simd {
        use core::arch::wasm32::*;

        /// Rows `a..d` (four lanes each) as columns: lane i of the result j is lane j of row i.
        #[inline(always)]
        pub fn transpose(a: v128, b: v128, c: v128, d: v128) -> [v128; 4] {
            let (t0, t1) = (i32x4_shuffle::<0, 4, 1, 5>(a, b), i32x4_shuffle::<2, 6, 3, 7>(a, b));
            let (t2, t3) = (i32x4_shuffle::<0, 4, 1, 5>(c, d), i32x4_shuffle::<2, 6, 3, 7>(c, d));
            [i32x4_shuffle::<0, 1, 4, 5>(t0, t2), i32x4_shuffle::<2, 3, 6, 7>(t0, t2), i32x4_shuffle::<0, 1, 4, 5>(t1, t3), i32x4_shuffle::<2, 3, 6, 7>(t1, t3)]
        }
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    pub fn shift_interleave<T: Int8>(x: &[T], y: &mut [f32], channels: usize, pixels: usize, zero_point: i32) {
        use core::arch::wasm32::*;
        let image = channels * pixels;
        let unsigned = T::from_clamped(255).to_i32() == 255;
        let zero = i32x4_splat(zero_point);
        let (c4, p4) = (channels / 4 * 4, pixels / 4 * 4);
        let mut base = 0;
        while base + image <= x.len().min(y.len()) {
            let (xs, ys) = (&x[base..base + image], &mut y[base..base + image]);
            // Four bytes of channel row `c` at pixel `p`, as four f32 lanes minus the zero point.
            let lanes = |c: usize, p: usize| {
                // SAFETY: c < channels and p + 4 <= pixels: inside this image's row c.
                let bytes = unsafe { v128_load32_zero(xs.as_ptr().add(c * pixels + p) as *const u32) };
                let wide = if unsigned { u32x4_extend_low_u16x8(u16x8_extend_low_u8x16(bytes)) } else { i32x4_extend_low_i16x8(i16x8_extend_low_i8x16(bytes)) };
                f32x4_convert_i32x4(i32x4_sub(wide, zero))
            };
            let mut c = 0;
            while c < c4 {
                let mut p = 0;
                while p < p4 {
                    let rows = simd::transpose(lanes(c, p), lanes(c + 1, p), lanes(c + 2, p), lanes(c + 3, p));
                    let mut j = 0;
                    while j < 4 {
                        let at = (p + j) * channels + c;
                        assert!(at + 4 <= ys.len());
                        // SAFETY: asserted in bounds.
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

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    pub fn to_planar(x: &[f32], y: &mut [f32], channels: usize, pixels: usize, affine: Option<(f32, &[f32])>) {
        use core::arch::wasm32::*;
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
                // SAFETY: asserted in bounds.
                unsafe { v128_load(xs.as_ptr().add(p * channels + c) as *const v128) }
            };
            let mut p = 0;
            while p < p4 {
                let mut c = 0;
                while c < c4 {
                    let rows = simd::transpose(load(p, c), load(p + 1, c), load(p + 2, c), load(p + 3, c));
                    let mut j = 0;
                    while j < 4 {
                        let at = (c + j) * pixels + p;
                        assert!(at + 4 <= ys.len());
                        let row = match affine {
                            Some((_, bias)) => f32x4_add(f32x4_mul(rows[j], scale), f32x4_splat(bias[c + j])),
                            None => rows[j],
                        };
                        // SAFETY: asserted in bounds.
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

/// Compares the transposes (simd128 on wasm) with their scalar forms over shapes with and
/// without edges, u8 and i8: an error names the first that differs.
pub fn check_kernels() -> Result<(), String> {
    for (channels, pixels, images) in [(4, 4, 1), (16, 20, 2), (5, 7, 1), (18, 9, 1), (3, 2, 2), (1, 13, 1)] {
        let n = channels * pixels * images;
        let bytes: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
        let signed: Vec<i8> = bytes.iter().map(|b| *b as i8).collect();
        let (mut want, mut got) = (vec![0f32; n], vec![1f32; n]);
        kernels::shift_interleave_scalar(&bytes, &mut want, channels, pixels, 131);
        kernels::shift_interleave(&bytes, &mut got, channels, pixels, 131);
        let (mut want_i, mut got_i) = (vec![0f32; n], vec![1f32; n]);
        kernels::shift_interleave_scalar(&signed, &mut want_i, channels, pixels, -7);
        kernels::shift_interleave(&signed, &mut got_i, channels, pixels, -7);
        let (mut back_want, mut back) = (vec![0f32; n], vec![1f32; n]);
        kernels::to_planar_scalar(&want, &mut back_want, channels, pixels, None);
        kernels::to_planar(&want, &mut back, channels, pixels, None);
        let bias: Vec<f32> = (0..channels).map(|c| c as f32 * 0.37 - 1.0).collect();
        let (mut affine_want, mut affine) = (vec![0f32; n], vec![1f32; n]);
        kernels::to_planar_scalar(&want, &mut affine_want, channels, pixels, Some((0.0173, &bias)));
        kernels::to_planar(&want, &mut affine, channels, pixels, Some((0.0173, &bias)));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        if got != want || got_i != want_i || back != back_want || bits(&affine) != bits(&affine_want) {
            return Err(format!("zero-point shift or transpose differs at {channels} channels × {pixels} pixels × {images}"));
        }
    }
    Ok(())
}

/// `x − zero_point` as f32; with `interleave`, a planar `[N,] C, H, W` input is written
/// `[N,] H, W, C`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZeroPointShift {
    /// `Some(batch)`: transpose to HWC (the input has a leading batch axis when `batch`).
    pub interleave: Option<bool>,
}

impl Op for ZeroPointShift {
    fn name(&self) -> StaticName {
        "ZeroPointShift".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ZeroPointShift {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (input, zero_point) = (&inputs[0], inputs[1].cast_to_scalar::<i32>()?);
        // Our simd128 dequantize with scale 1: exact, since u8/i8 values minus a zero point
        // are small integers.
        let shape = input.shape();
        let view = input.try_as_plain_ram()?;
        let Some(batch) = self.interleave else {
            let shift = Dequantize { scale: 1.0, zero_point };
            let mut out = unsafe { Tensor::uninitialized::<f32>(shape)? };
            let mut plain = out.try_as_plain_ram_mut()?;
            let ys = plain.as_slice_mut::<f32>()?;
            match input.datum_type() {
                DatumType::U8 => qdq_kernels::dequantize(&shift, view.as_slice::<u8>()?, ys),
                DatumType::I8 => qdq_kernels::dequantize(&shift, view.as_slice::<i8>()?, ys),
                dt => bail!("ZeroPointShift reads u8 or i8, not {dt:?}"),
            }
            return Ok(tvec!(out.into_tvalue()));
        };
        let (channels, pixels) = (shape[batch as usize], shape[batch as usize + 1..].iter().product());
        let mut out = unsafe { Tensor::uninitialized::<f32>(&interleaved_shape(shape, batch))? };
        let mut plain = out.try_as_plain_ram_mut()?;
        let ys = plain.as_slice_mut::<f32>()?;
        match input.datum_type() {
            DatumType::U8 => kernels::shift_interleave(view.as_slice::<u8>()?, ys, channels, pixels, zero_point),
            DatumType::I8 => kernels::shift_interleave(view.as_slice::<i8>()?, ys, channels, pixels, zero_point),
            dt => bail!("ZeroPointShift reads u8 or i8, not {dt:?}"),
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for ZeroPointShift {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = inputs[0].shape.to_tvec();
        Ok(tvec!(f32::fact(match self.interleave {
            Some(batch) => interleaved_shape(&shape, batch),
            None => shape,
        })))
    }

    as_op!();
}

/// An f32 `[N,] H, W, C` tensor written `[N,] C, H, W`; with a `bias`, also multiplied by the
/// scale that is its second input and added the bias per channel (the scale multiply and bias
/// add a dynamic convolution's output goes through, folded into this pass).
#[derive(Clone, Debug, PartialEq)]
pub struct ToPlanar {
    pub batch: bool,
    pub bias: Option<std::sync::Arc<Vec<f32>>>,
}

impl Eq for ToPlanar {}

impl Op for ToPlanar {
    fn name(&self) -> StaticName {
        "ToPlanar".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ToPlanar {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let channels = *input.shape().last().context("ToPlanar: a scalar")?;
        let pixels = input.shape()[self.batch as usize..input.rank() - 1].iter().product();
        let mut out = unsafe { Tensor::uninitialized::<f32>(&planar_shape(input.shape(), self.batch))? };
        let scale = match &self.bias {
            Some(_) => Some(inputs.get(1).context("ToPlanar: the scale input")?.cast_to_scalar::<f32>()?),
            None => None,
        };
        let affine = scale.zip(self.bias.as_deref().map(|b| b.as_slice()));
        kernels::to_planar(input.try_as_plain_ram()?.as_slice::<f32>()?, out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?, channels, pixels, affine);
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for ToPlanar {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(planar_shape(&inputs[0].shape.to_tvec(), self.batch))))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifting_interleaves_and_to_planar_undoes_it() {
        let (channels, pixels) = (3usize, 5usize);
        let planar: Vec<u8> = (0..(2 * channels * pixels) as u8).collect();
        let mut interleaved = vec![0f32; planar.len()];
        kernels::shift_interleave(&planar, &mut interleaved, channels, pixels, 1);
        // Image 0, pixel 1, channel 2 is planar element 2·5 + 1, minus the zero point.
        assert_eq!(interleaved[channels + 2], 10.0);
        // Image 1 starts after image 0's 15 values; its pixel 0, channel 1 is its element 5.
        assert_eq!(interleaved[15 + 1], 19.0);
        let mut back = vec![0f32; planar.len()];
        kernels::to_planar(&interleaved, &mut back, channels, pixels, None);
        assert_eq!(back, planar.iter().map(|v| *v as f32 - 1.0).collect::<Vec<_>>());
        let shape: TVec<TDim> = tvec!(1.into(), 3.into(), 4.into(), 5.into());
        assert_eq!(interleaved_shape(&shape, true), tvec!(1.to_dim(), 4.into(), 5.into(), 3.into()));
        assert_eq!(planar_shape(&interleaved_shape(&shape, true), true), shape);
        assert_eq!(interleaved_shape(&shape[1..], false), tvec!(4.to_dim(), 5.into(), 3.into()));
        check_kernels().unwrap();
    }
}
