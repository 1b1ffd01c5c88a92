//! The inference canister: endpoints only. Each delegates to a module of this crate that adapts
//! `inference-engine` to the IC.

mod api;
mod auth;
mod inference;
mod jobs;
pub mod lifecycle;
mod registry_api;
mod state;

pub use api::*;
pub use inference::{ClassifyRequest, Classification, Inference, InferenceError, InputTensor, LabelScore, ModelRef, NodeProfile, OutputTensor, Profile, TensorData};
pub use inference_engine::types::*;
pub use lifecycle::InitArgs;
pub use inference_engine::platform::Kernels;
pub use jobs::{InferRequest, JobRequest, JobResult, JobStatus, MAX_RECORDS, RESULT_TTL_NS};
pub use registry_api::UploadChunk;
pub use state::Config;

/// Multiply-accumulates per inference at the given input shapes (for the maintainers' tool).
pub fn count_macs(bytes: &[u8], inputs: &[TensorSpec]) -> Result<u64, String> {
    inference_engine::model::macs(bytes, inputs).map_err(|e| format!("{e:?}"))
}

/// What the registry would record about an ONNX file, read locally (for the maintainers' tool).
pub fn inspect_model(bytes: &[u8]) -> Result<inference_engine::model::Inspection, String> {
    inference_engine::model::inspect(bytes)
}

use candid::Principal;
use ic_cdk::api::msg_caller;
use ic_cdk::{query, update};
use inference_engine::access::List;

// ----- platform -----

#[query]
fn platform_report() -> PlatformInfo {
    PlatformInfo::from(inference_engine::platform::PlatformReport::current())
}

/// Runs the engine's fixed self-test graph through tract and reports how much it cost.
#[update]
fn self_test() -> Result<SelfTestReport, EngineError> {
    api::self_test_report()
}

// ----- model registry (maintainers) -----

#[update]
fn upload_start(request: UploadRequest) -> Result<UploadTicket, RegistryError> {
    registry_api::start(msg_caller(), request)
}

#[update]
fn upload_chunk(chunk: UploadChunk) -> Result<UploadStatus, RegistryError> {
    registry_api::put(msg_caller(), chunk)
}

/// Verifies the whole sha256, inspects the model and records it as a new version.
#[update]
fn upload_finish(upload_id: u64) -> Result<ModelInfo, RegistryError> {
    registry_api::finish(msg_caller(), upload_id)
}

#[update]
fn upload_abort(upload_id: u64) -> Result<(), RegistryError> {
    registry_api::require_maintainer(msg_caller())?;
    state::with_mut(|s| s.registry.abort_upload(upload_id))
}

/// Which chunks are still missing, for resuming.
#[query]
fn upload_status(upload_id: u64) -> Result<UploadStatus, RegistryError> {
    state::with(|s| s.registry.upload_status(upload_id))
}

#[query]
fn uploads() -> Vec<UploadStatus> {
    state::with(|s| s.registry.uploads())
}

/// Builds the version's plan (so a model that cannot run never serves), then switches to it.
#[update]
async fn activate(name: String, version: u32) -> Result<(), RegistryError> {
    registry_api::activate(msg_caller(), &name, version).await
}

/// Builds a plan in a message of its own (called by this canister only).
#[update(hidden = true)]
fn build_plan(name: String, version: u32) -> Result<(), String> {
    registry_api::build_plan(msg_caller(), &name, version)
}

/// Returns to the previously active version.
#[update]
fn rollback(name: String) -> Result<u32, RegistryError> {
    registry_api::require_maintainer(msg_caller())?;
    state::with_mut(|s| s.registry.rollback(&name))
}

#[update]
fn delete_version(name: String, version: u32) -> Result<(), RegistryError> {
    registry_api::require_maintainer(msg_caller())?;
    state::with_mut(|s| {
        s.plans.remove(&(name.clone(), version));
        s.registry.delete(&name, version)
    })
}

#[query]
fn list_models() -> Vec<ModelInfo> {
    state::with(|s| s.registry.versions())
}

/// A version's record; the active version when `version` is absent.
#[query]
fn model_info(name: String, version: Option<u32>) -> Result<ModelInfo, RegistryError> {
    state::with(|s| s.registry.info(&name, version))
}

#[query]
fn active_version(name: String) -> Option<u32> {
    state::with(|s| s.registry.active_version(&name))
}

// ----- roles (admins = controllers) -----

fn require_admin() -> Result<(), RegistryError> {
    let caller = msg_caller();
    if auth::is_admin(caller) {
        Ok(())
    } else {
        Err(RegistryError::NotAuthorized { caller, needs: "admin (a controller)".into() })
    }
}

#[update]
fn grant_maintainer(who: Principal) -> Result<(), RegistryError> {
    require_admin()?;
    state::with_mut(|s| s.access.grant(List::Maintainers, who)).map_err(RegistryError::InvalidRequest)
}

