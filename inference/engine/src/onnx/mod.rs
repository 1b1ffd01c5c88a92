//! The ONNX side: what we add to tract-onnx's parser, and what we do to the raw ONNX graph
//! (the protobuf) before tract parses it.
//!
//! - [`qoperator`]: the `com.microsoft` QLinear* contrib operators of onnxruntime's QOperator
//!   quantization format (QLinearAdd, QLinearMul, QGemm, QLinearSoftmax, …), registered with the
//!   parser ([`register`]).
//! - [`ml`]: the ONNX-ML operators of tabular models (tree ensembles, SVM classifier, scaler,
//!   imputer, one-hot encoder), parsed into ours ([`crate::ops::ml`]).
//! - [`whole_tensor`]: `NegativeLogLikelihoodLoss`, `SoftmaxCrossEntropyLoss` and `CumProd`, each one op of ours.
//! - [`GRAPH_REWRITES`]: rewrites of the raw graph, in the order they run: [`unique_names`]
//!   (every node gets a name of its own), then [`qlinear_conv`] (`QLinearConv` to its QDQ form,
//!   so it runs on tract's f32 convolution like the QDQ models do), then [`lp_pool`] (`LpPool`,
//!   which tract lacks, as operators it has; listed in [`REWRITTEN_OPERATORS`]).
//! - [`reverse_rnn`]: `LSTM`/`GRU`/`RNN` with `direction="reverse"` as the forward node between
//!   two reversals of the sequence (tract runs them forward), applied by [`prepare`] first.
//! - [`quantized_weights`]: the int8 weights of the graph's convolutions, read after the
//!   rewrites (tract folds them into f32 constants; [`crate::passes::integer_conv`] needs them).
//! - [`ignored_attributes`]: attribute values tract does not read (named, so the upload is
//!   refused rather than computed wrong).
//! - [`initializers`]: reading initializers' values.
//! - [`plan_values`]: the inputs whose values tract needs to build a plan (axes, shapes, scales).
//!
//! To add a rewrite of the raw graph: write a module here with a
//! `pub fn rewrite(graph: &mut GraphProto) -> usize` (how many changes it made), declare it
//! below, and add one line to [`GRAPH_REWRITES`] at the point in the order where it must run.

pub mod ignored_attributes;
pub mod initializers;
pub mod lp_pool;
pub mod ml;
pub mod plan_values;
pub mod qlinear_conv;
pub mod qoperator;
pub mod quantized_weights;
pub mod reverse_rnn;
pub mod unique_names;
pub mod whole_tensor;

use tract_onnx::model::OnnxOpRegister;
use tract_onnx::pb::{GraphProto, ModelProto};

use quantized_weights::QuantizedWeights;

/// Adds our operators to a parser's register.
pub fn register(register: &mut OnnxOpRegister) {
    qoperator::register(register);
    ml::register(register);
    whole_tensor::register(register);
}

/// One rewrite of the raw ONNX graph: its name, and the function that applies it and answers
/// how many changes it made.
pub struct GraphRewrite {
    pub name: &'static str,
    pub rewrite: fn(&mut GraphProto) -> usize,
}

/// Operators no parser knows that a rewrite replaces before parsing (`inspect` takes them).
pub const REWRITTEN_OPERATORS: &[&str] = &["LpPool"];

/// The rewrites of the raw graph, in the order [`prepare`] applies them.
pub const GRAPH_REWRITES: &[GraphRewrite] = &[
    GraphRewrite { name: "unique node names", rewrite: unique_names::rewrite },
    GraphRewrite { name: "QLinearConv to QDQ", rewrite: qlinear_conv::lower },
    GraphRewrite { name: "LpPool to Abs, Pow and AveragePool", rewrite: lp_pool::rewrite },
];

/// Applies [`GRAPH_REWRITES`] to the model's graph and [`reverse_rnn`] to the model (it needs the
/// opset), then reads what the passes need from it: the int8 weights of its convolutions (none
/// without a graph).
pub fn prepare(proto: &mut ModelProto) -> QuantizedWeights {
    reverse_rnn::rewrite(proto);
    let Some(graph) = proto.graph.as_mut() else { return QuantizedWeights::default() };
    for rewrite in GRAPH_REWRITES {
        (rewrite.rewrite)(graph);
    }
    QuantizedWeights::from_graph(graph)
}
