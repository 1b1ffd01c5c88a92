//! Running a model: the tensors callers send, what `classify`, `infer` and `profile` answer.

use candid::{CandidType, Deserialize};

use crate::DType;

/// A tensor's elements, row-major, in one of the element types models take and give.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    /// f32 values as their little-endian bytes, four a value: the same tensor as `F32` (same
    /// element type, checks and receipt digest), for large ones. A canister decodes a blob at
    /// about one instruction a byte, a `vec float32` element by element at about 31
    /// (`benchmarks/NOTES.md`, "f32 tensors as bytes").
    F32Bytes(serde_bytes::ByteBuf),
    I8(Vec<i8>),
    U8(serde_bytes::ByteBuf),
    /// IEEE 754 half-precision values as their bit patterns (candid has no 16-bit float).
    F16(Vec<u16>),
    F64(Vec<f64>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    /// Token ids, masks and class labels, in most models.
    I64(Vec<i64>),
    U64(Vec<u64>),
    Bool(Vec<bool>),
    /// UTF-8 strings (ONNX `STRING`): text class labels, categories.
    Text(Vec<String>),
}

/// `$m!(variant, element)` for every [`TensorData`] variant but `U8`, whose bytes are a blob.
macro_rules! each_vector_variant {
    ($m:ident) => {
        $m!(F32, f32);
        $m!(I8, i8);
        $m!(F16, u16);
        $m!(F64, f64);
        $m!(I16, i16);
        $m!(U16, u16);
        $m!(I32, i32);
        $m!(U32, u32);
        $m!(I64, i64);
        $m!(U64, u64);
        $m!(Bool, bool);
    };
}

impl TensorData {
    pub fn len(&self) -> usize {
        macro_rules! len {
            ($($v:ident),*) => {
                match self {
                    TensorData::U8(v) => v.len(),
                    TensorData::F32Bytes(v) => v.len() / 4,
                    $(TensorData::$v(v) => v.len(),)*
                }
            };
        }
        len!(F32, I8, F16, F64, I16, U16, I32, U32, I64, U64, Bool, Text)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type of these data.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) | TensorData::F32Bytes(_) => DType::F32,
            TensorData::I8(_) => DType::I8,
            TensorData::U8(_) => DType::U8,
            TensorData::F16(_) => DType::F16,
            TensorData::F64(_) => DType::F64,
            TensorData::I16(_) => DType::I16,
            TensorData::U16(_) => DType::U16,
            TensorData::I32(_) => DType::I32,
            TensorData::U32(_) => DType::U32,
            TensorData::I64(_) => DType::I64,
            TensorData::U64(_) => DType::U64,
            TensorData::Bool(_) => DType::Bool,
            TensorData::Text(_) => DType::Text,
        }
    }

    /// The elements when they are sent as [`TensorData::F32`] (outputs always are).
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// `values` as [`TensorData::F32Bytes`]: the cheaper way to send a large f32 tensor.
    pub fn f32_bytes(values: &[f32]) -> TensorData {
        TensorData::F32Bytes(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>().into())
    }

    /// The bytes of the elements, little-endian, in order: what a digest of an output hashes
    /// (a string as its length, u32 little-endian, then its UTF-8 bytes).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        macro_rules! extend {
            ($v:ident, bool) => {
                if let TensorData::$v(v) = self {
                    bytes.extend(v.iter().map(|&b| b as u8));
                }
            };
            ($v:ident, $t:ty) => {
                if let TensorData::$v(v) = self {
                    bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
                }
            };
        }
        each_vector_variant!(extend);
        if let TensorData::U8(v) | TensorData::F32Bytes(v) = self {
            bytes.extend_from_slice(v);
        }
        if let TensorData::Text(v) = self {
            bytes = text_le_bytes(v);
        }
        bytes
    }
}

/// Strings as one byte string: each one's length (u32, little-endian), then its UTF-8 bytes.
pub fn text_le_bytes(strings: &[String]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(strings.iter().map(|s| s.len() + 4).sum());
    for s in strings {
        bytes.extend((s.len() as u32).to_le_bytes());
        bytes.extend(s.as_bytes());
    }
    bytes
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

/// One record's classification.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct RecordClassification {
    /// The model's own decision for the record, when it outputs one (the label output of an
    /// ONNX-ML classifier: a random forest, an SVM…), as a class label. It can differ from the best
    /// score: an SVM decides by its pairwise votes, as scikit-learn's `predict` does.
    pub label: Option<String>,
    /// The best scores, best first (`top_k` of them).
    pub scores: Vec<LabelScore>,
}

/// What `classify` answers: one classification per record of the input's batch (the rows of
/// a tabular model's input, the images of an image model's batch…), in input order.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct Classification {
    /// The first record's best scores (its `records[0].scores`), for callers that send one.
    pub labels: Vec<LabelScore>,
    pub records: Vec<RecordClassification>,
    pub model: ModelRef,
    /// Instructions the whole inference took (all its messages).
    pub instructions: u64,
    pub messages: u32,
    /// The audit log's entry of this inference (absent from a query's answer: a query's state
    /// changes are discarded, so it cannot log).
    pub receipt: Option<crate::Receipt>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct OutputTensor {
    pub name: String,
    pub shape: Vec<u64>,
    /// In the output's own element type (class labels as integers, masks as booleans).
    pub data: TensorData,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct Inference {
    pub outputs: Vec<OutputTensor>,
    pub model: ModelRef,
    pub instructions: u64,
    pub messages: u32,
    /// The audit log's entry of this inference.
    pub receipt: Option<crate::Receipt>,
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
