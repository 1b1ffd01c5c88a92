//! Registry endpoints' bodies: delegate to the engine's registry, with what only the canister
//! knows (the caller and whether it is an admin, the time, the settings, the plans in the heap).
//! The endpoints check the caller's role first; uploads are further the owner's (or an
//! admin's) alone.

use candid::Principal;
use inference_api::{
    ChangeAction, InputTensor, ModelCursor, ModelInfo, ModelPage, RegistryError, ServingVersion, UploadChunk,
    UploadRequest, UploadStatus, UploadSummary, UploadTicket, COPY_CHUNK_BYTES, MODEL_PAGE_SIZE,
};
use inference_client::{CdkTransport, InferenceClient};
use inference_engine::registry::{Actor, UploadPolicy};
use sha2::{Digest, Sha256};

use crate::inference::Awaiting;
use crate::{audit, auth, inference, state};

fn actor(caller: Principal) -> Actor {
    Actor { principal: caller, admin: auth::admin(caller).is_ok() }
}

pub fn start(caller: Principal, request: UploadRequest) -> Result<UploadTicket, RegistryError> {
    state::with_mut(|s| {
        let policy = UploadPolicy::from(s.config.get());
        s.registry.start_upload(&mut s.layout, request, caller, ic_cdk::api::time(), policy)
    })
}

pub fn put(caller: Principal, chunk: UploadChunk) -> Result<UploadStatus, RegistryError> {
    let actor = actor(caller);
    state::with_mut(|s| s.registry.put_chunk(chunk.upload_id, chunk.index, chunk.bytes.into_vec(), chunk.sha256, actor))
}

pub fn finish(caller: Principal, upload_id: u64) -> Result<ModelInfo, RegistryError> {
    // Finishing a finished upload again answers its version: that is no new change to log.
    let in_progress = state::with(|s| s.registry.upload_status(upload_id, actor(caller)).is_ok());
    let info = state::with_mut(|s| s.registry.finish_upload(upload_id, actor(caller)))?;
    if in_progress {
        audit::model_change(caller, ChangeAction::UploadFinished, &info.name, info.version);
    }
    Ok(info)
}

pub fn abort(caller: Principal, upload_id: u64) -> Result<(), RegistryError> {
    state::with_mut(|s| s.registry.abort_upload(upload_id, actor(caller)))
}

pub fn status(caller: Principal, upload_id: u64) -> Result<UploadStatus, RegistryError> {
    state::with(|s| s.registry.upload_status(upload_id, actor(caller)))
}

pub fn uploads(caller: Principal) -> Vec<UploadSummary> {
    state::with(|s| s.registry.uploads(actor(caller)))
}

/// Chunk `index` of a version's file, in chunks of [`COPY_CHUNK_BYTES`].
pub fn version_chunk(name: &str, version: u32, index: u32) -> Result<Vec<u8>, RegistryError> {
    state::with(|s| {
        let info = s.registry.info(name, Some(version))?;
        let chunk = COPY_CHUNK_BYTES as u64;
        let chunk_count = info.size.div_ceil(chunk) as u32;
        if index >= chunk_count {
            return Err(RegistryError::ChunkIndexOutOfRange { index, chunk_count });
        }
        Ok(s.registry.bytes_range(&info, index as u64 * chunk, chunk))
    })
}

/// Copies `name` v`version` from the inference canister `peer` as an upload of `caller`'s (see
/// [`copy_version`]); between the calls to the peer, `caller` must still be a maintainer.
pub async fn replicate(
    caller: Principal,
    peer: Principal,
    name: &str,
    version: u32,
) -> Result<ModelInfo, RegistryError> {
    copy_version(caller, || Ok(auth::maintainer(caller)?), peer, name, version).await
}

/// Copies `name` v`version` from the inference canister `peer` as an upload owned by `owner`:
/// its record first, then each chunk the upload misses, then the upload's finish, which checks
/// the whole file's sha256 against the peer's record. An unfinished copy of the same file by
/// the same owner is resumed. `still_allowed` is asked again after every call to the peer (a
/// role revoked, or a pool changed, while the copy waited ends it).
pub async fn copy_version(
    owner: Principal,
    still_allowed: impl Fn() -> Result<(), RegistryError>,
    peer: Principal,
    name: &str,
    version: u32,
) -> Result<ModelInfo, RegistryError> {
    let failed = |message: String| RegistryError::PeerFailed { peer, message };
    let client = InferenceClient::new(CdkTransport { canister: peer });
    let source = {
        let _awaiting = Awaiting::begin();
        client.model_info(name, Some(version)).await
    };
    let source = source.map_err(|e| failed(e.to_string()))?.map_err(|e| failed(e.to_string()))?;
    still_allowed()?;
    let same_file = |u: &UploadSummary| {
        u.name == source.name && u.sha256 == source.sha256 && u.size == source.size && u.chunk_size == COPY_CHUNK_BYTES
    };
    let upload_id = match uploads(owner).into_iter().find(same_file) {
        Some(unfinished) => unfinished.upload_id,
        None => {
            let request = UploadRequest {
                name: source.name.clone(),
                size: source.size,
                sha256: source.sha256.clone(),
                chunk_size: COPY_CHUNK_BYTES,
                description: source.description.clone(),
                labels: source.labels.clone(),
                inputs: Some(source.inputs.clone()),
                text: source.text.clone(),
            };
            start(owner, request)?.upload_id
        }
    };
    for range in status(owner, upload_id)?.missing {
        for index in range.start..range.end {
            let bytes = {
                let _awaiting = Awaiting::begin();
                client.version_chunk(name, version, index).await
            };
            let bytes = bytes.map_err(|e| failed(e.to_string()))?.map_err(|e| failed(e.to_string()))?;
            still_allowed()?;
            let sha256 = Sha256::digest(&bytes).to_vec();
            put(owner, UploadChunk { upload_id, index, bytes, sha256 })?;
        }
    }
    finish(owner, upload_id)
}

