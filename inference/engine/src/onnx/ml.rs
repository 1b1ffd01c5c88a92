//! Parsing the ONNX-ML operators of tabular models into ours ([`crate::ops::ml`]):
//! `TreeEnsembleClassifier` and `TreeEnsembleRegressor` (replacing tract's, whose cost grew with
//! the size of the forest), `SVMClassifier` (classifiers with integer or text class labels), `Scaler`, `Imputer` and `OneHotEncoder` (which
//! tract lacks). `LinearClassifier`, `LinearRegressor`, `Normalizer` and `CategoryMapper` stay
//! tract's.

use std::sync::Arc;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use crate::ops::ml::preprocess::{Imputer, OneHotEncoder, Scaler};
use crate::ops::ml::svm::{Kernel, SvmClassifier};
use crate::ops::ml::transform::PostTransform;
use crate::ops::ml::tree::{Aggregate, Forest, ForestAttributes, Mode, TreeClassifier, TreeRegressor};
use crate::ops::ml::{MlKind, MlOp};

/// The operators this module parses, by ONNX `op_type`.
pub const OPERATORS: &[&str] =
    &["Imputer", "OneHotEncoder", "SVMClassifier", "Scaler", "TreeEnsembleClassifier", "TreeEnsembleRegressor"];

pub fn register(register: &mut OnnxOpRegister) {
    register.insert("TreeEnsembleClassifier", |ctx, node| built(tree_classifier(ctx, node)?));
    register.insert("TreeEnsembleRegressor", |ctx, node| built(tree_regressor(ctx, node)?));
    register.insert("SVMClassifier", |ctx, node| built(svm_classifier(ctx, node)?));
    register.insert("Scaler", |_, node| {
        let scale = floats(node, "scale")?;
        let offset = node.get_attr_opt_vec::<f32>("offset")?.unwrap_or_else(|| vec![0.0; scale.len()]);
        ensure!(!scale.is_empty() && offset.len() == scale.len(), "Scaler: offset and scale must match");
        built(MlKind::Scaler(Scaler { offset, scale }))
    });
    register.insert("Imputer", |_, node| {
        let imputed = floats(node, "imputed_value_floats")?;
        ensure!(!imputed.is_empty(), "Imputer: only imputed_value_floats is supported");
        let replaced = node.get_attr_opt::<f32>("replaced_value_float")?.unwrap_or(0.0);
        built(MlKind::Imputer(Imputer { imputed, replaced }))
    });
    register.insert("OneHotEncoder", |_, node| {
        let categories = ints(node, "cats_int64s")?;
        ensure!(
            (1..=MAX_OUTPUTS).contains(&categories.len()),
            "OneHotEncoder: 1 to {MAX_OUTPUTS} integer categories (cats_int64s) are supported"
        );
        let zeros = node.get_attr_opt::<i64>("zeros")?.unwrap_or(1) != 0;
        built(MlKind::OneHotEncoder(OneHotEncoder { categories, zeros }))
    });
}

type Built = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

fn built(kind: MlKind) -> Built {
    Ok((expand(Ml(Arc::new(kind))), vec![]))
}

fn ints(node: &NodeProto, name: &str) -> TractResult<Vec<i64>> {
    Ok(node.get_attr_opt_slice::<i64>(name)?.map(<[i64]>::to_vec).unwrap_or_default())
}

/// A float list, or its `*_as_tensor` form (ML opset 3).
fn floats(node: &NodeProto, name: &str) -> TractResult<Vec<f32>> {
    if let Some(v) = node.get_attr_opt_slice::<f32>(name)? {
        return Ok(v.to_vec());
    }
    let tensor_name = format!("{name}_as_tensor");
    let Some(t) = node.attribute.iter().find(|a| a.name == tensor_name).and_then(|a| a.t.as_ref()) else {
        return Ok(vec![]);
    };
    // FLOAT or DOUBLE, in the typed fields or as little-endian raw bytes.
    Ok(match (t.data_type, t.raw_data.is_empty()) {
        (1, true) => t.float_data.clone(),
        (1, false) => t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
        (11, true) => t.double_data.iter().map(|&d| d as f32).collect(),
        (11, false) => t.raw_data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
        (other, _) => bail!("{tensor_name}: a tensor of element type {other}, not float or double"),
    })
}

/// The most classes, targets or categories one operator may have: each row's output holds one
/// value per output, and rows × outputs must stay far from wasm32's address space.
pub const MAX_OUTPUTS: usize = 1 << 16;

/// A classifier's labels: its integer labels, or for text labels (`classlabels_strings`) the
/// class indices and the texts the operator answers in their place.
fn class_labels(node: &NodeProto) -> TractResult<(Vec<i64>, Vec<String>)> {
    let texts: Vec<String> = node
        .get_attr_opt_tvec::<&str>("classlabels_strings")?
        .map(|s| s.iter().map(|t| t.to_string()).collect())
        .unwrap_or_default();
    let (labels, texts) = if texts.is_empty() {
        let labels = ints(node, "classlabels_ints")?;
        (if labels.is_empty() { ints(node, "classlabels_int64s")? } else { labels }, texts)
    } else {
        ((0..texts.len() as i64).collect(), texts)
    };
    ensure!(!labels.is_empty() && labels.len() <= MAX_OUTPUTS, "{}: 1 to {MAX_OUTPUTS} class labels", node.op_type);
    Ok((labels, texts))
}

