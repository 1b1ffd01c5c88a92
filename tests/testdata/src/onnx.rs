//! Small ONNX graphs built in code: for operators no bundled model exercises, and for models a
//! test needs to be wrong in one precise way (an operator no engine knows).

use prost::Message;
use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension, type_proto, AttributeProto,
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

pub use tract_onnx::pb::tensor_proto::DataType as ElemType;

/// A graph under construction; [`Graph::to_bytes`] gives the `.onnx` file.
pub struct Graph {
    opset: i64,
    graph: GraphProto,
}

impl Graph {
    /// An empty graph importing `ai.onnx` at `opset` and `com.microsoft` at 1.
    pub fn new(opset: i64) -> Graph {
        Graph { opset, graph: GraphProto { name: "synthetic".into(), ..Default::default() } }
    }

    /// An input; a negative dimension is symbolic (`d0`, `d1`… by position).
    pub fn input(mut self, name: &str, elem_type: DataType, shape: &[i64]) -> Graph {
        self.graph.input.push(value_info(name, elem_type, Some(shape)));
        self
    }

    /// An output with its element type only (shapes are inferred).
    pub fn output(mut self, name: &str, elem_type: DataType) -> Graph {
        self.graph.output.push(value_info(name, elem_type, None));
        self
    }

    pub fn f32(self, name: &str, dims: &[i64], values: &[f32]) -> Graph {
        self.raw(name, DataType::Float, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    pub fn u8(self, name: &str, dims: &[i64], values: &[u8]) -> Graph {
        self.raw(name, DataType::Uint8, dims, values.to_vec())
    }

    pub fn i8(self, name: &str, dims: &[i64], values: &[i8]) -> Graph {
        self.raw(name, DataType::Int8, dims, values.iter().map(|v| *v as u8).collect())
    }

    pub fn i32(self, name: &str, dims: &[i64], values: &[i32]) -> Graph {
        self.raw(name, DataType::Int32, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    pub fn i64(self, name: &str, dims: &[i64], values: &[i64]) -> Graph {
        self.raw(name, DataType::Int64, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn raw(mut self, name: &str, elem_type: DataType, dims: &[i64], raw_data: Vec<u8>) -> Graph {
        self.graph.initializer.push(TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: elem_type as i32,
            raw_data,
            ..Default::default()
        });
        self
    }

    /// A node; `op` is `"Op"` for `ai.onnx` or `"domain::Op"`. Empty input names stand for
    /// omitted optional inputs, as in ONNX.
    pub fn node(mut self, op: &str, inputs: &[&str], outputs: &[&str], attributes: Vec<AttributeProto>) -> Graph {
        let (domain, op_type) = op.rsplit_once("::").unwrap_or(("", op));
        self.graph.node.push(NodeProto {
            name: format!("{op_type}_{}", self.graph.node.len()),
            op_type: op_type.into(),
            domain: domain.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute: attributes,
            ..Default::default()
        });
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let opset = |domain: &str, version| OperatorSetIdProto { domain: domain.into(), version };
        let mut opset_import = vec![opset("", self.opset), opset("com.microsoft", 1)];
        if self.graph.node.iter().any(|n| n.domain == "ai.onnx.ml") {
            opset_import.push(opset("ai.onnx.ml", 3));
        }
        ModelProto {
            ir_version: 8,
            producer_name: "model-testdata".into(),
            opset_import,
            graph: Some(self.graph.clone()),
            ..Default::default()
        }
        .encode_to_vec()
    }
}

/// ONNX's `QuantizeLinear` to u8 of one value: divided by the scale, rounded half to even, the
/// zero point added, saturated.
pub fn quantize_u8(x: f32, scale: f32, zero_point: u8) -> u8 {
    ((x / scale).round_ties_even() + zero_point as f32).clamp(0.0, 255.0) as u8
}

pub fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i: value, ..Default::default() }
}

pub fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Float as i32, f: value, ..Default::default() }
}

fn value_info(name: &str, elem_type: DataType, shape: Option<&[i64]>) -> ValueInfoProto {
    let shape = shape.map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .enumerate()
            .map(|(i, &d)| tract_onnx::pb::tensor_shape_proto::Dimension {
                // A negative dimension is symbolic, named after its position.
                value: Some(if d < 0 {
                    dimension::Value::DimParam(format!("d{i}"))
                } else {
                    dimension::Value::DimValue(d)
                }),
                ..Default::default()
            })
            .collect(),
    });
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor { elem_type: elem_type as i32, shape })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A valid one-node model whose operator (`com.example::Unheard`) no engine implements.
pub fn unsupported_operator_model() -> Vec<u8> {
    Graph::new(13)
        .input("x", DataType::Float, &[1, 4])
        .output("y", DataType::Float)
        .node("com.example::Unheard", &["x"], &["y"], vec![])
        .to_bytes()
}

