//! The int8 weights of an ONNX graph's convolutions and matrix products, read before tract folds
//! their dequantize into f32 constants.

use std::collections::HashMap;

use tract_onnx::pb::{GraphProto, NodeProto};

use super::initializers::{find as initializer, floats as float_values, int8s as int8_values};

/// The int8 weights of the ONNX graph's convolutions, by `Conv` node name, and of its matrix
/// products by constant weights, by `MatMul` node name.
#[derive(Clone, Debug, Default)]
pub struct QuantizedWeights {
    convs: HashMap<String, ConvWeights>,
    matmuls: HashMap<String, MatMulWeights>,
}

/// One matrix product's weights `B` `[K, N]` and their scales (one, or one per column: per
/// output channel).
#[derive(Clone, Debug)]
pub struct MatMulWeights {
    pub values: Vec<i8>,
    pub shape: [usize; 2],
    pub scales: Vec<f32>,
}

/// One convolution's weights `[M, C, kh, kw]` and their scales (one, or one per output channel).
#[derive(Clone, Debug)]
pub struct ConvWeights {
    pub values: Vec<i8>,
    pub shape: Vec<usize>,
    pub scales: Vec<f32>,
}

impl QuantizedWeights {
    /// Finds every `Conv` whose weights are `DequantizeLinear(int8 initializer, float
    /// initializer scale[, zero zero point])` along the output-channel axis.
    pub fn from_graph(graph: &GraphProto) -> QuantizedWeights {
        let producer: HashMap<&str, &NodeProto> =
            graph.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n))).collect();
        QuantizedWeights { convs: convs(graph, &producer), matmuls: matmuls(graph, &producer) }
    }

    /// The weights of the `Conv` node named `conv`.
    pub fn get(&self, conv: &str) -> Option<&ConvWeights> {
        self.convs.get(conv)
    }

    /// The weights of the `MatMul` node named `matmul`.
    pub fn matmul(&self, matmul: &str) -> Option<&MatMulWeights> {
        self.matmuls.get(matmul)
    }

    pub fn is_empty(&self) -> bool {
        self.convs.is_empty() && self.matmuls.is_empty()
    }
}

/// Int8 weights as a `DequantizeLinear` reads them.
struct Dequantized {
    values: Vec<i8>,
    shape: Vec<usize>,
    scales: Vec<f32>,
    /// The dequantize's axis (the one its scales run along when there are several).
    axis: i64,
}

/// A node's weights input, when it is `DequantizeLinear(int8 initializer, float initializer
/// scale[, zero zero point])`.
fn dequantized_weights(
    graph: &GraphProto,
    producer: &HashMap<&str, &NodeProto>,
    input: Option<&String>,
    default_axis: i64,
) -> Option<Dequantized> {
    let dq = producer.get(input?.as_str())?;
    if dq.op_type != "DequantizeLinear" {
        return None;
    }
    let w = initializer(graph, dq.input.first()?)?;
    let values = int8_values(w)?;
    let scales = float_values(initializer(graph, dq.input.get(1)?)?)?;
    if let Some(zp) = dq.input.get(2).filter(|z| !z.is_empty()) {
        if int8_values(initializer(graph, zp)?)?.iter().any(|z| *z != 0) {
            return None;
        }
    }
    let axis = dq.attribute.iter().find(|a| a.name == "axis").map(|a| a.i).unwrap_or(default_axis);
    let shape: Vec<usize> = w.dims.iter().map(|d| *d as usize).collect();
    (values.len() == shape.iter().product::<usize>()).then_some(Dequantized { values, shape, scales, axis })
}

/// Every `MatMul` whose second input is int8 weights `[K, N]` dequantized per tensor or per
/// column (`axis` 1).
fn matmuls(graph: &GraphProto, producer: &HashMap<&str, &NodeProto>) -> HashMap<String, MatMulWeights> {
    let mut found = HashMap::new();
    for matmul in graph.node.iter().filter(|n| n.op_type == "MatMul") {
        let Some(Dequantized { values, shape, scales, axis }) =
            dequantized_weights(graph, producer, matmul.input.get(1), 1)
        else {
            continue;
        };
        let [k, n] = shape[..] else { continue };
        if scales.len() == 1 || ((axis == 1 || axis == -1) && scales.len() == n) {
            found.insert(matmul.name.clone(), MatMulWeights { values, shape: [k, n], scales });
        }
    }
    found
}

/// Every `Conv` whose weights are int8 `[M, C, kh, kw]` dequantized per tensor or per output
/// channel (`axis` 0).
fn convs(graph: &GraphProto, producer: &HashMap<&str, &NodeProto>) -> HashMap<String, ConvWeights> {
    let mut found = HashMap::new();
    for conv in graph.node.iter().filter(|n| n.op_type == "Conv") {
        let Some(Dequantized { values, shape, scales, axis }) =
            dequantized_weights(graph, producer, conv.input.get(1), 1)
        else {
            continue;
        };
        let per_channel_ok = scales.len() == 1 || (axis == 0 && shape.first() == Some(&scales.len()));
        if shape.len() == 4 && per_channel_ok {
            found.insert(conv.name.clone(), ConvWeights { values, shape, scales });
        }
    }
    found
}
