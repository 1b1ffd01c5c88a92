//! Chunked, parallel, resumable model upload.
//!
//! The file is cut into chunks (each with its own sha256) and identified by its whole sha256.
//! Before anything is sent, the registry is asked whether a version of the same name already
//! holds this file: if one does, it is the result and nothing is uploaded (unless
//! [`UploadOptions::force`]). Otherwise an unfinished upload of the very same file (same name,
//! size, chunk size and declared sha256) is resumed, or a new one started; the chunks the
//! canister still misses are sent with several in flight and retried with backoff; then the
//! canister verifies the whole sha256 and records the version.
//!
//! The recorded version is checked against the local file's sha256 before it is returned (a
//! mismatch is an error, so a caller never gets a different file to activate), and
//! [`activate_verified`] reads a version's record back and checks it before activating. A finish whose
//! reply is lost is not simply sent again: the upload is looked up first, and if it is gone the
//! version it became is found by name and sha256, so a lost reply never makes a second version.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use inference_api::{ChunkRange, ModelInfo, RegistryError, UploadChunk, UploadRequest, UploadStatus};
use inference_client::{CallError, InferenceClient, Transport};
use sha2::{Digest, Sha256};

/// Default chunk size: under the 2 MiB ingress limit with room for the candid envelope.
pub const DEFAULT_CHUNK_BYTES: u32 = 2 * 1024 * 1024 - 8 * 1024;

#[derive(Clone, Debug)]
pub struct UploadOptions {
    pub chunk_bytes: u32,
    /// Chunks in flight at once.
    pub parallelism: usize,
    /// Attempts per call (each chunk, the finish) before giving up (the upload can be resumed
    /// later).
    pub attempts: u32,
    pub initial_backoff: Duration,
    /// Upload even when a version of the same name already holds a file with this sha256 (to
    /// record it again with other labels, description or input shapes). Without it, that
    /// version is the result and nothing is sent.
    pub force: bool,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            parallelism: 4,
            attempts: 6,
            initial_backoff: Duration::from_millis(500),
            force: false,
        }
    }
}

/// Reports progress to a UI (a progress bar) or to nobody.
pub trait Progress {
    fn started(&self, _total_bytes: u64, _already_uploaded: u64) {}
    fn chunk_done(&self, _bytes: u64) {}
    fn retrying(&self, _index: u32, _attempt: u32, _error: &str) {}
    /// `upload_finish` got no reply; the upload is looked up before anything is sent again.
    fn finish_unanswered(&self, _attempt: u32, _error: &str) {}
    /// A version of this name already holds this file: it is the result, nothing is uploaded.
    fn already_recorded(&self, _info: &ModelInfo) {}
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
    /// The version recorded is not the local file: it is neither returned as the upload's result
    /// nor activated.
    #[error(
        "{name} v{version} has sha256 {}, not the local file's {}: refusing to use or activate it",
        hex(recorded),
        hex(local)
    )]
    HashMismatch { name: String, version: u32, recorded: Vec<u8>, local: Vec<u8> },
    /// `upload_finish` got no reply, and then the upload was gone with no version of this name
    /// holding the file (someone aborted it).
    #[error(
        "upload {upload_id} of {name} is gone and no version of {name} has the local file's sha256 \
         (aborted while finishing?); run the upload again"
    )]
    Vanished { upload_id: u64, name: String },
}

impl From<CallError> for UploadError {
    fn from(e: CallError) -> Self {
        UploadError::Transport(e.to_string())
    }
}

/// Lowercase hex, as `sha256sum` prints it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn chunk(bytes: &[u8], chunk_bytes: u32, index: u32) -> &[u8] {
    let start = index as usize * chunk_bytes as usize;
    &bytes[start..(start + chunk_bytes as usize).min(bytes.len())]
}

/// The newest version of `name` whose bytes have this sha256.
pub async fn recorded_version<T: Transport>(
    client: &InferenceClient<T>,
    name: &str,
    sha256: &[u8],
) -> Result<Option<ModelInfo>, UploadError> {
    let models = client.all_models().await??;
    Ok(models.into_iter().filter(|i| i.name == name && i.sha256 == sha256).max_by_key(|i| i.version))
}