#[update]
fn revoke_maintainer(who: Principal) -> Result<(), RegistryError> {
    require_admin()?;
    state::with_mut(|s| s.access.revoke(List::Maintainers, who));
    Ok(())
}

/// Allows a principal (normally an agency canister) to run inference.
#[update]
fn allow_caller(who: Principal) -> Result<(), RegistryError> {
    require_admin()?;
    state::with_mut(|s| s.access.grant(List::Callers, who)).map_err(RegistryError::InvalidRequest)
}

#[update]
fn disallow_caller(who: Principal) -> Result<(), RegistryError> {
    require_admin()?;
    state::with_mut(|s| s.access.revoke(List::Callers, who));
    Ok(())
}

#[query]
fn roles() -> Roles {
    state::with(|s| Roles { maintainers: s.access.members(List::Maintainers), callers: s.access.members(List::Callers) })
}

#[query]
fn config() -> Config {
    state::with(|s| s.config.get().clone())
}

#[update]
fn set_config(config: Config) -> Result<(), RegistryError> {
    require_admin()?;
    if config.update_budget == 0 || config.update_budget > 35_000_000_000 || config.query_budget > 4_500_000_000 {
        return Err(RegistryError::InvalidRequest("budgets must leave a margin under the IC limits (40 B update, 5 B query)".into()));
    }
    state::with_mut(|s| s.config.set(config));
    Ok(())
}

// ----- inference (allowed callers) -----

/// Classifies one input with a model; works for any model size by continuing across messages.
#[update]
async fn classify(request: ClassifyRequest) -> Result<Classification, InferenceError> {
    let outcome = inference::run(msg_caller(), &request.model, request.version, std::slice::from_ref(&request.input), false).await?;
    inference::classification(outcome, request.top_k)
}

/// `classify` as a query, for models whose cost fits one query; `TooExpensiveForQuery` otherwise.
#[query]
async fn classify_query(request: ClassifyRequest) -> Result<Classification, InferenceError> {
    let outcome = inference::run(msg_caller(), &request.model, request.version, std::slice::from_ref(&request.input), true).await?;
    inference::classification(outcome, request.top_k)
}

/// Runs a model and returns its raw output tensors.
#[update]
async fn infer(model: String, version: Option<u32>, inputs: Vec<InputTensor>) -> Result<Inference, InferenceError> {
    let outcome = inference::run(msg_caller(), &model, version, &inputs, false).await?;
    inference::inference(outcome)
}

/// Runs a model like `infer` and reports the instructions each node of its plan took (for
/// maintainers: which operators a model's cost goes to). Takes a job slot like any inference.
#[update]
async fn profile(model: String, version: Option<u32>, inputs: Vec<InputTensor>) -> Result<Profile, InferenceError> {
    let caller = msg_caller();
    if !auth::is_maintainer(caller) {
        return Err(InferenceError::NotAuthorized { caller });
    }
    let outcome = inference::prepare_authorized(&model, version, &inputs, false).await?.profiled().drive(|_| Ok(())).await?;
    Ok(inference::profile(outcome))
}

/// Starts a job and returns its id at once; poll `status`, then fetch `result`. Refusals that
/// need no computation (access, model, inputs, capacity) come back here.
#[update]
async fn submit(request: JobRequest) -> Result<u64, InferenceError> {
    jobs::submit(msg_caller(), request).await
}

/// A job's progress or outcome, for the principal that submitted it.
#[query]
fn status(job: u64) -> Result<JobStatus, InferenceError> {
    jobs::status(msg_caller(), job)
}

/// A finished job's result (kept until it expires, so a lost reply can be fetched again).
#[query]
fn result(job: u64) -> Result<JobResult, InferenceError> {
    jobs::result(msg_caller(), job)
}

/// Stops a running job, or discards a finished one's result.
#[update]
fn cancel(job: u64) -> Result<(), InferenceError> {
    jobs::cancel(msg_caller(), job)
}

/// The continuation point of long inferences: awaiting a call to it ends the current message.
#[update(hidden = true)]
fn yield_message() {}

/// Ingress filter: inference only from explicitly allowed principals, management only from
/// maintainers and admins. The methods check again (this runs on one node only).
#[ic_cdk::inspect_message]
fn inspect_message() {
    let caller = msg_caller();
    let method = ic_cdk::api::msg_method_name();
    let accept = match method.as_str() {
        "classify" | "infer" | "submit" | "cancel" => auth::may_infer(caller),
        "yield_message" | "build_plan" => false,
        "self_test" => true,
        _ => auth::is_maintainer(caller),
    };
    if accept {
        ic_cdk::api::accept_message();
    }
}

ic_cdk::export_candid!();
