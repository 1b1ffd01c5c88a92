//! Types that cross the canister's candid interface and are stored in stable memory.
//!
//! They live in the engine so the registry and the executor speak them directly; candid is
//! plain Rust serialisation, nothing here touches the IC.

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
}

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
}

/// Typed errors of the model registry: each leaves the registry unchanged.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RegistryError {
    NotAuthorized { caller: Principal, needs: String },
    InvalidRequest(String),
    UnknownUpload(u64),
    ChunkIndexOutOfRange { index: u32, chunk_count: u32 },
    ChunkTooLarge { size: u64, max: u64 },
    ChunkWrongSize { index: u32, expected: u64, got: u64 },
    ChunkHashMismatch { index: u32 },
    /// Found at finish: these chunks' bytes do not match their declared sha256. They were
    /// dropped from the upload; send them again (the uploader's resume does) and finish again.
    CorruptChunks { indices: Vec<u32> },
    ConflictingChunk { index: u32 },
    ChunksMissing { missing: Vec<u32> },
    ModelHashMismatch { declared: Vec<u8>, actual: Vec<u8> },
    InvalidModel(String),
    UnsupportedOperators(Vec<String>),
    UnknownModel(String),
    UnknownVersion { name: String, version: u32 },
    VersionActive { name: String, version: u32 },
    NothingToRollBackTo(String),
    OutOfStableMemory,
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
impl std::error::Error for RegistryError {}