fn post_transform(node: &NodeProto) -> TractResult<PostTransform> {
    PostTransform::parse(node.get_attr_opt::<&str>("post_transform")?)
}

fn forest_attributes(node: &NodeProto, leaves: &str) -> TractResult<ForestAttributes> {
    let modes = node
        .get_attr_opt_tvec::<&str>("nodes_modes")?
        .unwrap_or_default()
        .iter()
        .map(|m| Mode::parse(m))
        .collect::<TractResult<_>>()?;
    Ok(ForestAttributes {
        tree_ids: ints(node, "nodes_treeids")?,
        node_ids: ints(node, "nodes_nodeids")?,
        feature_ids: ints(node, "nodes_featureids")?,
        modes,
        values: floats(node, "nodes_values")?,
        true_ids: ints(node, "nodes_truenodeids")?,
        false_ids: ints(node, "nodes_falsenodeids")?,
        missing_tracks_true: ints(node, "nodes_missing_value_tracks_true")?,
        weight_tree_ids: ints(node, &format!("{leaves}_treeids"))?,
        weight_node_ids: ints(node, &format!("{leaves}_nodeids"))?,
        weight_ids: ints(node, &format!("{leaves}_ids"))?,
        weights: floats(node, &format!("{leaves}_weights"))?,
    })
}

fn tree_classifier(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<MlKind> {
    let (labels, text_labels) = class_labels(node)?;
    let attributes = forest_attributes(node, "class")?;
    let forest = Forest::build(&attributes, labels.len())?;
    let base = floats(node, "base_values")?;
    let classifier = TreeClassifier::new(forest, labels, &base, post_transform(node)?, &attributes);
    Ok(MlKind::TreeClassifier(TreeClassifier { text_labels, ..classifier }))
}

fn tree_regressor(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<MlKind> {
    let targets = node.get_attr_opt::<i64>("n_targets")?.unwrap_or(0);
    let targets = usize::try_from(targets).ok().filter(|t| (1..=MAX_OUTPUTS).contains(t));
    let targets = targets.with_context(|| format!("TreeEnsembleRegressor: n_targets must be 1 to {MAX_OUTPUTS}"))?;
    let attributes = forest_attributes(node, "target")?;
    Ok(MlKind::TreeRegressor(TreeRegressor {
        forest: Forest::build(&attributes, targets)?,
        targets,
        base: floats(node, "base_values")?,
        aggregate: Aggregate::parse(node.get_attr_opt::<&str>("aggregate_function")?)?,
        post: post_transform(node)?,
    }))
}

fn svm_classifier(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<MlKind> {
    let kernel = Kernel::parse(node.get_attr_opt::<&str>("kernel_type")?, &floats(node, "kernel_params")?)?;
    let vectors_per_class = ints(node, "vectors_per_class")?
        .into_iter()
        .map(|v| usize::try_from(v).context("vectors_per_class"))
        .collect::<TractResult<_>>()?;
    let (labels, text_labels) = class_labels(node)?;
    let classifier = SvmClassifier::new(
        labels,
        kernel,
        vectors_per_class,
        floats(node, "support_vectors")?,
        floats(node, "coefficients")?,
        floats(node, "rho")?,
        floats(node, "prob_a")?,
        floats(node, "prob_b")?,
        post_transform(node)?,
    )?;
    Ok(MlKind::SvmClassifier(SvmClassifier { text_labels, ..classifier }))
}

/// The inference-model side of an [`MlOp`]: its typing rules, and its wiring as the one op.
#[derive(Clone, Debug)]
struct Ml(Arc<MlKind>);

impl Expansion for Ml {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.0.outputs())
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, self.0.outputs())?;
        let kind = self.0.clone();
        s.given_2(&inputs[0].datum_type, &inputs[0].shape, move |s, dt, shape| {
            let facts = kind.output_facts(dt, &shape)?;
            for (proxy, fact) in outputs.iter().zip(facts) {
                s.equals(&proxy.datum_type, fact.datum_type)?;
                s.equals(&proxy.shape, fact.shape.to_tvec())?;
            }
            Ok(())
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, MlOp(self.0.clone()), inputs)
    }
}

/// Branches the rows pass through in every tree ensemble of the model (`rows` of `stride`
/// features each): what benchmarks divide an inference's instructions by.
pub fn tree_visits(model: &[u8], rows: &[f32], stride: usize) -> TractResult<u64> {
    ensure!(stride > 0, "rows of no features");
    let proto = crate::model::onnx().proto_model_for_read(&mut &*model)?;
    let graph = proto.graph.as_ref().context("the model has no graph")?;
    let mut visits = 0;
    for node in &graph.node {
        let (leaves, outputs) = match node.op_type.as_str() {
            "TreeEnsembleClassifier" => ("class", class_labels(node)?.0.len()),
            "TreeEnsembleRegressor" => {
                ("target", usize::try_from(node.get_attr_opt::<i64>("n_targets")?.unwrap_or(1))?)
            }
            _ => continue,
        };
        let forest = Forest::build(&forest_attributes(node, leaves)?, outputs)?;
        ensure!(stride >= forest.features(), "rows of {stride} features for trees reading {}", forest.features());
        visits += rows.chunks_exact(stride).map(|row| forest.visits(row)).sum::<u64>();
    }
    Ok(visits)
}
