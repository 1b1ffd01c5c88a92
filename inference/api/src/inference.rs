//! Running a model: the tensors callers send, what `classify`, `infer` and `profile` answer.

use candid::{CandidType, Deserialize};

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I8(Vec<i8>),
    U8(serde_bytes::ByteBuf),
}

impl TensorData {
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::U8(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tensor sent by the caller: row-major data and its shape.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct InputTensor {
    pub shape: Vec<u64>,
    pub data: TensorData,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct ClassifyRequest {
    pub model: String,
    /// The active version when absent.
    pub version: Option<u32>,
    pub input: InputTensor,
    /// How many labels to return, best first (default 5).
    pub top_k: Option<u32>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct InferRequest {
    pub model: String,
    /// The active version when absent.
    pub version: Option<u32>,
    pub inputs: Vec<InputTensor>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct LabelScore {
    pub label: String,
    pub index: u32,
    pub score: f32,
}

/// Which model answered: the audit trail of a decision.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ModelRef {
    pub name: String,
    pub version: u32,
    pub sha256: Vec<u8>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct Classification {
    pub labels: Vec<LabelScore>,
    pub model: ModelRef,
    /// Instructions the whole inference took (all its messages).
    pub instructions: u64,
    pub messages: u32,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct OutputTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub data: Vec<f32>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct Inference {
    pub outputs: Vec<OutputTensor>,
    pub model: ModelRef,
    pub instructions: u64,
    pub messages: u32,
}

/// The instructions one node of the optimised plan took, in plan order.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NodeProfile {
    /// The node's name: the ONNX node's, or tract's derivation of it (`Conv.3.einsum.pack_b`).
    pub node: String,
    /// tract's operator after optimisation (`OptMatMul`, `QuantizeLinearU8`, `DepthWiseConv`…).
    pub op: String,
    pub instructions: u64,
}

/// Where an inference's instructions went, node by node.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct Profile {
    pub nodes: Vec<NodeProfile>,
    pub model: ModelRef,
    /// The whole inference (all its messages), including what no node accounts for.
    pub instructions: u64,
    pub messages: u32,
}
