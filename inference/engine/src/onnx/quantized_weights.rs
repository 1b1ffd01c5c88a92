//! The int8 weights of an ONNX graph's convolutions, read before tract folds their dequantize
//! into f32 constants.

use std::collections::HashMap;

use tract_onnx::pb::{GraphProto, NodeProto};

use super::initializers::{find as initializer, floats as float_values, int8s as int8_values};

/// The int8 weights of the ONNX graph's convolutions, by `Conv` node name.
#[derive(Clone, Debug, Default)]
pub struct QuantizedWeights(HashMap<String, ConvWeights>);

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
        let mut found = HashMap::new();
        for conv in graph.node.iter().filter(|n| n.op_type == "Conv") {
            let Some(dq) = conv.input.get(1).and_then(|w| producer.get(w.as_str())) else { continue };
            if dq.op_type != "DequantizeLinear" {
                continue;
            }
            let weights = (|| {
                let w = initializer(graph, dq.input.first()?)?;
                let values = int8_values(w)?;
                let scales = float_values(initializer(graph, dq.input.get(1)?)?)?;
                if let Some(zp) = dq.input.get(2).filter(|z| !z.is_empty()) {
                    if int8_values(initializer(graph, zp)?)?.iter().any(|z| *z != 0) {
                        return None;
                    }
                }
                let axis = dq.attribute.iter().find(|a| a.name == "axis").map(|a| a.i).unwrap_or(1);
                let shape: Vec<usize> = w.dims.iter().map(|d| *d as usize).collect();
                let per_channel_ok = scales.len() == 1 || (axis == 0 && shape.first() == Some(&scales.len()));
                if shape.len() != 4 || !per_channel_ok || values.len() != shape.iter().product::<usize>() {
                    return None;
                }
                Some(ConvWeights { values, shape, scales })
            })();
            if let Some(weights) = weights {
                found.insert(conv.name.clone(), weights);
            }
        }
        QuantizedWeights(found)
    }

    /// The weights of the `Conv` node named `conv`.
    pub fn get(&self, conv: &str) -> Option<&ConvWeights> {
        self.0.get(conv)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
