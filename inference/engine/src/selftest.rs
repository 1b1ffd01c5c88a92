//! A small fixed graph (matmul + bias + sigmoid) run through tract's optimiser, after checking
//! every one of our kernel families against its reference ([`crate::kernels::check_all`]).
//!
//! Its weights are a deterministic function of their index, so the output bits are the same on
//! every machine that computes IEEE f32 the same way; the digest lets a test compare a native run
//! with a run inside the canister, and one message with the next.

use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::sigmoid;

/// Rows and columns of the self-test matmul: large enough that tract picks a packed kernel.
const M: usize = 16;
const K: usize = 64;
const N: usize = 32;

/// What one self-test run computed and how.
#[derive(Clone, Debug, PartialEq)]
pub struct SelfTestOutcome {
    /// sha256 of the output tensor's little-endian f32 bytes.
    pub output_sha256: [u8; 32],
    /// The sum of the outputs, for humans.
    pub output_sum: f32,
    /// Each node of the optimised plan: op name and tract's own description (kernel names).
    pub plan: Vec<String>,
}

fn weight(i: usize) -> f32 {
    // Small, varied, exactly representable values.
    (((i * 37) % 23) as f32 - 11.0) / 16.0
}

fn build_model() -> TractResult<TypedModel> {
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact([M, K]))?;
    let w = Tensor::from_shape(&[K, N], &(0..K * N).map(weight).collect::<Vec<_>>())?;
    let w = model.add_const("w", w)?;
    let b = Tensor::from_shape(&[1, N], &(0..N).map(|i| weight(i + 7)).collect::<Vec<_>>())?;
    let b = model.add_const("b", b)?;
    let mm = model.wire_node("matmul", EinSum::new("mk,kn->mn".parse()?, f32::datum_type()), &[x, w])?;
    let biased = model.wire_node("bias", tract_onnx::tract_core::ops::math::add(), &[mm[0], b])?;
    let out = model.wire_node("sigmoid", sigmoid(), &biased)?;
    model.select_output_outlets(&out)?;
    Ok(model)
}

/// Builds, optimises and runs the self-test graph once.
pub fn run() -> TractResult<SelfTestOutcome> {
    // Our kernels (simd128 in the canister) must equal their references, bit for bit: tract's
    // scalar functions, a direct convolution.
    crate::kernels::check_all().map_err(TractError::msg)?;
    let model = build_model()?.into_optimized()?;
    let plan = model
        .nodes()
        .iter()
        .map(|n| format!("{}: {} {}", n.name, n.op.name(), n.op.info().unwrap_or_default().join(" ")))
        .collect();
    let runnable = model.into_runnable()?;
    let input = Tensor::from_shape(&[M, K], &(0..M * K).map(|i| weight(i + 3)).collect::<Vec<_>>())?;
    let outputs = runnable.run(tvec!(input.into()))?;
    let view = outputs[0].try_as_plain_ram()?;
    let values = view.as_slice::<f32>()?;
    let mut hasher = Sha256::new();
    for v in values {
        hasher.update(v.to_le_bytes());
    }
    Ok(SelfTestOutcome { output_sha256: hasher.finalize().into(), output_sum: values.iter().sum(), plan })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_test_is_deterministic_and_plausible() {
        let a = run().unwrap();
        let b = run().unwrap();
        assert_eq!(a, b);
        // Sigmoid outputs lie in (0, 1): the sum over M*N outputs does too, scaled.
        assert!(a.output_sum > 0.0 && a.output_sum < (M * N) as f32);
        assert!(a.plan.iter().any(|n| n.contains("matmul")), "{:?}", a.plan);
    }
}
