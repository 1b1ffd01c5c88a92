//! The activations our convolution kernels apply to each output before storing it, in place of
//! the graph's node that followed the convolution: nothing, a ReLU, or a HardSwish. Scalar
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
}

impl Activation {
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Relu => relu(x),
            Activation::HardSwish => hard_swish(x),
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

/// [`Activation::apply`] on four lanes.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
pub fn activate(v: core::arch::wasm32::v128, activation: Activation) -> core::arch::wasm32::v128 {
    use core::arch::wasm32::*;
    match activation {
        Activation::Identity => v,
        Activation::Relu => f32x4_max(v, f32x4_splat(0.0)),
        Activation::HardSwish => {
            // clamp(t, 0, 6) as Rust spells it: t < 0 → 0, then t > 6 → 6 (NaN kept);
            // pmax(t, 0) is `t < 0 ? 0 : t` and pmin(t, 6) is `6 < t ? 6 : t`.
            let relu6 = f32x4_pmin(f32x4_pmax(f32x4_add(v, f32x4_splat(3.0)), f32x4_splat(0.0)), f32x4_splat(6.0));
            f32x4_mul(f32x4_mul(v, relu6), f32x4_splat(1.0 / 6.0))
        }
    }
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
    fn relu_is_wasm_max_with_zero() {
        assert_eq!(relu(-0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(relu(-2.0), 0.0);
        assert_eq!(relu(2.5), 2.5);
        assert!(relu(f32::NAN).is_nan());
    }
}
