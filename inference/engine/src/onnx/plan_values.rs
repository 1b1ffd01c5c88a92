//! Inputs whose *values* tract needs when it builds a plan, not only their shapes: a reduction's
//! `axes`, a `Reshape`'s target shape, a `Resize`'s scales or sizes, a `Pad`'s pads, the scale of
//! a `QuantizeLinear`… tract decides output shapes and picks kernels from them at build time, so
//! it takes them as constants only. A graph that receives one of them as a graph input (the
//! ONNX node tests do, for every such operator) cannot be typed with the input left variable.
//!
//! The engine builds such a model's plan *for the values a call brings*, as it builds one for
//! each concrete shape ([`crate::model::load_with_values`]): the input becomes a constant of the
//! plan, and a call with other values needs another plan.

use std::collections::BTreeSet;

use tract_onnx::pb::GraphProto;

/// For each operator, the positions of the inputs tract takes as constants only. Checked against
/// tract-onnx 0.23.9's translators (their "expected … to be a constant" refusals).
const PLAN_VALUE_SLOTS: &[(&str, &[usize])] = &[
    ("ReduceL1", &[1]),
    ("ReduceL2", &[1]),
    ("ReduceLogSum", &[1]),
    ("ReduceLogSumExp", &[1]),
    ("ReduceMax", &[1]),
    ("ReduceMean", &[1]),
    ("ReduceMin", &[1]),
    ("ReduceProd", &[1]),
    ("ReduceSum", &[1]),
    ("ReduceSumSquare", &[1]),
    ("Squeeze", &[1]),
    ("Unsqueeze", &[1]),
    ("Reshape", &[1]),
    ("Expand", &[1]),
    ("Tile", &[1]),
    ("ConstantOfShape", &[0]),
    ("Resize", &[1, 2, 3]),
    ("Upsample", &[1]),
    ("Split", &[1]),
    ("Pad", &[1, 2, 3]),
    ("Slice", &[1, 2, 3, 4]),
    ("CumSum", &[1]),
    ("OneHot", &[1, 2]),
    ("LSTM", &[4]),
    ("GRU", &[4]),
    ("RNN", &[4]),
    ("DFT", &[1, 2]),
    ("QuantizeLinear", &[1, 2]),
    ("DequantizeLinear", &[1, 2]),
    ("BatchNormalization", &[1, 2, 3, 4]),
    ("Compress", &[1]),
    ("STFT", &[1, 2, 3]),
    ("HannWindow", &[0]),
    ("HammingWindow", &[0]),
    ("BlackmanWindow", &[0]),
    ("MelWeightMatrix", &[0, 1, 2, 3, 4]),
    ("CenterCropPad", &[1]),
];

/// The positions, among the graph's inputs that are not initializers, of those some node takes
/// at one of [`PLAN_VALUE_SLOTS`], in order.
pub fn plan_value_inputs(graph: &GraphProto) -> Vec<usize> {
    let slots: BTreeSet<&str> = graph
        .node
        .iter()
        .filter(|n| n.domain.is_empty() || n.domain == "ai.onnx")
        .flat_map(|node| {
            let positions = PLAN_VALUE_SLOTS.iter().find(|(op, _)| *op == node.op_type).map_or(&[][..], |(_, p)| *p);
            positions.iter().filter_map(|&p| node.input.get(p)).map(String::as_str)
        })
        .collect();
    let initializers: BTreeSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .enumerate()
        .filter(|(_, i)| slots.contains(i.name.as_str()))
        .map(|(ix, _)| ix)
        .collect()
}
