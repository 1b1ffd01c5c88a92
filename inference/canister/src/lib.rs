//! The inference canister: endpoints only. Each checks its caller with one rule of [`auth`], then
//! delegates to a module of this crate that adapts `inference-engine` to the IC. The types are
//! `inference-api`'s; `inference-client` calls these endpoints by the same names.

mod api;
mod auth;
mod inference;
mod jobs;
pub mod lifecycle;
mod registry_api;
mod state;

use candid::Principal;
use ic_cdk::api::msg_caller;
use ic_cdk::{query, update};
use inference_api::*;
use inference_engine::access::List;

// ----- platform -----

/// Which tract kernels the canister computes with (anyone).
#[query]
fn platform_report() -> PlatformInfo {
    api::platform_info()
}

/// Checks every kernel against its reference and runs the engine's fixed graph, reporting what
/// it cost (maintainers: it costs the canister's cycles).
#[update]
fn self_test() -> Result<SelfTestReport, SelfTestError> {
    auth::maintainer(msg_caller())?;
    api::self_test_report()
}

// ----- model registry (maintainers) -----

#[update]
fn upload_start(request: UploadRequest) -> Result<UploadTicket, RegistryError> {
    let caller = msg_caller();
    auth::maintainer(caller)?;
    registry_api::start(caller, request)
}

#[update]
fn upload_chunk(chunk: UploadChunk) -> Result<UploadStatus, RegistryError> {
    auth::maintainer(msg_caller())?;
    registry_api::put(chunk)
}

/// Verifies the whole sha256, inspects the model and records it as a new version.
#[update]
fn upload_finish(upload_id: u64) -> Result<ModelInfo, RegistryError> {
    auth::maintainer(msg_caller())?;
    registry_api::finish(upload_id)
}

#[update]
fn upload_abort(upload_id: u64) -> Result<(), RegistryError> {
    auth::maintainer(msg_caller())?;
    state::with_mut(|s| s.registry.abort_upload(upload_id))
}

/// Which chunks are still missing, for resuming (anyone).
#[query]
fn upload_status(upload_id: u64) -> Result<UploadStatus, RegistryError> {
    state::with(|s| s.registry.upload_status(upload_id))
}

/// Unfinished uploads (anyone).
#[query]
fn uploads() -> Vec<UploadStatus> {
    state::with(|s| s.registry.uploads())
}

/// Builds the version's plan (so a model that cannot run never serves), then switches to it.
#[update]
async fn activate(name: String, version: u32) -> Result<(), RegistryError> {
    auth::maintainer(msg_caller())?;
    registry_api::activate(&name, version).await
}

/// Builds a plan in a message of its own (this canister only).
#[update(hidden = true)]
fn build_plan(name: String, version: u32) -> Result<(), RegistryError> {
    auth::this_canister(msg_caller())?;
    registry_api::build_plan(&name, version)
}

/// Returns to the previously active version.
#[update]
fn rollback(name: String) -> Result<u32, RegistryError> {
    auth::maintainer(msg_caller())?;
    state::with_mut(|s| s.registry.rollback(&name))
}

#[update]
fn delete_version(name: String, version: u32) -> Result<(), RegistryError> {
    auth::maintainer(msg_caller())?;
    registry_api::delete(&name, version)
}

/// Every version of every model (anyone).
#[query]
fn list_models() -> Vec<ModelInfo> {
    state::with(|s| s.registry.versions())
}

/// A version's record; the active version when `version` is absent (anyone).
#[query]
fn model_info(name: String, version: Option<u32>) -> Result<ModelInfo, RegistryError> {
    state::with(|s| s.registry.info(&name, version))
}

/// The version that serves `name` (anyone).
#[query]
fn active_version(name: String) -> Option<u32> {
    state::with(|s| s.registry.active_version(&name))
}

// ----- roles and settings (admins = controllers) -----

fn set_role(list: List, who: Principal, granted: bool) -> Result<(), RoleError> {
    auth::admin(msg_caller())?;
    state::with_mut(|s| {
        if granted {
            s.access.grant(list, who)
        } else {
            s.access.revoke(list, who);
            Ok(())
        }
    })
}

