//! The ONNX-ML (`ai.onnx.ml`) operators of tabular models, ours rather than tract's: tree
//! ensembles over a flat node array ([`tree`]), support vector classification ([`svm`]), and
//! the feature preparation in front of them ([`preprocess`]), each computed as onnxruntime
//! computes it ([`transform`] holds the score transforms they share). [`MlOp`] is the one typed
//! operator that runs any of them; `crate::onnx::ml` parses them from the ONNX graph.

pub mod preprocess;
pub mod svm;
pub mod transform;
pub mod tree;

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use preprocess::{Imputer, OneHotEncoder, Scaler};
use svm::SvmClassifier;
use tree::{TreeClassifier, TreeRegressor};

/// What an [`MlOp`] computes.
#[derive(Clone, Debug, PartialEq)]
pub enum MlKind {
    TreeClassifier(TreeClassifier),
    TreeRegressor(TreeRegressor),
    SvmClassifier(SvmClassifier),
    Scaler(Scaler),
    Imputer(Imputer),
    OneHotEncoder(OneHotEncoder),
}

impl MlKind {
    pub fn name(&self) -> &'static str {
        match self {
            MlKind::TreeClassifier(_) => "TreeEnsembleClassifier",
            MlKind::TreeRegressor(_) => "TreeEnsembleRegressor",
            MlKind::SvmClassifier(_) => "SVMClassifier",
            MlKind::Scaler(_) => "Scaler",
            MlKind::Imputer(_) => "Imputer",
            MlKind::OneHotEncoder(_) => "OneHotEncoder",
        }
    }

    /// Classifiers answer a label per row and a row of scores.
    pub fn outputs(&self) -> usize {
        match self {
            MlKind::TreeClassifier(_) | MlKind::SvmClassifier(_) => 2,
            _ => 1,
        }
    }

    /// The facts of the outputs for an input of `shape` (rows first; a vector is one row).
    pub fn output_facts(&self, dt: DatumType, shape: &[TDim]) -> TractResult<TVec<TypedFact>> {
        let rows = if shape.len() >= 2 { shape[0].clone() } else { 1.into() };
        let scores = |width: usize| f32::fact([rows.clone(), width.into()]);
        let label = |texts: &[String]| {
            if texts.is_empty() {
                i64::fact([rows.clone()])
            } else {
                String::fact([rows.clone()])
            }
        };
        Ok(match self {
            MlKind::TreeClassifier(c) => tvec!(label(&c.text_labels), scores(c.classes())),
            MlKind::SvmClassifier(c) => tvec!(label(&c.text_labels), scores(c.width())),
            MlKind::TreeRegressor(r) => tvec!(scores(r.targets)),
            MlKind::Scaler(_) => tvec!(f32::fact(shape)),
            MlKind::Imputer(_) => tvec!(dt.fact(shape)),
            MlKind::OneHotEncoder(e) => {
                let mut dims: TVec<TDim> = shape.into();
                dims.push(e.categories.len().into());
                tvec!(f32::fact(dims))
            }
        })
    }
}

/// The typed operator; its input is any real or integer tensor, read as f32 (see the README's
/// tabular section for the one difference with onnxruntime this makes: f64 inputs).
#[derive(Clone, Debug)]
pub struct MlOp(pub Arc<MlKind>);

impl PartialEq for MlOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for MlOp {}

impl Op for MlOp {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    op_as_typed_op!();
}

impl EvalOp for MlOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let shape: TVec<usize> = input.shape().into();
        // A row is the last dimension of a matrix, or the whole of a vector.
        let stride = match shape.len() {
            0 => 1,
            1 => shape[0],
            _ => input.len() / shape[0].max(1),
        };
        let mut xs: Vec<f32> = input.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
        let n = xs.len().checked_div(stride).unwrap_or(0);
        // Output sizes, checked: wasm32's usize is 32 bits, and a wrapped size would make a
        // tensor whose shape claims more than its data.
        let cells = |width: usize| n.checked_mul(width).context("an output too large to address");
        // Text labels are answered in place of the class indices the classifiers give then.
        let answer =
            |labels: Vec<i64>, texts: &[String], scores: Vec<f32>, width: usize| -> TractResult<TVec<TValue>> {
                let labels = if texts.is_empty() {
                    tensor1(&labels)
                } else {
                    tensor1(&labels.iter().map(|&i| texts[i as usize].clone()).collect::<Vec<_>>())
                };
                Ok(tvec!(labels.into_tvalue(), Tensor::from_shape(&[n, width], &scores)?.into_tvalue()))
            };
        match &*self.0 {
            MlKind::TreeClassifier(c) => {
                ensure!(
                    stride >= c.forest.features(),
                    "the classifier reads {} features; rows have {stride}",
                    c.forest.features()
                );
                let (width, mut seen) = (c.classes(), vec![false; c.classes()]);
                let mut scores = vec![0f32; cells(width)?];
                let labels = xs
                    .chunks_exact(stride.max(1))
                    .zip(scores.chunks_exact_mut(width))
                    .map(|(row, out)| c.classify(row, out, &mut seen))
                    .collect();
                answer(labels, &c.text_labels, scores, width)
            }
            MlKind::SvmClassifier(c) => {
                ensure!(stride == c.features, "the SVM takes rows of {} features, not {stride}", c.features);
                let (width, mut scratch) = (c.width(), Vec::new());
                let mut scores = vec![0f32; cells(width)?];
                let labels = xs
                    .chunks_exact(stride.max(1))
                    .zip(scores.chunks_exact_mut(width))
                    .map(|(row, out)| c.classify(row, out, &mut scratch))
                    .collect();
                answer(labels, &c.text_labels, scores, width)
            }
            MlKind::TreeRegressor(r) => {
                ensure!(
                    stride >= r.forest.features(),
                    "the regressor reads {} features; rows have {stride}",
                    r.forest.features()
                );
                let mut out = vec![0f32; cells(r.targets)?];
                let mut seen = vec![false; r.targets];
                for (row, y) in xs.chunks_exact(stride.max(1)).zip(out.chunks_exact_mut(r.targets)) {
                    r.regress(row, y, &mut seen);
                }
                Ok(tvec!(Tensor::from_shape(&[n, r.targets], &out)?.into_tvalue()))
            }
            MlKind::Scaler(s) => {
                s.apply(&mut xs, stride).map_err(|e| anyhow!(e))?;
                Ok(tvec!(Tensor::from_shape(&shape, &xs)?.into_tvalue()))
            }
            MlKind::Imputer(i) => {
                i.apply(&mut xs, stride);
                let out = Tensor::from_shape(&shape, &xs)?.cast_to_dt(input.datum_type())?.into_owned();
                Ok(tvec!(out.into_tvalue()))
            }
            MlKind::OneHotEncoder(e) => {
                let mut dims = shape.clone();
                dims.push(e.categories.len());
                let size = xs.len().checked_mul(e.categories.len()).context("an output too large to address")?;
                let mut out = vec![0f32; size];
                // Integers are looked up as integers (f32 would merge those above 2^24).
                let values: Vec<i64> = if input.datum_type().is_integer() {
                    input.cast_to::<i64>()?.try_as_plain_ram()?.as_slice::<i64>()?.to_vec()
                } else {
                    xs.iter().map(|&x| x as i64).collect()
                };
                e.encode(&values, &mut out).map_err(|e| anyhow!(e))?;
                Ok(tvec!(Tensor::from_shape(&dims, &out)?.into_tvalue()))
            }
        }
    }
}

impl TypedOp for MlOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.0.output_facts(inputs[0].datum_type, &inputs[0].shape.to_tvec())
    }

    as_op!();
}
