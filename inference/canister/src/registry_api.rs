//! Registry endpoints' bodies: authorise, then delegate to the engine's registry.

use candid::Principal;
use inference_engine::types::*;

use crate::{auth, inference, state};

pub fn require_maintainer(caller: Principal) -> Result<(), RegistryError> {
    if auth::is_maintainer(caller) {
        Ok(())
    } else {
        Err(RegistryError::NotAuthorized { caller, needs: "maintainer".into() })
    }
}

pub fn start(caller: Principal, request: UploadRequest) -> Result<UploadTicket, RegistryError> {
    require_maintainer(caller)?;
    state::with_mut(|s| s.registry.start_upload(&mut s.layout, request, caller, ic_cdk::api::time()))
}

pub fn put(caller: Principal, chunk: UploadChunk) -> Result<UploadStatus, RegistryError> {
    require_maintainer(caller)?;
    state::with_mut(|s| s.registry.put_chunk(chunk.upload_id, chunk.index, chunk.bytes.into_vec(), chunk.sha256))
}

pub fn finish(caller: Principal, upload_id: u64) -> Result<ModelInfo, RegistryError> {
    require_maintainer(caller)?;
    state::with_mut(|s| s.registry.finish_upload(upload_id))
}

/// Activates after building the plan, so a version that cannot run never serves.
pub async fn activate(caller: Principal, name: &str, version: u32) -> Result<(), RegistryError> {
    require_maintainer(caller)?;
    let info = state::with(|s| s.registry.info(name, Some(version)))?;
    inference::plan_in_own_message(&info).await.map_err(RegistryError::InvalidModel)?;
    state::with_mut(|s| s.registry.activate(name, version))
}

/// Builds a version's plan into the heap cache; called by this canister only, so the build has a
/// message (and an instruction limit) of its own.
pub fn build_plan(caller: Principal, name: &str, version: u32) -> Result<(), String> {
    if caller != ic_cdk::api::canister_self() {
        return Err("build_plan is internal to this canister".into());
    }
    let info = state::with(|s| s.registry.info(name, Some(version))).map_err(|e| format!("{e:?}"))?;
    inference::ensure_plan(&info).map(|_| ()).map_err(|e| format!("{e:?}"))
}

/// A chunk as the upload endpoint receives it.
#[derive(candid::CandidType, candid::Deserialize, Clone, Debug)]
pub struct UploadChunk {
    pub upload_id: u64,
    pub index: u32,
    pub bytes: serde_bytes::ByteBuf,
    pub sha256: Vec<u8>,
}
