//! Chunked, parallel, resumable model upload.
//!
//! The file is cut into chunks (each with its own sha256); an upload is started (or an
//! unfinished one with the same name, size and hash is resumed), the chunks the canister still
//! misses are sent with several in flight and retried with backoff, then the canister verifies
//! the whole sha256 and records the version.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use inference_api::{ModelInfo, RegistryError, UploadChunk, UploadRequest, UploadStatus};
use inference_client::{CallError, InferenceClient, Transport};
use sha2::{Digest, Sha256};

/// Default chunk size: under the 2 MiB ingress limit with room for the candid envelope.
pub const DEFAULT_CHUNK_BYTES: u32 = 2 * 1024 * 1024 - 8 * 1024;

#[derive(Clone, Debug)]
pub struct UploadOptions {
    pub chunk_bytes: u32,
    /// Chunks in flight at once.
    pub parallelism: usize,
    /// Attempts per chunk before giving up (the upload can be resumed later).
    pub attempts: u32,
    pub initial_backoff: Duration,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            parallelism: 4,
            attempts: 6,
            initial_backoff: Duration::from_millis(500),
        }
    }
}

/// Reports progress to a UI (a progress bar) or to nobody.
pub trait Progress {
    fn started(&self, _total_bytes: u64, _already_uploaded: u64) {}
    fn chunk_done(&self, _bytes: u64) {}
    fn retrying(&self, _index: u32, _attempt: u32, _error: &str) {}
}

impl Progress for () {}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The canister's answer: final for these bytes (sending them again cannot change it).
    #[error("the canister refused: {0}")]
    Registry(#[from] RegistryError),
    /// The call got no answer (network, rejection); running the upload again resumes it.
    #[error("{0}")]
    Transport(String),
}

impl From<CallError> for UploadError {
    fn from(e: CallError) -> Self {
        UploadError::Transport(e.to_string())
    }
}

fn chunk(bytes: &[u8], chunk_bytes: u32, index: u32) -> &[u8] {
    let start = index as usize * chunk_bytes as usize;
    &bytes[start..(start + chunk_bytes as usize).min(bytes.len())]
}

/// Finds an unfinished upload of the same model to resume.
async fn resumable<T: Transport>(
    client: &InferenceClient<T>,
    request: &UploadRequest,
) -> Result<Option<UploadStatus>, UploadError> {
    for p in client.uploads().await?? {
        if p.name == request.name && p.size == request.size && p.chunk_size == request.chunk_size {
            // Same name and size: confirm it is the same file by its declared hash.
            if client.upload_status(p.upload_id).await?.is_ok() {
                return Ok(Some(p));
            }
        }
    }
    Ok(None)
}

/// Uploads `bytes` as a new version of `request.name` and returns its record.
pub async fn upload<T: Transport>(
    client: &InferenceClient<T>,
    bytes: &[u8],
    mut request: UploadRequest,
    options: &UploadOptions,
    progress: &impl Progress,
) -> Result<ModelInfo, UploadError> {
    request.size = bytes.len() as u64;
    request.sha256 = Sha256::digest(bytes).to_vec();
    request.chunk_size = options.chunk_bytes;
    let status = match resumable(client, &request).await? {
        Some(s) => s,
        None => {
            let ticket = client.upload_start(&request).await??;
            UploadStatus {
                upload_id: ticket.upload_id,
                name: request.name.clone(),
                size: request.size,
                chunk_size: request.chunk_size,
                chunk_count: ticket.chunk_count,
                missing: (0..ticket.chunk_count).collect(),
                received_bytes: 0,
            }
        }
    };
    progress.started(request.size, status.received_bytes);
    let id = status.upload_id;
    let mut missing = status.missing.clone();
    // A chunk found corrupt at finish is dropped by the canister: send it again, once.
    for round in 0..2 {
        let results: Vec<Result<(), UploadError>> = stream::iter(missing)
            .map(|index| send_chunk(client, id, index, chunk(bytes, options.chunk_bytes, index), options, progress))
            .buffer_unordered(options.parallelism.max(1))
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        match client.upload_finish(id).await? {
            Err(RegistryError::CorruptChunks { indices }) if round == 0 => missing = indices,
            other => return Ok(other?),
        }
    }
    unreachable!("the second round returns")
}

async fn send_chunk<T: Transport>(
    client: &InferenceClient<T>,
    upload_id: u64,
    index: u32,
    bytes: &[u8],
    options: &UploadOptions,
    progress: &impl Progress,
) -> Result<(), UploadError> {
    let arg = UploadChunk {
        upload_id,
        index,
        bytes: serde_bytes::ByteBuf::from(bytes.to_vec()),
        sha256: Sha256::digest(bytes).to_vec(),
    };
    let mut backoff = options.initial_backoff;
    let mut attempt = 1;
    loop {
        match client.upload_chunk(&arg).await {
            Ok(Ok(_)) => {
                progress.chunk_done(bytes.len() as u64);
                return Ok(());
            }
            // The canister's answer is final: retrying the same bytes cannot change it.
            Ok(Err(e)) => return Err(UploadError::Registry(e)),
            Err(e) if attempt < options.attempts => {
                progress.retrying(index, attempt, &e.to_string());
                futures_timer_sleep(backoff).await;
                backoff = backoff.saturating_mul(2).min(Duration::from_secs(30));
                attempt += 1;
            }
            Err(e) => {
                return Err(UploadError::Transport(format!(
                    "chunk {index}: {e} (after {attempt} attempts; run the upload again to resume)"
                )))
            }
        }
    }
}

/// Sleeps without tying the library to one async runtime: a thread does the waiting.
async fn futures_timer_sleep(d: Duration) {
    if d.is_zero() {
        return;
    }
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        let _ = tx.send(());
    });
    let _ = rx.await;
}
