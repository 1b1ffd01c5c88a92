//! The candid types the registry and the executor speak: `inference-api`'s, re-exported so the
//! engine's modules name them in one place.

pub use inference_api::{
    DType, ModelInfo, RegistryError, TensorSpec, UploadChunk, UploadRequest, UploadStatus, UploadTicket, WeightFormat,
};
