//! Model registry records: what a maintainer declares at upload and what is kept per version.
//! These are stored in stable memory as candid: change them only in ways candid decodes from
//! the old encoding (the engine's stable-layout golden test catches the rest).

use candid::{CandidType, Deserialize, Principal};

use crate::ModelRef;

/// Element type of a tensor.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F16,
    I8,
    U8,
    I32,
    I64,
    /// An element type the engine does not take (bfloat16, complex numbers, sequences…).
    Other,
    F64,
    I16,
    U16,
    U32,
    U64,
    Bool,
    /// UTF-8 strings: an ONNX-ML classifier's text class labels, a category mapper's input.
    Text,
}

impl DType {
    /// Every element type a call can send and a reply carry ([`TensorData`](crate::TensorData)'s).
    pub const ALL: [DType; 13] = [
        DType::F32,
        DType::F16,
        DType::F64,
        DType::I8,
        DType::U8,
        DType::I16,
        DType::U16,
        DType::I32,
        DType::U32,
        DType::I64,
        DType::U64,
        DType::Bool,
        DType::Text,
    ];

    /// From ONNX's `TensorProto.DataType`.
    pub fn from_onnx(code: i32) -> DType {
        match code {
            1 => DType::F32,
            2 => DType::U8,
            3 => DType::I8,
            4 => DType::U16,
            5 => DType::I16,
            6 => DType::I32,
            7 => DType::I64,
            8 => DType::Text,
            9 => DType::Bool,
            10 => DType::F16,
            11 => DType::F64,
            12 => DType::U32,
            13 => DType::U64,
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
            DType::F64 => "f64",
            DType::I16 => "i16",
            DType::U16 => "u16",
            DType::U32 => "u32",
            DType::U64 => "u64",
            DType::Bool => "bool",
            DType::Text => "text",
            DType::Other => "another element type",
        })
    }
}

/// A model input or output: name, shape (`-1` for a symbolic dimension) and element type.
///
/// Symbolic dimensions stay symbolic: each call's input gives them their values (a plan is
/// built per concrete shape), within `max_shape` when a maintainer set it.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<i64>,
    pub dtype: DType,
    /// The largest value each dimension may take, one per dimension (a fixed dimension's is its
    /// value). Absent: symbolic dimensions are bounded only by the canister's input size limit.
    pub max_shape: Option<Vec<u64>>,
}

impl TensorSpec {
    pub fn new(name: impl Into<String>, shape: Vec<i64>, dtype: DType) -> TensorSpec {
        TensorSpec { name: name.into(), shape, dtype, max_shape: None }
    }

    /// This declaration with the given concrete shape (what one plan is built for).
    pub fn with_shape(&self, shape: &[usize]) -> TensorSpec {
        TensorSpec { shape: shape.iter().map(|&d| d as i64).collect(), max_shape: None, ..self.clone() }
    }

    pub fn is_symbolic(&self) -> bool {
        self.shape.iter().any(|&d| d < 0)
    }

    /// The shape when no dimension is symbolic.
    pub fn fixed_shape(&self) -> Option<Vec<usize>> {
        self.shape.iter().map(|&d| usize::try_from(d).ok()).collect()
    }

    /// Checks a call's concrete shape against this declaration: same rank, fixed dimensions
    /// equal, symbolic ones at least 1 and within `max_shape`.
    pub fn admits(&self, shape: &[u64]) -> Result<(), ShapeMismatch> {
        if shape.len() != self.shape.len() {
            return Err(ShapeMismatch::Rank { expected: self.shape.len() as u32 });
        }
        for (dim, (&declared, &got)) in self.shape.iter().zip(shape).enumerate() {
            let dim = dim as u32;
            if declared >= 0 && got != declared as u64 {
                return Err(ShapeMismatch::Fixed { dim, expected: declared as u64 });
            }
            if got == 0 {
                return Err(ShapeMismatch::Empty { dim });
            }
            if let Some(&max) = self.max_shape.as_ref().and_then(|m| m.get(dim as usize)) {
                if got > max {
                    return Err(ShapeMismatch::OverBound { dim, max });
                }
            }
        }
        Ok(())
    }

