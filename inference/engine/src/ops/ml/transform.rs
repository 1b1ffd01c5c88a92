//! The score transforms of the ONNX-ML classifiers and regressors (`post_transform`), computed as
//! onnxruntime computes them (f32, the standard exponential), so labels and probabilities agree
//! with it.

use tract_onnx::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PostTransform {
    None,
    Softmax,
    Logistic,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    pub fn parse(name: Option<&str>) -> TractResult<PostTransform> {
        Ok(match name.unwrap_or("NONE") {
            "NONE" => PostTransform::None,
            "SOFTMAX" => PostTransform::Softmax,
            "LOGISTIC" => PostTransform::Logistic,
            "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
            "PROBIT" => PostTransform::Probit,
            other => tract_onnx::tract_core::internal::bail!("unknown post_transform {other:?}"),
        })
    }

    /// Transforms one row of two or more scores in place.
    pub fn apply(self, scores: &mut [f32]) {
        match self {
            PostTransform::None => {}
            PostTransform::Logistic => scores.iter_mut().for_each(|s| *s = logistic(*s)),
            PostTransform::Probit => scores.iter_mut().for_each(|s| *s = probit(*s)),
            PostTransform::Softmax => softmax(scores),
            PostTransform::SoftmaxZero => softmax_zero(scores),
        }
    }
}

/// onnxruntime's logistic: `1 - a` below zero (not the better-conditioned form), for equal bits.
pub fn logistic(v: f32) -> f32 {
    let a = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 {
        1.0 - a
    } else {
        a
    }
}

/// `√2 · erfinv(2v − 1)`, with Winitzki's approximation of erfinv as onnxruntime has it.
pub fn probit(v: f32) -> f32 {
    std::f32::consts::SQRT_2 * erfinv(2.0 * v - 1.0)
}

fn erfinv(x: f32) -> f32 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let l = ((1.0 - x) * (1.0 + x)).ln();
    let a = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * l;
    let b = (1.0 / 0.147) * l;
    sign * (-a + (a * a - b).sqrt()).sqrt()
}

fn softmax(v: &mut [f32]) {
    let max = v.iter().fold(-f32::MAX, |m, &x| m.max(x));
    let mut sum = 0f32;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    v.iter_mut().for_each(|x| *x /= sum);
}

/// Softmax where (near-)zero scores stay zero and do not count in the sum.
fn softmax_zero(v: &mut [f32]) {
    let max = v.iter().fold(-f32::MAX, |m, &x| m.max(x));
    let zero = (-max).exp();
    let mut sum = 0f32;
    for x in v.iter_mut() {
        if x.abs() > 1e-7 {
            *x = (*x - max).exp();
            sum += *x;
        } else {
            *x *= zero;
        }
    }
    v.iter_mut().for_each(|x| *x /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms_match_their_definitions() {
        assert_eq!(logistic(0.0), 0.5);
        assert!((logistic(-2.0) - 1.0 / (1.0 + 2f32.exp())).abs() < 1e-7);
        let mut row = [1.0, 2.0, 3.0];
        PostTransform::Softmax.apply(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6 && row[2] > row[1]);
        assert!(probit(0.5).abs() < 1e-6);
        assert!((probit(0.975) - 1.96).abs() < 2e-2);
        let mut zeros = [0.0, 1.0];
        PostTransform::SoftmaxZero.apply(&mut zeros);
        assert_eq!(zeros, [0.0, 1.0]);
    }
}
