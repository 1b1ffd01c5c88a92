//! Registry endpoints' bodies: delegate to the engine's registry, with what only the canister
//! knows (the caller, the time, the plans in the heap). The endpoints check the caller first.

use candid::Principal;
use inference_api::{ModelInfo, RegistryError, UploadChunk, UploadRequest, UploadStatus, UploadTicket};

use crate::{inference, state};

pub fn start(caller: Principal, request: UploadRequest) -> Result<UploadTicket, RegistryError> {
    state::with_mut(|s| s.registry.start_upload(&mut s.layout, request, caller, ic_cdk::api::time()))
}

pub fn put(chunk: UploadChunk) -> Result<UploadStatus, RegistryError> {
    state::with_mut(|s| s.registry.put_chunk(chunk.upload_id, chunk.index, chunk.bytes.into_vec(), chunk.sha256))
}

pub fn finish(upload_id: u64) -> Result<ModelInfo, RegistryError> {
    state::with_mut(|s| s.registry.finish_upload(upload_id))
}

/// Activates after building the plan, so a version that cannot run never serves.
pub async fn activate(name: &str, version: u32) -> Result<(), RegistryError> {
    let info = state::with(|s| s.registry.info(name, Some(version)))?;
    inference::plan_in_own_message(&info).await.map_err(RegistryError::InvalidModel)?;
    state::with_mut(|s| s.registry.activate(name, version))
}

/// Builds a version's plan into the heap cache (in a message of its own, called by this
/// canister, so the build has the whole instruction limit).
pub fn build_plan(name: &str, version: u32) -> Result<(), RegistryError> {
    let info = state::with(|s| s.registry.info(name, Some(version)))?;
    inference::ensure_plan(&info).map(|_| ()).map_err(|e| RegistryError::InvalidModel(format!("{e:#}")))
}

pub fn delete(name: &str, version: u32) -> Result<(), RegistryError> {
    state::with_mut(|s| {
        s.registry.delete(name, version)?;
        s.plans.remove(&(name.to_string(), version));
        Ok(())
    })
}