/// The versions that serve `name` here: the active one and the enabled ones.
pub fn serving_versions(name: &str) -> Result<Vec<ServingVersion>, RegistryError> {
    state::with(|s| {
        let active = s.registry.active_version(name);
        let enabled = s.registry.enabled_versions(name);
        if active.is_none() && enabled.is_empty() {
            s.registry.info(name, None)?;
        }
        let mut versions: Vec<u32> = active.into_iter().chain(enabled).collect();
        versions.sort_unstable();
        versions.dedup();
        versions
            .into_iter()
            .map(|version| {
                let info = s.registry.info(name, Some(version))?;
                Ok(ServingVersion { version, sha256: info.sha256, active: active == Some(version) })
            })
            .collect()
    })
}

pub fn page(after: Option<ModelCursor>) -> ModelPage {
    state::with(|s| s.registry.page(after.as_ref(), MODEL_PAGE_SIZE))
}

/// Builds the version's plan (so a version that cannot run never serves), charging `caller`,
/// then, if `still_allowed` after that wait, applies `change`.
pub async fn after_plan_built(
    caller: Principal,
    still_allowed: impl Fn() -> Result<(), RegistryError>,
    name: &str,
    version: u32,
    change: impl FnOnce(&mut state::State) -> Result<(), RegistryError>,
) -> Result<(), RegistryError> {
    let info = state::with(|s| s.registry.info(name, Some(version)))?;
    inference::build_in_own_message(&info, None, caller).await.map_err(|failure| failure.error)?;
    still_allowed()?;
    state::with_mut(change)
}

/// Activates after building the plan, so a version that cannot run never serves.
pub async fn activate(caller: Principal, name: &str, version: u32) -> Result<(), RegistryError> {
    let maintainer = || Ok(auth::maintainer(caller)?);
    after_plan_built(caller, maintainer, name, version, |s| s.registry.activate(name, version)).await?;
    audit::model_change(caller, ChangeAction::Activated, name, version);
    Ok(())
}

/// Lets a version serve beside the active one (after building its plan), or stops it.
pub async fn enable(caller: Principal, name: &str, version: u32, enabled: bool) -> Result<(), RegistryError> {
    if enabled {
        let maintainer = || Ok(auth::maintainer(caller)?);
        after_plan_built(caller, maintainer, name, version, |s| s.registry.set_enabled(name, version, true)).await?;
    } else {
        state::with_mut(|s| s.registry.set_enabled(name, version, false))?;
    }
    let action = if enabled { ChangeAction::VersionEnabled } else { ChangeAction::VersionDisabled };
    audit::model_change(caller, action, name, version);
    Ok(())
}

/// Builds a version's plan into the heap cache (in a message of its own, called by this
/// canister, so the build has the whole instruction limit; see [`inference::build_plan`]), and
/// answers the instructions it took, for the quota of the call that needed it.
pub fn build_plan(
    name: &str,
    version: u32,
    shapes: Option<Vec<Vec<u64>>>,
    values: Option<Vec<InputTensor>>,
) -> inference::Built {
    let outcome = state::with(|s| s.registry.info(name, Some(version)))
        .and_then(|info| inference::build_plan(&info, shapes, values).map_err(RegistryError::InvalidModel));
    inference::Built { outcome, instructions: ic_cdk::api::performance_counter(0) }
}

pub fn delete(caller: Principal, name: &str, version: u32) -> Result<(), RegistryError> {
    let info = state::with_mut(|s| {
        let info = s.registry.info(name, Some(version))?;
        s.registry.delete(name, version)?;
        s.plans.remove(name, version);
        Ok::<_, RegistryError>(info)
    })?;
    audit::change(caller, ChangeAction::VersionDeleted, Some(&inference::model_ref(&info)), None);
    Ok(())
}