#[update]
fn grant_maintainer(who: Principal) -> Result<(), RoleError> {
    set_role(List::Maintainers, who, true)
}

#[update]
fn revoke_maintainer(who: Principal) -> Result<(), RoleError> {
    set_role(List::Maintainers, who, false)
}

/// Allows a principal (normally an agency canister) to run inference.
#[update]
fn allow_caller(who: Principal) -> Result<(), RoleError> {
    set_role(List::Callers, who, true)
}

#[update]
fn disallow_caller(who: Principal) -> Result<(), RoleError> {
    set_role(List::Callers, who, false)
}

/// Who holds which role (anyone).
#[query]
fn roles() -> Roles {
    state::with(|s| Roles {
        maintainers: s.access.members(List::Maintainers),
        callers: s.access.members(List::Callers),
    })
}

/// The settings (anyone).
#[query]
fn config() -> Config {
    state::with(|s| s.config())
}

#[update]
fn set_config(config: Config) -> Result<(), ConfigError> {
    auth::admin(msg_caller())?;
    config.validate()?;
    state::with_mut(|s| s.config.set(config));
    Ok(())
}

// ----- inference (allowed callers) -----

/// Classifies one input with a model; works for any model size by continuing across messages.
#[update]
async fn classify(request: ClassifyRequest) -> Result<Classification, InferenceError> {
    auth::inference_caller(msg_caller())?;
    let outcome = inference::run(&request.model, request.version, std::slice::from_ref(&request.input), false).await?;
    inference::classification(outcome, request.top_k)
}

/// `classify` as a query, for models whose cost fits one query; `TooExpensiveForQuery` otherwise.
#[query]
async fn classify_query(request: ClassifyRequest) -> Result<Classification, InferenceError> {
    auth::inference_caller(msg_caller())?;
    let outcome = inference::run(&request.model, request.version, std::slice::from_ref(&request.input), true).await?;
    inference::classification(outcome, request.top_k)
}

/// Runs a model and returns its raw output tensors.
#[update]
async fn infer(model: String, version: Option<u32>, inputs: Vec<InputTensor>) -> Result<Inference, InferenceError> {
    auth::inference_caller(msg_caller())?;
    let outcome = inference::run(&model, version, &inputs, false).await?;
    inference::inference(outcome)
}

/// Runs a model like `infer` and reports the instructions each node of its plan took (for
/// maintainers: which operators a model's cost goes to). Takes a job slot like any inference.
#[update]
async fn profile(model: String, version: Option<u32>, inputs: Vec<InputTensor>) -> Result<Profile, InferenceError> {
    auth::maintainer(msg_caller())?;
    let outcome = inference::prepare(&model, version, &inputs, false).await?.profiled().drive(|_| Ok(())).await?;
    Ok(inference::profile(outcome))
}

/// Starts a job and returns its id at once; poll `status`, then fetch `result`. Refusals that
/// need no computation (access, model, inputs, capacity) come back here.
#[update]
async fn submit(request: JobRequest) -> Result<u64, JobError> {
    let caller = msg_caller();
    auth::inference_caller(caller)?;
    jobs::submit(caller, request).await
}

/// A job's progress or outcome, for the principal that submitted it.
#[query]
fn status(job: u64) -> Result<JobStatus, JobError> {
    jobs::status(msg_caller(), job)
}

/// A finished job's result (kept until it expires, so a lost reply can be fetched again).
#[query]
fn result(job: u64) -> Result<JobResult, JobError> {
    jobs::result(msg_caller(), job)
}

/// Stops a running job, or discards a finished one's result (its submitter).
#[update]
fn cancel(job: u64) -> Result<(), JobError> {
    jobs::cancel(msg_caller(), job)
}

/// The continuation point of long inferences: awaiting a call to it ends the current message.
/// Only this canister's own calls reach it (ingress is filtered; anyone else's call does
/// nothing).
#[update(hidden = true)]
fn yield_message() {}

/// Ingress filter ([`auth::accepts_ingress`]); the methods check again (this runs on one node).
#[ic_cdk::inspect_message]
fn inspect_message() {
    if auth::accepts_ingress(&ic_cdk::api::msg_method_name(), msg_caller()) {
        ic_cdk::api::accept_message();
    }
}

ic_cdk::export_candid!();
