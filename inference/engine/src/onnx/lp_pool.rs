//! `LpPool` (which tract lacks), rewritten before parsing into operators tract has: the p-norm
//! of each window, `(Σ |x|ᵖ)^(1/p)`, is `Abs`, `Pow p`, an `AveragePool` that counts the padding
//! (so each window's mean is its sum over the kernel's size: padding adds |0|ᵖ = 0), a `Mul` by
//! the kernel's size, and `Pow 1/p`. The pooling attributes (kernel, strides, pads, `auto_pad`,
//! dilations, `ceil_mode`) are passed on as they are.

use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, AttributeProto, GraphProto, NodeProto, TensorProto,
};

/// The `AveragePool` attributes an `LpPool` shares.
const POOLING: [&str; 6] = ["kernel_shape", "strides", "pads", "auto_pad", "dilations", "ceil_mode"];

fn scalar(name: String, value: f32) -> TensorProto {
    TensorProto { name, data_type: DataType::Float as i32, float_data: vec![value], ..Default::default() }
}

fn node(op: &str, name: String, input: Vec<String>, output: String, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto { op_type: op.into(), name, input, output: vec![output], attribute, ..Default::default() }
}

/// Rewrites every f32 `LpPool` whose kernel is given; answers how many. (ONNX's element types
/// for it are the float ones; the constants here are f32, which is what models use.)
pub fn rewrite(graph: &mut GraphProto) -> usize {
    let mut rewritten = 0;
    let mut nodes = Vec::with_capacity(graph.node.len());
    let mut constants = vec![];
    for lp in std::mem::take(&mut graph.node) {
        let is_lp = lp.op_type == "LpPool" && (lp.domain.is_empty() || lp.domain == "ai.onnx");
        let kernel = lp.attribute.iter().find(|a| a.name == "kernel_shape").map(|a| a.ints.clone());
        let (Some(kernel), Some(x), Some(y)) = (kernel.filter(|_| is_lp), lp.input.first(), lp.output.first()) else {
            nodes.push(lp);
            continue;
        };
        let p = lp.attribute.iter().find(|a| a.name == "p").map_or(2, |a| a.i) as f32;
        let size = kernel.iter().product::<i64>() as f32;
        let base = if lp.name.is_empty() { format!("LpPool_{rewritten}") } else { lp.name.clone() };
        let at = |what: &str| format!("{base}.{what}");
        constants.extend([scalar(at("p"), p), scalar(at("size"), size), scalar(at("inverse_p"), 1.0 / p)]);
        let mut pooling: Vec<AttributeProto> =
            lp.attribute.iter().filter(|a| POOLING.contains(&a.name.as_str())).cloned().collect();
        pooling.push(AttributeProto {
            name: "count_include_pad".into(),
            r#type: AttributeType::Int as i32,
            i: 1,
            ..Default::default()
        });
        nodes.extend([
            node("Abs", at("abs"), vec![x.clone()], at("abs"), vec![]),
            node("Pow", at("pow"), vec![at("abs"), at("p")], at("pow"), vec![]),
            node("AveragePool", at("mean"), vec![at("pow")], at("mean"), pooling),
            node("Mul", at("sum"), vec![at("mean"), at("size")], at("sum"), vec![]),
            node("Pow", at("root"), vec![at("sum"), at("inverse_p")], y.clone(), vec![]),
        ]);
        rewritten += 1;
    }
    graph.node = nodes;
    graph.initializer.extend(constants);
    rewritten
}
