//! The candid types the registry and the executor speak: `inference-api`'s, re-exported so the
//! engine's modules name them in one place.

pub use inference_api::{
    ChunkRange, Config, DType, InferenceError, ModelCursor, ModelInfo, ModelPage, RegistryError, TensorSpec,
    UploadChunk, UploadRequest, UploadStatus, UploadSummary, UploadTicket, WeightFormat,
};
