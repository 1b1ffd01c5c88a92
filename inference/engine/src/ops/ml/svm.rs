//! `SVMClassifier`: one-vs-one support vector classification (what scikit-learn's `SVC`
//! exports), with Platt-scaled pairwise probabilities coupled into class probabilities when the
//! model carries them, as onnxruntime computes them: the label from the pairwise votes, the
//! decisions accumulated in f64, probabilities in f32 with its fixed iteration count.
//! The linear form (no support vectors: one coefficient row per class) is also taken.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::transform::{logistic, probit, PostTransform};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    Linear,
    Poly { gamma: f32, coef0: f32, degree: f32 },
    Rbf { gamma: f32 },
    Sigmoid { gamma: f32, coef0: f32 },
}

impl Kernel {
    pub fn parse(name: Option<&str>, params: &[f32]) -> TractResult<Kernel> {
        let (gamma, coef0, degree) = match params {
            [] => (0.0, 0.0, 0.0),
            [g, c, d, ..] => (*g, *c, *d),
            _ => bail!("kernel_params needs gamma, coef0 and degree"),
        };
        Ok(match name.unwrap_or("LINEAR") {
            "LINEAR" => Kernel::Linear,
            "POLY" => Kernel::Poly { gamma, coef0, degree },
            "RBF" => Kernel::Rbf { gamma },
            "SIGMOID" => Kernel::Sigmoid { gamma, coef0 },
            other => bail!("unknown kernel_type {other:?}"),
        })
    }