    /// A maintainer's declaration is sound: `max_shape` as long as the shape, equal to it where
    /// the dimension is fixed, at least 1 where symbolic; no dimension below -1 or of 0.
    pub fn check_declaration(&self) -> Result<(), String> {
        if let Some(d) = self.shape.iter().position(|&d| d == 0 || d < -1) {
            return Err(format!(
                "input \"{}\": dimension {d} is {}; use -1 for a symbolic one",
                self.name, self.shape[d]
            ));
        }
        let Some(max) = &self.max_shape else { return Ok(()) };
        if max.len() != self.shape.len() {
            return Err(format!(
                "input \"{}\": max_shape has {} dimensions, the shape {}",
                self.name,
                max.len(),
                self.shape.len()
            ));
        }
        for (dim, (&declared, &bound)) in self.shape.iter().zip(max).enumerate() {
            if bound == 0 || (declared >= 0 && bound != declared as u64) {
                return Err(format!(
                    "input \"{}\": max_shape[{dim}] is {bound}, but the dimension is {}",
                    self.name,
                    if declared < 0 {
                        "symbolic (a bound of at least 1 is needed)".to_string()
                    } else {
                        format!("fixed at {declared}")
                    }
                ));
            }
        }
        Ok(())
    }
}

/// How a call's input shape differs from the model's declaration.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ShapeMismatch {
    /// The input has another number of dimensions.
    Rank { expected: u32 },
    /// A fixed dimension has another value.
    Fixed { dim: u32, expected: u64 },
    /// A dimension is 0.
    Empty { dim: u32 },
    /// A symbolic dimension exceeds the maintainer's bound.
    OverBound { dim: u32, max: u64 },
}

impl std::fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShapeMismatch::Rank { expected } => write!(f, "the model takes {expected} dimensions"),
            ShapeMismatch::Fixed { dim, expected } => write!(f, "dimension {dim} must be {expected}"),
            ShapeMismatch::Empty { dim } => write!(f, "dimension {dim} is 0"),
            ShapeMismatch::OverBound { dim, max } => write!(f, "dimension {dim} may be at most {max}"),
        }
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
    /// A text model's bundle: its tokenizer is the file's tail (`size` counts both).
    pub text: Option<crate::TextSpec>,
    /// A text model's token ids, read from its tokenizer at the upload's finish.
    pub vocabulary: Option<crate::Vocabulary>,
    /// The inputs (positions in `inputs`) whose values, not only shapes, the engine needs to
    /// build a plan: a reduction's axes, a target shape, resize scales, pads, a quantization
    /// scale… A plan is built for each value a call brings to them, as for each shape (a
    /// value is at most [`MAX_PLAN_VALUE_ELEMENTS`] elements). Absent for versions older than
    /// the field: none.
    pub plan_value_inputs: Option<Vec<u32>>,
}

/// The most elements a call may give an input whose value builds the plan
/// ([`ModelInfo::plan_value_inputs`]): axes, shapes and scales are a few numbers each.
pub const MAX_PLAN_VALUE_ELEMENTS: u64 = 64;

impl ModelInfo {
    /// Bytes of the ONNX model: the whole file less a text model's tokenizer.
    pub fn model_bytes(&self) -> u64 {
        self.size - self.text.as_ref().map_or(0, |t| t.tokenizer_bytes)
    }
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
    /// The inputs' declarations, to fix a symbolic dimension (`shape`) or bound it
    /// (`max_shape`); taken from the model when absent. Symbolic dimensions left at -1 stay
    /// symbolic: each call gives them their values.
    pub inputs: Option<Vec<TensorSpec>>,
    /// A text model: the file is the ONNX model followed by its tokenizer (see [`TextSpec`]).
    pub text: Option<crate::TextSpec>,
}

/// Returned by `upload_start`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UploadTicket {
    pub upload_id: u64,
    pub chunk_count: u32,
}

/// Bytes a pool member copies per call from a peer (`version_chunk`): within the 2 MiB a
/// replicated reply may carry, and within the 2 MiB of a call between subnets.
pub const COPY_CHUNK_BYTES: u32 = 1 << 20;

