//! `NegativeLogLikelihoodLoss` and `SoftmaxCrossEntropyLoss`, which tract lacks: what a model
//! exported with its loss computes on labelled records (an agency checking a model against data
//! it has labelled, say). Computed in f64 and given back in the input's element type.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// How the per-element losses become the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// One loss per element of the target.
    None,
    Sum,
    /// The sum divided by the sum of the weights of the elements not ignored.
    Mean,
}

impl Reduction {
    pub fn parse(name: Option<&str>) -> TractResult<Reduction> {
        Ok(match name.unwrap_or("mean") {
            "none" => Reduction::None,
            "sum" => Reduction::Sum,
            "mean" => Reduction::Mean,
            other => bail!("reduction \"{other}\" is not one of none, sum, mean"),
        })
    }
}

/// The loss of `input` (`[N, C, d1…]`: log-probabilities, or scores when `softmax`) against the
/// class indices of `target` (`[N, d1…]`), each weighted by an optional `weight` (`[C]`).
/// With `softmax` and two outputs, the second is the log-probabilities.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Loss {
    pub softmax: bool,
    pub reduction: Reduction,
    /// A target value that contributes nothing (neither loss nor weight).
    pub ignore_index: Option<i64>,
    pub outputs: usize,
}

impl Loss {
    pub fn name(&self) -> &'static str {
        if self.softmax {
            "SoftmaxCrossEntropyLoss"
        } else {
            "NegativeLogLikelihoodLoss"
        }
    }

    /// The output facts for an input of type `dt` and `shape`, and a target of `target` shape.
    pub fn output_facts(&self, dt: DatumType, shape: &[TDim], target: &[TDim]) -> TVec<TypedFact> {
        let loss = match self.reduction {
            Reduction::None => dt.fact(target),
            _ => dt.scalar_fact(),
        };
        let mut facts = tvec!(loss);
        if self.outputs > 1 {
            facts.push(dt.fact(shape));
        }
        facts
    }
}

/// Replaces each `[n, ·, i]` column of `x` (classes `c`, `inner` positions) by its log-softmax.
fn log_softmax(x: &mut [f64], c: usize, inner: usize) {
    for block in x.chunks_exact_mut(c * inner) {
        for i in 0..inner {
            let column = || (0..c).map(|j| j * inner + i);
            let max = column().map(|k| block[k]).fold(f64::NEG_INFINITY, f64::max);
            let log_sum = column().map(|k| (block[k] - max).exp()).sum::<f64>().ln();
            for k in column() {
                block[k] -= max + log_sum;
            }
        }
    }
}

impl Op for Loss {
    fn name(&self) -> StaticName {
        Loss::name(self).into()
    }

    op_as_typed_op!();
}

impl EvalOp for Loss {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (input, target) = (&inputs[0], &inputs[1]);
        let shape = input.shape();
        ensure!(shape.len() >= 2, "{}: the input must be [N, C, …], not {shape:?}", self.name());
        let (n, c) = (shape[0], shape[1]);
        let inner: usize = shape[2..].iter().product();
        let expected: TVec<usize> = std::iter::once(n).chain(shape[2..].iter().copied()).collect();
        ensure!(
            target.shape() == &*expected,
            "{}: the target must be {expected:?}, not {:?}",
            self.name(),
            target.shape()
        );
        let mut x = input.cast_to::<f64>()?.try_as_plain_ram()?.as_slice::<f64>()?.to_vec();
        let target = target.cast_to::<i64>()?;
        let target = target.try_as_plain_ram()?;
        let target = target.as_slice::<i64>()?;
        let weight = match inputs.get(2) {
            Some(w) => {
                ensure!(w.shape() == [c], "{}: the weight must be [{c}], not {:?}", self.name(), w.shape());
                Some(w.cast_to::<f64>()?.try_as_plain_ram()?.as_slice::<f64>()?.to_vec())
            }
            None => None,
        };
        if self.softmax {
            log_softmax(&mut x, c, inner);
        }
        let (mut losses, mut weight_sum) = (Vec::with_capacity(n * inner), 0f64);
        for (cell, &t) in target.iter().enumerate() {
            if Some(t) == self.ignore_index {
                losses.push(0.0);
                continue;
            }
            let class = usize::try_from(t).ok().filter(|&t| t < c);
            let class = class.with_context(|| format!("{}: target {t} is not a class of 0..{c}", self.name()))?;
            let w = weight.as_ref().map_or(1.0, |w| w[class]);
            let (row, i) = (cell / inner, cell % inner);
            losses.push(-x[(row * c + class) * inner + i] * w);
            weight_sum += w;
        }
        let dt = input.datum_type();
        let loss = match self.reduction {
            Reduction::None => Tensor::from_shape(&expected, &losses)?,
            Reduction::Sum => tensor0(losses.iter().sum::<f64>()),
            Reduction::Mean => tensor0(losses.iter().sum::<f64>() / weight_sum),
        };
        let mut outputs = tvec!(loss.cast_to_dt(dt)?.into_owned().into_tvalue());
        if self.outputs > 1 {
            outputs.push(Tensor::from_shape(shape, &x)?.cast_to_dt(dt)?.into_owned().into_tvalue());
        }
        Ok(outputs)
    }
}

impl TypedOp for Loss {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(Loss::output_facts(self, inputs[0].datum_type, &inputs[0].shape.to_tvec(), &inputs[1].shape.to_tvec()))
    }

    as_op!();
}
