//! The max pool's fold of one input row segment into one output row: `maxes[i] = v` where
//! `maxes[i] < v`, for `v = from[i · step]` — tract's fold (a NaN is never taken, the first of
//! equal values is kept, so −0 and +0 keep their order). simd128 on wasm, four outputs a vector
//! with `f32x4.pmax` (whose definition, `a < b ? b : a`, is that fold exactly, at one instruction
//! under the IC's cost table), for steps of one and two; scalar elsewhere and for the tails.
//! [`reference`] is the fold element by element.

/// The family's interface.
pub trait MaxPoolKernels {
    /// The fold (see the module's documentation); `from` holds at least
    /// `(maxes.len() − 1) · step + 1` values.
    fn fold(from: &[f32], step: usize, maxes: &mut [f32]);
}

/// One element at a time.
pub struct Scalar;

impl MaxPoolKernels for Scalar {
    fn fold(from: &[f32], step: usize, maxes: &mut [f32]) {
        fold_scalar(from, step, maxes, 0)
    }
}

/// What the operator calls: [`Simd128`] in a wasm simd128 build, else [`Scalar`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub type Best = Simd128;
/// What the operator calls: `Simd128` in a wasm simd128 build, else [`Scalar`].
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub type Best = Scalar;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use simd::Simd128;

/// The fold from output `done` on, without a bounds check per element.
fn fold_scalar(from: &[f32], step: usize, maxes: &mut [f32], done: usize) {
    let count = maxes.len();
    assert!(count == 0 || from.len() > (count - 1) * step);
    let (src, dst) = (from.as_ptr(), maxes.as_mut_ptr());
    let (mut i, mut at) = (done, done * step);
    while i < count {
        // SAFETY: i < count, so at = i · step <= (count − 1) · step < from.len() (asserted), and
        // maxes[i] is in bounds.
        unsafe {
            let (v, m) = (*src.add(at), *dst.add(i));
            *dst.add(i) = if m < v { v } else { m };
        }
        at += step;
        i += 1;
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    use super::*;

    /// Four outputs a vector for steps of one and two (two loads and a shuffle keeping the even
    /// lanes), the rest one at a time.
    pub struct Simd128;

    impl MaxPoolKernels for Simd128 {
        fn fold(from: &[f32], step: usize, maxes: &mut [f32]) {
            let (count, len) = (maxes.len(), from.len());
            let (src, dst) = (from.as_ptr(), maxes.as_mut_ptr());
            let mut i = 0;
            if step == 1 {
                while i + 4 <= count && i + 4 <= len {
                    // SAFETY: from[i..i + 4] and maxes[i..i + 4] are in bounds (checked just
                    // above); no alignment is required.
                    unsafe {
                        let (v, m) = (v128_load(src.add(i) as *const v128), v128_load(dst.add(i) as *const v128));
                        v128_store(dst.add(i) as *mut v128, f32x4_pmax(m, v));
                    }
                    i += 4;
                }
            } else if step == 2 {
                while i + 4 <= count && 2 * i + 8 <= len {
                    // SAFETY: from[2i..2i + 8] and maxes[i..i + 4] are in bounds (checked just
                    // above); no alignment is required.
                    unsafe {
                        let at = src.add(2 * i);
                        let (a, b) = (v128_load(at as *const v128), v128_load(at.add(4) as *const v128));
                        let m = v128_load(dst.add(i) as *const v128);
                        v128_store(dst.add(i) as *mut v128, f32x4_pmax(m, i32x4_shuffle::<0, 2, 4, 6>(a, b)));
                    }
                    i += 4;
                }
            }
            fold_scalar(from, step, maxes, i)
        }
    }
}

pub mod reference {
    use super::{Best, MaxPoolKernels, Scalar};

    /// The fold element by element, as tract's pool compares.
    pub fn fold(from: &[f32], step: usize, maxes: &mut [f32]) {
        for (i, m) in maxes.iter_mut().enumerate() {
            let v = from[i * step];
            if *m < v {
                *m = v;
            }
        }
    }

    /// Compares [`Best`] (simd128 on wasm) and [`Scalar`] with [`fold`].
    pub fn check() -> Result<(), String> {
        check_kernels::<Best>()?;
        check_kernels::<Scalar>()
    }

    /// Compares kernel `K` with [`fold`] bit for bit, at steps 1 to 3 and lengths around the
    /// vector width, over values with NaNs, both zeros, equal values and infinities. An error
    /// names the first case that differs.
    pub fn check_kernels<K: MaxPoolKernels>() -> Result<(), String> {
        let special = [f32::NAN, -0.0, 0.0, 1.5, 1.5, f32::NEG_INFINITY, f32::INFINITY, -2.25, f32::MIN, 7.0];
        let value = |i: usize, salt: usize| {
            let j = i * 7 + salt * 3;
            if j.is_multiple_of(5) {
                special[j % special.len()]
            } else {
                ((j * 37 % 23) as f32 - 11.0) * 0.5
            }
        };
        for step in 1..=3 {
            for count in [0, 1, 3, 4, 5, 8, 11, 16, 19] {
                // Exactly as many values as the fold reads, and some to spare.
                for spare in [0, 5] {
                    let len = if count == 0 { spare } else { (count - 1) * step + 1 + spare };
                    let from: Vec<f32> = (0..len).map(|i| value(i, 1)).collect();
                    let start: Vec<f32> =
                        (0..count).map(|i| if i.is_multiple_of(3) { f32::MIN } else { value(i, 2) }).collect();
                    let (mut want, mut got) = (start.clone(), start);
                    fold(&from, step, &mut want);
                    K::fold(&from, step, &mut got);
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    if bits(&want) != bits(&got) {
                        return Err(format!(
                            "max pool fold (step {step}, {count} outputs, {len} inputs, {}) differs from the reference",
                            std::any::type_name::<K>()
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn kernels_equal_the_reference() {
            super::check().unwrap();
        }
    }
}