/// One chunk of an upload, with the sha256 of its own bytes.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UploadChunk {
    pub upload_id: u64,
    pub index: u32,
    pub bytes: serde_bytes::ByteBuf,
    pub sha256: Vec<u8>,
}

/// The chunks `start..end` of an upload (`end` not included).
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRange {
    pub start: u32,
    pub end: u32,
}

impl ChunkRange {
    /// Increasing chunk indices as the fewest ranges.
    pub fn covering(indices: impl IntoIterator<Item = u32>) -> Vec<ChunkRange> {
        let mut ranges: Vec<ChunkRange> = Vec::new();
        for index in indices {
            match ranges.last_mut() {
                Some(last) if last.end == index => last.end += 1,
                _ => ranges.push(ChunkRange { start: index, end: index + 1 }),
            }
        }
        ranges
    }

    /// Every chunk index in `ranges`, in order.
    pub fn indices(ranges: &[ChunkRange]) -> impl DoubleEndedIterator<Item = u32> + '_ {
        ranges.iter().flat_map(|r| r.start..r.end)
    }

    /// How many chunks `ranges` hold.
    pub fn count(ranges: &[ChunkRange]) -> u64 {
        ranges.iter().map(|r| r.end.saturating_sub(r.start) as u64).sum()
    }
}

/// An unfinished upload in a list: how far along it is, without which chunks are missing
/// (`upload_status` has those), so that a list of every upload stays small.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UploadSummary {
    pub upload_id: u64,
    pub name: String,
    pub size: u64,
    pub chunk_size: u32,
    pub chunk_count: u32,
    pub missing_chunks: u64,
    pub received_bytes: u64,
    /// The whole file's sha256 declared at `upload_start`.
    pub sha256: Vec<u8>,
}

impl From<UploadStatus> for UploadSummary {
    fn from(s: UploadStatus) -> Self {
        UploadSummary {
            upload_id: s.upload_id,
            missing_chunks: ChunkRange::count(&s.missing),
            name: s.name,
            size: s.size,
            chunk_size: s.chunk_size,
            chunk_count: s.chunk_count,
            received_bytes: s.received_bytes,
            sha256: s.sha256,
        }
    }
}

/// `5` for one chunk, `3..6` for several.
impl std::fmt::Display for ChunkRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.end == self.start + 1 {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}..{}", self.start, self.end)
        }
    }
}

/// Where an upload stands: what is still missing, for resuming.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UploadStatus {
    pub upload_id: u64,
    pub name: String,
    pub size: u64,
    pub chunk_size: u32,
    pub chunk_count: u32,
    /// The chunks not received yet, as ranges in increasing order (a reply stays small however
    /// many chunks an upload has).
    pub missing: Vec<ChunkRange>,
    pub received_bytes: u64,
    /// The whole file's sha256 declared at `upload_start`: an uploader resumes only an upload of
    /// the very file it holds.
    pub sha256: Vec<u8>,
}

/// A version that serves a name on one canister (`serving_versions`): the active one, and the
/// others a maintainer enabled. Pool members number their copies of a file each in their own
/// order, so the file is known by its sha256 across a pool.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ServingVersion {
    pub version: u32,
    pub sha256: Vec<u8>,
    pub active: bool,
}

/// A canister's pool as it sees it (`pool`): the members (itself among them), and how its last
/// catch-up with them went.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PoolView {
    pub members: Vec<Principal>,
    /// A catch-up is running now.
    pub catching_up: bool,
    /// The last catch-up that ended since the canister's last install or upgrade.
    pub last_catch_up: Option<CatchUp>,
}

/// What one catch-up with the pool did: the versions it copied, enabled or activated here (by
/// name, this canister's version number and sha256), and the peers it could not read.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct CatchUp {
    pub copied: Vec<ModelRef>,
    pub enabled: Vec<ModelRef>,
    pub activated: Vec<ModelRef>,
    pub failed: Vec<PeerFailure>,
    pub finished_at_ns: u64,
}

/// A peer a catch-up could not read or copy from, and why.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PeerFailure {
    pub peer: Principal,
    pub message: String,
}