    fn eval(&self, x: &[f32], v: &[f32]) -> f32 {
        let dot = || x.iter().zip(v).fold(0f32, |acc, (a, b)| acc + a * b);
        match *self {
            Kernel::Linear => dot(),
            Kernel::Poly { gamma, coef0, degree } => {
                let base = gamma * dot() + coef0;
                // onnxruntime compares the float degree with 2 and 3.
                if degree == 2.0 {
                    base * base
                } else if degree == 3.0 {
                    base * base * base
                } else {
                    base.powf(degree)
                }
            }
            Kernel::Rbf { gamma } => {
                let distance = x.iter().zip(v).fold(0f32, |acc, (a, b)| acc + (a - b) * (a - b));
                (-gamma * distance).exp()
            }
            Kernel::Sigmoid { gamma, coef0 } => (gamma * dot() + coef0).tanh(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SvmClassifier {
    pub labels: Vec<i64>,
    /// Text class labels, as [`crate::ops::ml::tree::TreeClassifier::text_labels`].
    pub text_labels: Vec<String>,
    pub kernel: Kernel,
    /// Support vectors per class (empty in the linear form).
    pub vectors_per_class: Vec<usize>,
    pub support_vectors: Vec<f32>,
    pub coefficients: Vec<f32>,
    pub rho: Vec<f32>,
    pub prob_a: Vec<f32>,
    pub prob_b: Vec<f32>,
    pub post: PostTransform,
    pub features: usize,
}

impl SvmClassifier {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        labels: Vec<i64>,
        kernel: Kernel,
        vectors_per_class: Vec<usize>,
        support_vectors: Vec<f32>,
        coefficients: Vec<f32>,
        rho: Vec<f32>,
        prob_a: Vec<f32>,
        prob_b: Vec<f32>,
        post: PostTransform,
    ) -> TractResult<SvmClassifier> {
        let n = labels.len();
        ensure!(n >= 2, "an SVM classifier needs two classes or more");
        ensure!(!coefficients.is_empty() && !rho.is_empty(), "coefficients and rho are required");
        ensure!(prob_a.len() == prob_b.len(), "prob_a and prob_b differ in length");
        let vectors = vectors_per_class.iter().try_fold(0usize, |sum, &v| sum.checked_add(v));
        let vectors = vectors.context("vectors_per_class sums past the address space")?;
        let features = if vectors > 0 {
            ensure!(
                vectors_per_class.len() == n,
                "vectors_per_class has {} entries for {n} classes",
                vectors_per_class.len()
            );
            ensure!(support_vectors.len().is_multiple_of(vectors), "support_vectors is not a whole number of vectors");
            ensure!(coefficients.len() == (n - 1) * vectors, "coefficients must be (classes − 1) × vectors");
            ensure!(rho.len() >= n * (n - 1) / 2, "rho needs one value per pair of classes");
            if !prob_a.is_empty() {
                ensure!(prob_a.len() >= n * (n - 1) / 2, "prob_a needs one value per pair of classes");
            }
            support_vectors.len() / vectors
        } else {
            ensure!(coefficients.len().is_multiple_of(n), "coefficients must be classes × features");
            coefficients.len() / n
        };
        Ok(SvmClassifier {
            labels,
            text_labels: vec![],
            kernel: if vectors > 0 { kernel } else { Kernel::Linear },
            vectors_per_class,
            support_vectors,
            coefficients,
            rho,
            prob_a,
            prob_b,
            post,
            features,
        })
    }

    fn vectors(&self) -> usize {
        self.vectors_per_class.iter().sum()
    }

    /// Columns of the score output.
    pub fn width(&self) -> usize {
        let n = self.labels.len();
        if self.vectors() > 0 && self.prob_a.is_empty() && n > 2 {
            n * (n - 1) / 2
        } else if self.vectors() > 0 && self.prob_a.is_empty() {
            2
        } else {
            n
        }
    }

    /// The label of `row`, with its scores written into `scores` (`width()` of them); `kernel`
    /// is scratch space of one value per support vector.
    pub fn classify(&self, row: &[f32], scores: &mut [f32], kernel: &mut Vec<f32>) -> i64 {
        if self.vectors() == 0 {
            return self.classify_linear(row, scores);
        }
        let n = self.labels.len();
        let f = self.features;
        kernel.clear();
        kernel.extend(self.support_vectors.chunks_exact(f).map(|v| self.kernel.eval(row, v)));
        let v = self.vectors();
        let starts: Vec<usize> = self
            .vectors_per_class
            .iter()
            .scan(0, |s, &c| {
                let start = *s;
                *s += c;
                Some(start)
            })
            .collect();
        let mut votes = vec![0u32; n];
        let mut decisions = Vec::with_capacity(n * (n - 1) / 2);
        let mut k = 0;
        for i in 0..n {
            for j in i + 1..n {
                let mut acc = 0f64;
                for m in 0..self.vectors_per_class[i] {
                    let s = starts[i] + m;
                    acc += (self.coefficients[(j - 1) * v + s] * kernel[s]) as f64;
                }
                for m in 0..self.vectors_per_class[j] {
                    let s = starts[j] + m;
                    acc += (self.coefficients[i * v + s] * kernel[s]) as f64;
                }
                acc += self.rho[k] as f64;
                decisions.push(acc as f32);
                votes[if acc > 0.0 { i } else { j }] += 1;
                k += 1;
            }
        }
        // The first class with the most votes.
        let best = (0..n).fold(0, |b, c| if votes[c] > votes[b] { c } else { b });
        if !self.prob_a.is_empty() {
            self.probabilities(&decisions, scores);
            self.post.apply(scores);
        } else if n > 2 {
            scores.copy_from_slice(&decisions);
            self.post.apply(scores);
        } else {
            let d = decisions[0];
            let pair = match self.post {
                PostTransform::None => [-d, d],
                PostTransform::Probit => [probit(d), 0.0],
                _ => [1.0 - d, d],
            };
            scores.copy_from_slice(&pair);
        }
        self.labels[best]
    }

    /// No support vectors: a score per class from its coefficient row and `rho[0]`.
    fn classify_linear(&self, row: &[f32], scores: &mut [f32]) -> i64 {
        let f = self.features;
        for (score, coefficients) in scores.iter_mut().zip(self.coefficients.chunks_exact(f)) {
            *score = row.iter().zip(coefficients).fold(0f32, |acc, (a, b)| acc + a * b) + self.rho[0];
        }
        let best = (0..scores.len()).fold(0, |b, c| if scores[c] > scores[b] { c } else { b });
        let max = scores[best];
        let non_negative = self.coefficients.iter().all(|&c| c >= 0.0);
        let label = if self.labels.len() == 2 && self.prob_a.is_empty() {
            if (non_negative && max >= 0.5) || (!non_negative && max > 0.0) {
                self.labels[1]
            } else {
                self.labels[best]
            }
        } else {
            self.labels[best]
        };
        self.post.apply(scores);
        label
    }

    /// Platt's sigmoid for each pair, then the pairwise probabilities coupled into one per
    /// class (Wu, Lin and Weng's second method, as libsvm and onnxruntime have it). The index
    /// loops follow the method's formulas, in the order that fixes the rounding.
    #[allow(clippy::needless_range_loop)]
    fn probabilities(&self, decisions: &[f32], p: &mut [f32]) {
        let n = self.labels.len();
        let mut r = vec![vec![0f32; n]; n];
        let mut k = 0;
        for i in 0..n {
            for j in i + 1..n {
                let pair = (1.0 - logistic(decisions[k] * self.prob_a[k] + self.prob_b[k])).clamp(1e-7, 1.0 - 1e-7);
                r[i][j] = pair;
                r[j][i] = 1.0 - pair;
                k += 1;
            }
        }
        let mut q = vec![vec![0f32; n]; n];
        p.fill(1.0 / n as f32);
        for i in 0..n {
            for j in 0..i {
                q[i][i] += r[j][i] * r[j][i];
                q[i][j] = q[j][i];
            }
            for j in i + 1..n {
                q[i][i] += r[j][i] * r[j][i];
                q[i][j] = -r[j][i] * r[i][j];
            }
        }
        let eps = 0.005 / n as f32;
        let mut qp = vec![0f32; n];
        for _ in 0..100 {
            let mut pqp = 0f32;
            for i in 0..n {
                qp[i] = (0..n).fold(0f32, |acc, j| acc + q[i][j] * p[j]);
                pqp += p[i] * qp[i];
            }
            if (0..n).all(|i| (qp[i] - pqp).abs() < eps) {
                break;
            }
            for t in 0..n {
                let diff = (-qp[t] + pqp) / q[t][t];
                p[t] += diff;
                pqp = (pqp + diff * (diff * q[t][t] + 2.0 * qp[t])) / (1.0 + diff) / (1.0 + diff);
                for j in 0..n {
                    qp[j] = (qp[j] + diff * q[t][j]) / (1.0 + diff);
                    p[j] /= 1.0 + diff;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_classes_vote_by_the_sign_of_the_decision() {
        // One support vector per class, linear kernel: d = 1·(x·a) − 1·(x·b) + 0.
        let svm = SvmClassifier::new(
            vec![7, 9],
            Kernel::Linear,
            vec![1, 1],
            vec![1.0, 0.0, 0.0, 1.0],
            vec![1.0, -1.0],
            vec![0.0],
            vec![],
            vec![],
            PostTransform::None,
        )
        .unwrap();
        let (mut scores, mut scratch) = ([0.0; 2], vec![]);
        assert_eq!(svm.classify(&[2.0, 1.0], &mut scores, &mut scratch), 7);
        assert_eq!(scores, [-1.0, 1.0]);
        assert_eq!(svm.classify(&[1.0, 2.0], &mut scores, &mut scratch), 9);
    }
}
