//! Reading ONNX initializers (what our graph rewrites need before tract parses the graph).

use tract_onnx::pb::{tensor_proto::DataType, GraphProto, TensorProto};

/// The initializer named `name`.
pub fn find<'g>(graph: &'g GraphProto, name: &str) -> Option<&'g TensorProto> {
    graph.initializer.iter().find(|t| t.name == name)
}

/// A float tensor's values, from `raw_data` (little-endian) or `float_data`.
pub fn floats(t: &TensorProto) -> Option<Vec<f32>> {
    if t.data_type != DataType::Float as i32 {
        return None;
    }
    Some(if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    })
}

/// An int8 tensor's values, from `raw_data` or widened in `int32_data`.
pub fn int8s(t: &TensorProto) -> Option<Vec<i8>> {
    if t.data_type != DataType::Int8 as i32 {
        return None;
    }
    Some(if t.raw_data.is_empty() {
        t.int32_data.iter().map(|v| *v as i8).collect()
    } else {
        t.raw_data.iter().map(|b| *b as i8).collect()
    })
}
