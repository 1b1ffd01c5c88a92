//! The max pool's windows along one output row: each output folds its window's values in
//! (row, column) order into a maximum that starts at `f32::MIN` and takes a value `v` where
//! `max < v` — tract's fold (a NaN is never taken, the first of equal values is kept, so −0 and
//! +0 keep their order). simd128 on wasm, four outputs a vector with `f32x4.pmax` (whose
//! definition, `a < b ? b : a`, is that fold exactly) for column steps of one and two, the
//! running maximum kept in a local across the whole window; scalar elsewhere and for the tails.
//! [`reference`] is the fold element by element.
//!
//! Folding the whole window of four outputs before storing them, instead of folding each
//! (row, column) of the window into the stored outputs, loads and stores the outputs once
//! instead of once per window value (`benchmarks/profile.md`, `PlanarMaxPool`).

/// The outputs of one row whose windows lie inside the image: output i folds `row[start + i ·
/// step + kx · dilation]` for each of `rows` in order and each kx < `taps` in order.
#[derive(Clone, Copy, Debug)]
pub struct Windows {
    pub start: usize,
    pub step: usize,
    pub taps: usize,
    pub dilation: usize,
}

impl Windows {
    /// Panics unless every value the windows of `count` outputs read lies in every row.
    fn check(&self, rows: &[&[f32]], count: usize) {
        if count > 0 && self.taps > 0 {
            let last = self.start + (count - 1) * self.step + (self.taps - 1) * self.dilation;
            assert!(rows.iter().all(|row| row.len() > last), "a max pool window outside its row");
        }
    }
}

/// The family's interface.
pub trait MaxPoolKernels {
    /// `out[i]` = the fold of output i's window over `rows` (see the module's documentation).
    fn windows(rows: &[&[f32]], windows: Windows, out: &mut [f32]);
}

/// One output at a time.
pub struct Scalar;

