//! Attribute values tract-onnx 0.23.9 does not read, so a node that sets them would run as if
//! they were absent and answer wrong values without an error. [`unsupported`] names such nodes
//! for `inspect`, and their upload is refused.
//!
//! Found by the ONNX node tests (`test_spacetodepth_crd_mode_example`: opset 28's `mode` of
//! `SpaceToDepth`, where tract always computes the DCR order).

use tract_onnx::pb::GraphProto;

/// Operator, attribute, and the string values tract computes correctly (the default first).
const IGNORED: &[(&str, &str, &[&str])] = &[("SpaceToDepth", "mode", &["DCR"])];

/// `Op (attribute=value)` for each node setting an attribute value tract ignores.
pub fn unsupported(graph: &GraphProto) -> Vec<String> {
    let mut found = vec![];
    for node in graph.node.iter().filter(|n| n.domain.is_empty() || n.domain == "ai.onnx") {
        for (op, name, taken) in IGNORED.iter().filter(|(op, _, _)| *op == node.op_type) {
            for attribute in node.attribute.iter().filter(|a| a.name == *name) {
                let value = String::from_utf8_lossy(&attribute.s);
                if !taken.contains(&value.as_ref()) {
                    found.push(format!("{op} ({name}={value})"));
                }
            }
        }
    }
    found
}