/// Every element type the canister's API carries, with its ONNX code.
pub const ELEMENT_TYPES: [(&str, DataType); 13] = [
    ("f32", DataType::Float),
    ("f16", DataType::Float16),
    ("f64", DataType::Double),
    ("i8", DataType::Int8),
    ("u8", DataType::Uint8),
    ("i16", DataType::Int16),
    ("u16", DataType::Uint16),
    ("i32", DataType::Int32),
    ("u32", DataType::Uint32),
    ("i64", DataType::Int64),
    ("u64", DataType::Uint64),
    ("bool", DataType::Bool),
    ("text", DataType::String),
];

/// One input `x_<type>` of shape [batch, 3] (batch symbolic) per element type in
/// [`ELEMENT_TYPES`], and one output `y_<type>` of the same type and shape: `x + x` for numbers,
/// `not x` for booleans, `x` itself for text.
pub fn every_element_type_model() -> Vec<u8> {
    let mut g = Graph::new(17);
    for (name, ty) in ELEMENT_TYPES {
        let (x, y) = (format!("x_{name}"), format!("y_{name}"));
        g = g.input(&x, ty, &[-1, 3]).output(&y, ty);
        g = if ty == DataType::Bool {
            g.node("Not", &[&x], &[&y], vec![])
        } else if ty == DataType::String {
            g.node("Identity", &[&x], &[&y], vec![])
        } else {
            g.node("Add", &[&x, &x], &[&y], vec![])
        };
    }
    g.to_bytes()
}

/// A model whose input keeps a symbolic width: `x` f32 [1, 4, width] through a 3-wide
/// convolution (one output channel, padding 1) and a global average: what an OCR line
/// recognizer's front looks like.
pub fn symbolic_width_model() -> Vec<u8> {
    let weights: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) / 8.0).collect();
    Graph::new(17)
        .input("x", DataType::Float, &[1, 4, -1])
        .output("y", DataType::Float)
        .output("mean", DataType::Float)
        .f32("w", &[1, 4, 3], &weights)
        .node("Conv", &["x", "w"], &["y"], vec![ints("pads", &[1, 1])])
        .node("ReduceMean", &["y"], &["mean"], vec![ints("axes", &[2])])
        .to_bytes()
}

pub fn floats(name: &str, values: &[f32]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Floats as i32,
        floats: values.to_vec(),
        ..Default::default()
    }
}

pub fn strings(name: &str, values: &[&str]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Strings as i32,
        strings: values.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}

pub fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: value.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// The text class labels of [`text_label_tree_model`], in class order.
pub const TEXT_LABELS: [&str; 3] = ["cat", "dog", "bird"];

/// A `TreeEnsembleClassifier` with text class labels (`classlabels_strings`), as skl2onnx
/// writes a classifier trained on text targets: rows `x` f32 [batch, 2]; `x0 > 0.5` is a bird,
/// else `x1 > 0.5` a dog, else a cat. Outputs `label` (text) and `probabilities` [batch, 3].
pub fn text_label_tree_model() -> Vec<u8> {
    let tree = vec![
        ints("nodes_treeids", &[0; 5]),
        ints("nodes_nodeids", &[0, 1, 2, 3, 4]),
        ints("nodes_featureids", &[0, 1, 0, 0, 0]),
        strings("nodes_modes", &["BRANCH_LEQ", "BRANCH_LEQ", "LEAF", "LEAF", "LEAF"]),
        floats("nodes_values", &[0.5, 0.5, 0.0, 0.0, 0.0]),
        ints("nodes_truenodeids", &[1, 3, 0, 0, 0]),
        ints("nodes_falsenodeids", &[2, 4, 0, 0, 0]),
        ints("class_treeids", &[0, 0, 0]),
        ints("class_nodeids", &[2, 3, 4]),
        ints("class_ids", &[2, 0, 1]),
        floats("class_weights", &[1.0, 1.0, 1.0]),
        strings("classlabels_strings", &TEXT_LABELS),
        string("post_transform", "NONE"),
    ];
    Graph::new(17)
        .input("x", DataType::Float, &[-1, 2])
        .output("label", DataType::String)
        .output("probabilities", DataType::Float)
        .node("ai.onnx.ml::TreeEnsembleClassifier", &["x"], &["label", "probabilities"], tree)
        .to_bytes()
}

pub fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}
