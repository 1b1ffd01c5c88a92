//! Gives every node a name of its own. Some exporters repeat one (Silero's OpenVINO export
//! names 15 `Constant` nodes `F0::anon`), which tract 0.23.9 refuses when it compacts the graph;
//! a repeated name becomes the node's first output name (unique in ONNX), or gets a suffix.

use tract_onnx::pb::GraphProto;

/// Renames every node whose name an earlier node has; returns how many.
pub fn rewrite(graph: &mut GraphProto) -> usize {
    let mut seen = std::collections::HashSet::new();
    let mut renamed = 0;
    for ix in 0..graph.node.len() {
        let node = &graph.node[ix];
        if node.name.is_empty() || seen.insert(node.name.clone()) {
            continue;
        }
        let fallback = node.output.first().filter(|o| !o.is_empty()).cloned().unwrap_or_else(|| node.name.clone());
        let name = (0..)
            .map(|n| if n == 0 { fallback.clone() } else { format!("{fallback}#{n}") })
            .find(|c| !seen.contains(c))
            .unwrap();
        seen.insert(name.clone());
        graph.node[ix].name = name;
        renamed += 1;
    }
    renamed
}

#[cfg(test)]
mod tests {
    use tract_onnx::pb::{GraphProto, NodeProto};

    #[test]
    fn repeated_names_become_output_names_or_get_a_suffix() {
        let node = |name: &str, output: &str| NodeProto {
            name: name.into(),
            output: vec![output.into()],
            ..Default::default()
        };
        let mut graph = GraphProto {
            node: vec![node("a", "x"), node("a", "y"), node("a", "y"), node("", "z"), node("b", "w")],
            ..Default::default()
        };
        assert_eq!(super::rewrite(&mut graph), 2);
        let names: Vec<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "y", "y#1", "", "b"]);
    }
}
