//! `LSTM`, `GRU` and `RNN` nodes with `direction="reverse"`, rewritten before parsing into the
//! forward node between two reversals of the sequence axis: tract-onnx 0.23.9 reads the
//! direction only from the weights' first dimension (two directions: bidirectional; one:
//! forward), so a reverse node ran forward and answered wrong values without an error (the ONNX
//! node tests `test_{lstm,gru,simple_rnn}_reverse`).
//!
//! Run backwards, a sequence gives the reverse direction's outputs in reverse order: the input
//! is reversed along its sequence axis (a `Slice` with step −1), the node runs forward, and its
//! `Y` is reversed back. `Y_h` and `Y_c`, the state after the sequence's first element, need no
//! change. A node with `sequence_lens` (each batch entry reversed over its own length), or in a
//! model older than opset 10 (no `Slice` steps), cannot be rewritten so: [`unsupported`] names
//! it, and the upload is refused instead of computing wrong values.

use tract_onnx::pb::{attribute_proto::AttributeType, tensor_proto::DataType, ModelProto, NodeProto, TensorProto};

const RECURRENT: [&str; 3] = ["LSTM", "GRU", "RNN"];

fn is_reverse(node: &NodeProto) -> bool {
    (node.domain.is_empty() || node.domain == "ai.onnx")
        && RECURRENT.contains(&node.op_type.as_str())
        && node.attribute.iter().any(|a| a.name == "direction" && a.s == b"reverse")
}

fn has_sequence_lens(node: &NodeProto) -> bool {
    node.input.get(4).is_some_and(|i| !i.is_empty())
}

/// The model's default-domain opset.
fn opset(model: &ModelProto) -> i64 {
    model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(1, |o| o.version)
}

/// Reverse recurrent nodes this rewrite cannot take, as `inspect` lists unsupported operators.
pub fn unsupported(model: &ModelProto) -> Vec<String> {
    let Some(graph) = model.graph.as_ref() else { return vec![] };
    let old = opset(model) < 10;
    graph
        .node
        .iter()
        .filter(|n| is_reverse(n) && (old || has_sequence_lens(n)))
        .map(|n| {
            let why = if old { "before opset 10" } else { "with sequence_lens" };
            format!("{} (direction=reverse, {why})", n.op_type)
        })
        .collect()
}

fn ints(name: String, values: &[i64]) -> TensorProto {
    TensorProto {
        name,
        data_type: DataType::Int64 as i32,
        dims: vec![values.len() as i64],
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

/// A `Slice` reversing `input` along `axis` into `output`, with its four initializers.
fn reversal(name: &str, input: String, output: String, axis: i64) -> (NodeProto, Vec<TensorProto>) {
    let constants = vec![
        ints(format!("{name}.starts"), &[-1]),
        ints(format!("{name}.ends"), &[i64::MIN]),
        ints(format!("{name}.axes"), &[axis]),
        ints(format!("{name}.steps"), &[-1]),
    ];
    let node = NodeProto {
        op_type: "Slice".into(),
        name: name.into(),
        input: std::iter::once(input).chain(constants.iter().map(|c| c.name.clone())).collect(),
        output: vec![output],
        ..Default::default()
    };
    (node, constants)
}

/// Rewrites every reverse recurrent node it can (see the module's documentation); answers how
/// many.
pub fn rewrite(model: &mut ModelProto) -> usize {
    if opset(model) < 10 {
        return 0;
    }
    let Some(graph) = model.graph.as_mut() else { return 0 };
    let mut rewritten = 0;
    let mut nodes = Vec::with_capacity(graph.node.len());
    for mut node in std::mem::take(&mut graph.node) {
        if !is_reverse(&node) || has_sequence_lens(&node) || node.input.is_empty() {
            nodes.push(node);
            continue;
        }
        // layout 0: X [seq, batch, input], Y [seq, dirs, batch, hidden]; layout 1: batch first.
        let layout = node.attribute.iter().find(|a| a.name == "layout").map_or(0, |a| a.i);
        let axis = if layout == 1 { 1 } else { 0 };
        let base = if node.name.is_empty() { format!("{}_{rewritten}", node.op_type) } else { node.name.clone() };
        let reversed_x = format!("{base}.reversed_input");
        let (before, constants) =
            reversal(&format!("{base}.reverse_input"), node.input[0].clone(), reversed_x.clone(), axis);
        graph.initializer.extend(constants);
        node.input[0] = reversed_x;
        for attribute in node.attribute.iter_mut().filter(|a| a.name == "direction") {
            attribute.s = b"forward".to_vec();
            attribute.r#type = AttributeType::String as i32;
        }
        let after = match node.output.first().filter(|y| !y.is_empty()).cloned() {
            Some(y) => {
                let reversed_y = format!("{base}.reversed_output");
                node.output[0] = reversed_y.clone();
                let (after, constants) = reversal(&format!("{base}.reverse_output"), reversed_y, y, axis);
                graph.initializer.extend(constants);
                Some(after)
            }
            None => None,
        };
        nodes.push(before);
        nodes.push(node);
        nodes.extend(after);
        rewritten += 1;
    }
    graph.node = nodes;
    rewritten
}
