//! `QLinearConv` (the QOperator form's convolution) rewritten, before parsing, into the QDQ
//! form of the same node: `DequantizeLinear` on the input, the weights (per output channel) and
//! the int32 bias, a float `Conv` with the node's attributes, `QuantizeLinear` on the output.
//!
//! Why: on wasm under the IC's metering, tract 0.23.9's integer convolution costs several times
//! more per MAC than its f32 one (an eager `Im2col` and a scalar requantizing int8 kernel; see
//! `benchmarks/profile.md`), while the QDQ form runs its convolutions in f32 with weights
//! dequantized once at build (or on our integer kernel, [`crate::passes::integer_conv`]), and
//! its quantize/dequantize pairs in our fused simd128 pass ([`crate::passes::qdq`]). Both forms
//! quantize the same tensors at the same points, which is what onnxruntime's QDQ form means; the
//! results stay within the QOperator tolerance of onnxruntime's integer kernels (tested per
//! model and variant).
//!
//! A node whose scales are not initializers is left for tract's own `QLinearConv`.

use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, AttributeProto, GraphProto, NodeProto, TensorProto,
};

/// The float values of an initializer (scales are f32 initializers in onnxruntime's output).
fn floats(graph: &GraphProto, name: &str) -> Option<Vec<f32>> {
    super::initializers::find(graph, name).and_then(super::initializers::floats)
}

fn node(op: &str, name: String, mut inputs: Vec<String>, output: String, attribute: Vec<AttributeProto>) -> NodeProto {
    // An omitted optional input (a zero point) is an empty name; tract wants it left out.
    while inputs.last().is_some_and(|i| i.is_empty()) {
        inputs.pop();
    }
    NodeProto { op_type: op.into(), name, input: inputs, output: vec![output], attribute, ..Default::default() }
}

fn axis(value: i64) -> AttributeProto {
    AttributeProto { name: "axis".into(), r#type: AttributeType::Int as i32, i: value, ..Default::default() }
}

/// The QDQ nodes of one `QLinearConv` (`x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp[, B]`),
/// and the bias scale initializer they need; `None` when its scales are not initializers.
fn lowered(graph: &GraphProto, conv: &NodeProto) -> Option<(Vec<NodeProto>, Option<TensorProto>)> {
    let input = |ix: usize| conv.input.get(ix).cloned().unwrap_or_default();
    let base = conv.output.first()?.clone();
    let name = |what: &str| format!("{base}.{what}");
    let (x_scale, w_scale) = (floats(graph, &input(1))?, floats(graph, &input(4))?);
    let mut nodes = vec![
        node("DequantizeLinear", name("dequantize_x"), vec![input(0), input(1), input(2)], name("x"), vec![]),
        node("DequantizeLinear", name("dequantize_w"), vec![input(3), input(4), input(5)], name("w"), vec![axis(0)]),
    ];
    let mut conv_inputs = vec![name("x"), name("w")];
    let mut bias_scale = None;
    if !input(8).is_empty() {
        // The int32 bias is quantized with scale x_scale · w_scale (per output channel) and 0.
        let values: Vec<f32> = w_scale.iter().map(|w| w * x_scale[0]).collect();
        let dims = if values.len() == 1 { vec![] } else { vec![values.len() as i64] };
        bias_scale = Some(TensorProto {
            name: name("bias_scale"),
            data_type: DataType::Float as i32,
            dims,
            float_data: values,
            ..Default::default()
        });
        nodes.push(node(
            "DequantizeLinear",
            name("dequantize_b"),
            vec![input(8), name("bias_scale")],
            name("b"),
            vec![axis(0)],
        ));
        conv_inputs.push(name("b"));
    }
    nodes.push(node("Conv", name("conv"), conv_inputs, name("y"), conv.attribute.clone()));
    nodes.push(node("QuantizeLinear", conv.name.clone(), vec![name("y"), input(6), input(7)], base, vec![]));
    Some((nodes, bias_scale))
}

/// Rewrites every `QLinearConv` of the graph whose scales are initializers; returns how many.
pub fn lower(graph: &mut GraphProto) -> usize {
    let mut lowered_count = 0;
    let mut nodes = Vec::with_capacity(graph.node.len());
    for conv in std::mem::take(&mut graph.node) {
        let is_qlinear_conv = conv.op_type == "QLinearConv" && (conv.domain.is_empty() || conv.domain == "ai.onnx");
        match is_qlinear_conv.then(|| lowered(graph, &conv)).flatten() {
            Some((replacement, bias_scale)) => {
                nodes.extend(replacement);
                graph.initializer.extend(bias_scale);
                lowered_count += 1;
            }
            None => nodes.push(conv),
        }
    }
    graph.node = nodes;
    lowered_count
}