impl MaxPoolKernels for Scalar {
    fn windows(rows: &[&[f32]], windows: Windows, out: &mut [f32]) {
        windows.check(rows, out.len());
        windows_scalar(rows, windows, out, 0)
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

/// The outputs from `done` on, one at a time, without a bounds check per value (the caller
/// checked the windows).
fn windows_scalar(rows: &[&[f32]], w: Windows, out: &mut [f32], done: usize) {
    for (i, max) in out.iter_mut().enumerate().skip(done) {
        let mut m = f32::MIN;
        for row in rows {
            let (src, mut at) = (row.as_ptr(), w.start + i * w.step);
            for _ in 0..w.taps {
                // SAFETY: at <= start + (count − 1) · step + (taps − 1) · dilation < row.len()
                // (Windows::check, by the caller).
                let v = unsafe { *src.add(at) };
                m = if m < v { v } else { m };
                at += w.dilation;
            }
        }
        *max = m;
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    use super::*;

    /// Four outputs a vector for column steps of one and two (two loads and a shuffle keeping
    /// the even lanes), the rest one at a time.
    pub struct Simd128;

    impl MaxPoolKernels for Simd128 {
        fn windows(rows: &[&[f32]], w: Windows, out: &mut [f32]) {
            w.check(rows, out.len());
            let done = match w.step {
                1 => vectors::<1>(rows, w, out),
                2 => vectors::<2>(rows, w, out),
                _ => 0,
            };
            windows_scalar(rows, w, out, done)
        }
    }

    /// Four values `STEP` apart from `at`: one load, or two and a shuffle of the lanes wanted
    /// (the second load ends at the last value wanted, so a row's last window fits).
    ///
    /// # Safety
    /// `span::<STEP>()` values are readable at `at` (no alignment needed).
    #[inline(always)]
    unsafe fn taps<const STEP: usize>(at: *const f32) -> v128 {
        if STEP == 1 {
            v128_load(at as *const v128)
        } else {
            i32x4_shuffle::<0, 2, 5, 7>(v128_load(at as *const v128), v128_load(at.add(3) as *const v128))
        }
    }

    /// What four outputs `STEP` apart read of one tap's row: up to the last one's value.
    const fn span<const STEP: usize>() -> usize {
        3 * STEP + 1
    }

    /// The outputs four a vector while their vectors' reads lie in every row, the last four overlapping the ones
    /// before when the count is not a multiple of four (an output's value does not depend on
    /// which vector computes it); returns how many it wrote.
    fn vectors<const STEP: usize>(rows: &[&[f32]], w: Windows, out: &mut [f32]) -> usize {
        if w.taps == 0 || out.len() < 4 {
            return 0;
        }
        let shortest = rows.iter().map(|row| row.len()).min().unwrap_or(0);
        let (count, span) = (out.len(), (w.taps - 1) * w.dilation + span::<STEP>());
        let fits = |i: usize| w.start + i * STEP + span <= shortest;
        let mut i = 0;
        while i + 4 <= count && fits(i) {
            // SAFETY: fits(i), and i + 4 <= count = out.len().
            unsafe { v128_store(out.as_mut_ptr().add(i) as *mut v128, window::<STEP>(rows, w, i)) };
            i += 4;
        }
        if i < count && fits(count - 4) {
            // SAFETY: fits(count − 4), and count − 4 + 4 = out.len().
            unsafe { v128_store(out.as_mut_ptr().add(count - 4) as *mut v128, window::<STEP>(rows, w, count - 4)) };
            i = count;
        }
        i
    }

    /// Outputs i..i + 4: the window's maxima, folded in (row, tap) order. The step is a
    /// constant and three taps (3×3 pools) are spelled out, so the loop is only the loads and
    /// the maxima.
    ///
    /// # Safety
    /// start + i · STEP + (taps − 1) · dilation + span::<STEP>() <= every row's length.
    #[inline(always)]
    unsafe fn window<const STEP: usize>(rows: &[&[f32]], w: Windows, i: usize) -> v128 {
        let mut m = f32x4_splat(f32::MIN);
        for row in rows {
            let at = row.as_ptr().add(w.start + i * STEP);
            if w.taps == 3 {
                m = f32x4_pmax(m, taps::<STEP>(at));
                m = f32x4_pmax(m, taps::<STEP>(at.add(w.dilation)));
                m = f32x4_pmax(m, taps::<STEP>(at.add(2 * w.dilation)));
            } else {
                for kx in 0..w.taps {
                    m = f32x4_pmax(m, taps::<STEP>(at.add(kx * w.dilation)));
                }
            }
        }
        m
    }
}

pub mod reference {
    use super::{Best, MaxPoolKernels, Windows};

    /// The fold value by value, as tract's pool compares.
    pub fn windows(rows: &[&[f32]], w: Windows, out: &mut [f32]) {
        for (i, max) in out.iter_mut().enumerate() {
            *max = f32::MIN;
            for row in rows {
                for kx in 0..w.taps {
                    let v = row[w.start + i * w.step + kx * w.dilation];
                    if *max < v {
                        *max = v;
                    }
                }
            }
        }
    }

    /// Compares [`Best`] with [`windows`]: simd128 in the canister (which never runs the
    /// scalar kernel whole, so its code space is not spent checking it), scalar natively.
    pub fn check() -> Result<(), String> {
        check_kernels::<Best>()
    }

    /// Compares kernel `K` with [`windows`] bit for bit, at steps 1 to 3, one to three rows
    /// and taps, dilations 1 and 2, output counts around the vector width and rows exactly as
    /// long as the windows need or longer, over values with NaNs, both zeros, equal values and
    /// infinities. An error names the first case that differs.
    pub fn check_kernels<K: MaxPoolKernels>() -> Result<(), String> {
        let special =
            [f32::NAN, -0.0, 0.0, 1.5, 1.5, f32::NEG_INFINITY, f32::INFINITY, -2.25, f32::MIN, 7.0, 0.0, -0.0];
        let value = |i: usize, salt: usize| {
            let j = i * 7 + salt * 3;
            if j.is_multiple_of(4) {
                special[j % special.len()]
            } else {
                ((j * 37 % 23) as f32 - 11.0) * 0.5
            }
        };
        for step in 1..=3 {
            for (taps, dilation) in [(1, 1), (2, 1), (3, 1), (3, 2)] {
                for (count, rows) in [(0, 1), (1, 2), (3, 3), (4, 1), (5, 3), (8, 2), (11, 3), (19, 3)] {
                    for (start, spare) in [(0, 0), (1, 0), (2, 7)] {
                        let need =
                            if count == 0 { start } else { start + (count - 1) * step + (taps - 1) * dilation + 1 };
                        let values: Vec<Vec<f32>> =
                            (0..rows).map(|r| (0..need + spare + r).map(|i| value(i, r + step)).collect()).collect();
                        let rows: Vec<&[f32]> = values.iter().map(Vec::as_slice).collect();
                        let w = Windows { start, step, taps, dilation };
                        let (mut want, mut got) = (vec![0f32; count], vec![0f32; count]);
                        windows(&rows, w, &mut want);
                        K::windows(&rows, w, &mut got);
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        if bits(&want) != bits(&got) {
                            return Err(format!(
                                "max pool windows ({w:?}, {count} outputs, {} rows, {spare} spare) differ from the reference ({})",
                                rows.len(),
                                std::any::type_name::<K>()
                            ));
                        }
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