/// Finds an unfinished upload of the very same file to resume: same name, size, chunk size and
/// declared sha256 (of those, the one furthest along), with the chunks it still misses.
async fn resumable<T: Transport>(
    client: &InferenceClient<T>,
    request: &UploadRequest,
) -> Result<Option<UploadStatus>, UploadError> {
    let furthest = client
        .uploads()
        .await??
        .into_iter()
        .filter(|p| {
            p.name == request.name
                && p.size == request.size
                && p.chunk_size == request.chunk_size
                && p.sha256 == request.sha256
        })
        .min_by_key(|p| (p.missing_chunks, p.upload_id));
    let Some(furthest) = furthest else { return Ok(None) };
    match client.upload_status(furthest.upload_id).await? {
        Ok(status) => Ok(Some(status)),
        // Expired (or aborted) since it was listed: start afresh.
        Err(RegistryError::UnknownUpload(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Checks that `info` is the file whose sha256 is `local`.
fn verified(info: ModelInfo, local: &[u8]) -> Result<ModelInfo, UploadError> {
    if info.sha256 == local {
        Ok(info)
    } else {
        Err(UploadError::HashMismatch {
            name: info.name,
            version: info.version,
            recorded: info.sha256,
            local: local.to_vec(),
        })
    }
}

/// Activates `name` `version` after reading its record back and checking that it holds the file
/// whose sha256 is `sha256`; on a mismatch nothing is activated.
pub async fn activate_verified<T: Transport>(
    client: &InferenceClient<T>,
    name: &str,
    version: u32,
    sha256: &[u8],
) -> Result<(), UploadError> {
    verified(client.model_info(name, Some(version)).await??, sha256)?;
    client.activate(name, version).await??;
    Ok(())
}

/// Uploads `bytes` as a new version of `request.name` and returns its record, checked to hold
/// these bytes. When a version of that name already
/// holds them, that version is returned and nothing is uploaded, unless [`UploadOptions::force`].
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
    let existing = if options.force { None } else { recorded_version(client, &request.name, &request.sha256).await? };
    match existing {
        Some(info) => {
            progress.already_recorded(&info);
            Ok(info)
        }
        None => verified(send(client, bytes, &request, options, progress).await?, &request.sha256),
    }
}

/// Resumes or starts the upload, sends what is missing and finishes it.
async fn send<T: Transport>(
    client: &InferenceClient<T>,
    bytes: &[u8],
    request: &UploadRequest,
    options: &UploadOptions,
    progress: &impl Progress,
) -> Result<ModelInfo, UploadError> {
    let status = match resumable(client, request).await? {
        Some(s) => s,
        None => {
            let ticket = client.upload_start(request).await??;
            UploadStatus {
                upload_id: ticket.upload_id,
                name: request.name.clone(),
                size: request.size,
                chunk_size: request.chunk_size,
                chunk_count: ticket.chunk_count,
                missing: vec![ChunkRange { start: 0, end: ticket.chunk_count }],
                received_bytes: 0,
                sha256: request.sha256.clone(),
            }
        }
    };
    progress.started(request.size, status.received_bytes);
    let id = status.upload_id;
    let mut missing: Vec<u32> = ChunkRange::indices(&status.missing).collect();
    // A chunk found corrupt at finish is dropped by the canister: send it again, once.
    for round in 0..2 {
        let results: Vec<Result<(), UploadError>> = stream::iter(missing)
            .map(|index| send_chunk(client, id, index, chunk(bytes, options.chunk_bytes, index), options, progress))
            .buffer_unordered(options.parallelism.max(1))
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        match finish(client, id, request, options, progress).await? {
            Err(RegistryError::CorruptChunks { indices }) if round == 0 => missing = indices,
            other => return Ok(other?),
        }
    }
    unreachable!("the second round returns")
}

/// `upload_finish`, made safe to repeat: when a call gets no reply it may still have recorded
/// the version, so before calling again the upload is looked up (asking until there is an
/// answer). Still there: finishing again is safe. Gone: the version it became (this name, this
/// sha256) is the answer.
async fn finish<T: Transport>(
    client: &InferenceClient<T>,
    upload_id: u64,
    request: &UploadRequest,
    options: &UploadOptions,
    progress: &impl Progress,
) -> Result<Result<ModelInfo, RegistryError>, UploadError> {
    let gone = || async {
        match recorded_version(client, &request.name, &request.sha256).await? {
            Some(info) => Ok(Ok(info)),
            None => Err(UploadError::Vanished { upload_id, name: request.name.clone() }),
        }
    };
    let give_up = |error: &CallError, attempt: u32| {
        UploadError::Transport(format!(
            "{error} (after {attempt} attempts; run the upload again: it resumes this upload, or finds \
             the version it became)"
        ))
    };
    let mut backoff = options.initial_backoff;
    let mut attempt = 1;
    loop {
        let error = match client.upload_finish(upload_id).await {
            // After an unanswered call the upload can be gone by now: finished by that call.
            Ok(Err(RegistryError::UnknownUpload(_))) if attempt > 1 => return gone().await,
            Ok(answer) => return Ok(answer),
            Err(e) => e,
        };
        progress.finish_unanswered(attempt, &error.to_string());
        // Where does the upload stand? Ask until there is an answer.
        loop {
            match client.upload_status(upload_id).await {
                // Not finished: calling again is safe.
                Ok(Ok(_)) => break,
                Ok(Err(RegistryError::UnknownUpload(_))) => return gone().await,
                Ok(Err(refusal)) => return Ok(Err(refusal)),
                Err(e) if attempt < options.attempts => {
                    progress.finish_unanswered(attempt, &e.to_string());
                    futures_timer_sleep(backoff).await;
                    backoff = backoff.saturating_mul(2).min(Duration::from_secs(30));
                    attempt += 1;
                }
                Err(e) => return Err(give_up(&e, attempt)),
            }
        }
        if attempt >= options.attempts {
            return Err(give_up(&error, attempt));
        }
        futures_timer_sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(Duration::from_secs(30));
        attempt += 1;
    }
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

/// A text model's bundle as the canister stores it: the ONNX model followed by its tokenizer
/// file, and the declaration that says where the tokenizer starts and what it hashes to.
pub fn text_bundle(
    model: &[u8],
    tokenizer: &[u8],
    max_tokens: u32,
    truncation: inference_api::Truncation,
    task: inference_api::TextTask,
) -> (Vec<u8>, inference_api::TextSpec) {
    let spec = inference_api::TextSpec {
        tokenizer_bytes: tokenizer.len() as u64,
        tokenizer_sha256: Sha256::digest(tokenizer).to_vec(),
        max_tokens,
        truncation,
        task,
    };
    ([model, tokenizer].concat(), spec)
}
