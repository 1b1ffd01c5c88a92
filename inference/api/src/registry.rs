//! Model registry records: what a maintainer declares at upload and what is kept per version.
//! These are stored in stable memory as candid: change them only in ways candid decodes from
//! the old encoding (the engine's stable-layout golden test catches the rest).

use candid::{CandidType, Deserialize, Principal};

/// Element type of a tensor.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F16,
    I8,
    U8,
    I32,
    I64,
    Other,
}

impl DType {
    /// From ONNX's `TensorProto.DataType`.
    pub fn from_onnx(code: i32) -> DType {
        match code {
            1 => DType::F32,
            10 => DType::F16,
            3 => DType::I8,
            2 => DType::U8,
            6 => DType::I32,
            7 => DType::I64,
            _ => DType::Other,
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::Other => "another element type",
        })
    }
}

/// A model input or output: name, shape (`-1` for a symbolic dimension) and element type.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<i64>,
    pub dtype: DType,
}

impl TensorSpec {
    /// The shape with symbolic dimensions pinned to 1 (a batch of one).
    pub fn concrete_shape(&self) -> Vec<usize> {
        self.shape.iter().map(|&d| if d < 0 { 1 } else { d as usize }).collect()
    }

    pub fn element_count(&self) -> usize {
        self.concrete_shape().iter().product()
    }
}

/// How a model stores its weights.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightFormat {
    F32,
    /// f32 initializers stored as f16 (half the bytes); computed in f32 after loading.
    F16,
    /// Quantized: int8/uint8 weights (QDQ, QOperator or dynamic quantization).
    Int8,
}

/// Everything recorded about one immutable model version.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    pub name: String,
    pub version: u32,
    pub sha256: Vec<u8>,
    pub size: u64,
    pub chunk_size: u32,
    pub chunk_count: u32,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    pub labels: Vec<String>,
    pub weight_format: WeightFormat,
    pub operators: Vec<String>,
    pub parameters: u64,
    pub description: String,
    pub uploaded_by: Principal,
    pub uploaded_at_ns: u64,
    /// Where the bytes live in the chunk store.
    pub blob: u64,
    /// The upload this version was finished from (absent for versions older than the field),
    /// so finishing the same upload again returns this version instead of a second one.
    pub upload_id: Option<u64>,
}

/// Where a page of `list_models` starts: after this version.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ModelCursor {
    pub name: String,
    pub version: u32,
}

/// One page of model versions, in name and version order; `next` continues it.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ModelPage {
    pub models: Vec<ModelInfo>,
    pub next: Option<ModelCursor>,
}

/// Versions per page of `list_models`: a version's record (with up to thousands of labels)
/// takes tens of KiB at most, so a page stays far under the 2 MiB reply limit.
pub const MODEL_PAGE_SIZE: usize = 20;

/// What a maintainer declares when starting an upload.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UploadRequest {
    pub name: String,
    pub size: u64,
    pub sha256: Vec<u8>,
    pub chunk_size: u32,
    pub description: String,
    pub labels: Vec<String>,
    /// Input shapes to pin (e.g. a symbolic batch to 1); taken from the model when absent.
    pub inputs: Option<Vec<TensorSpec>>,
}

/// Returned by `upload_start`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UploadTicket {
    pub upload_id: u64,
    pub chunk_count: u32,
}

/// One chunk of an upload, with the sha256 of its own bytes.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UploadChunk {
    pub upload_id: u64,
    pub index: u32,
    pub bytes: serde_bytes::ByteBuf,
    pub sha256: Vec<u8>,
}

/// Where an upload stands: what is still missing, for resuming.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UploadStatus {
    pub upload_id: u64,
    pub name: String,
    pub size: u64,
    pub chunk_size: u32,
    pub chunk_count: u32,
    pub missing: Vec<u32>,
    pub received_bytes: u64,
    /// The whole file's sha256 declared at `upload_start`: an uploader resumes only an upload of
    /// the very file it holds.
    pub sha256: Vec<u8>,
}
