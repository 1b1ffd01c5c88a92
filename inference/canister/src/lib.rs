//! The inference canister: endpoints only. Each checks its caller with one rule of [`auth`], then
//! delegates to a module of this crate that adapts `inference-engine` to the IC. The types are
//! `inference-api`'s; `inference-client` calls these endpoints by the same names. Every endpoint
//! that takes data decodes it through [`args`], within a size limit and a decoding quota. The
//! README's "Who may call what" table lists each endpoint's rule.

mod api;
mod args;
mod audit;
mod auth;
mod certified;
mod inference;
mod jobs;
pub mod lifecycle;
mod plans;
mod pool;
mod quota;
mod registry_api;
mod state;
mod text;

// getrandom's custom backend (tract's `rand` links getrandom; nothing here calls it).
#[cfg(target_arch = "wasm32")]
use canister_entropy as _;

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

#[update(decode_with = "args::upload_request")]
fn upload_start(request: UploadRequest) -> Result<UploadTicket, RegistryError> {
    let caller = msg_caller();
    auth::maintainer(caller)?;
    registry_api::start(caller, request)
}

/// Stores one chunk of the caller's own upload.
#[update(decode_with = "args::chunk")]
fn upload_chunk(chunk: UploadChunk) -> Result<UploadStatus, RegistryError> {
    let caller = msg_caller();
    auth::maintainer(caller)?;
    registry_api::put(caller, chunk)
}

/// Verifies the whole sha256, inspects the model and records it as a new version (the
/// upload's owner or an admin). Finishing a finished upload again returns the same version.
#[update(decode_with = "args::small")]
fn upload_finish(upload_id: u64) -> Result<ModelInfo, RegistryError> {
    let caller = msg_caller();
    auth::maintainer(caller)?;
    registry_api::finish(caller, upload_id)
}

/// Abandons an upload (its owner or an admin).
#[update(decode_with = "args::small")]
fn upload_abort(upload_id: u64) -> Result<(), RegistryError> {
    let caller = msg_caller();
    auth::maintainer(caller)?;
    registry_api::abort(caller, upload_id)
}

/// Which chunks are still missing, for resuming (the upload's owner or an admin).
#[query(decode_with = "args::small")]
fn upload_status(upload_id: u64) -> Result<UploadStatus, RegistryError> {
    let caller = msg_caller();
    auth::maintainer(caller)?;
    registry_api::status(caller, upload_id)
}

/// The caller's unfinished uploads (every one for an admin; maintainers), without their missing
/// chunks: `upload_status` has those.
#[query]
fn uploads() -> Result<Vec<UploadSummary>, RegistryError> {
    let caller = msg_caller();
    auth::maintainer(caller)?;
    Ok(registry_api::uploads(caller))
}

/// Builds the version's plan (so a model that cannot run never serves), then switches to it.
#[update(decode_with = "args::small_args")]
async fn activate(name: String, version: u32) -> Result<(), RegistryError> {
    let caller = msg_caller();
    auth::maintainer(caller)?;
    registry_api::activate(caller, &name, version).await
}

/// Lets a version other than the active one serve callers who name it (after building its
/// plan, so it can), or stops it serving (maintainers).
#[update(decode_with = "args::small_args")]
async fn enable_version(name: String, version: u32, enabled: bool) -> Result<(), RegistryError> {
    let caller = msg_caller();
    auth::maintainer(caller)?;
    registry_api::enable(caller, &name, version, enabled).await
}

/// Builds a plan in a message of its own (this canister only).
#[update(hidden = true, decode_with = "args::plan_args")]
fn build_plan(
    name: String,
    version: u32,
    shapes: Option<Vec<Vec<u64>>>,
    values: Option<Vec<InputTensor>>,
) -> inference::Built {
    if let Err(refused) = auth::this_canister(msg_caller()) {
        return inference::Built { outcome: Err(refused.into()), instructions: 0 };
    }
    registry_api::build_plan(&name, version, shapes, values)
}

/// Returns to the previously active version.
#[update(decode_with = "args::small")]
fn rollback(name: String) -> Result<u32, RegistryError> {
    let caller = msg_caller();
    auth::maintainer(caller)?;
    let version = state::with_mut(|s| s.registry.rollback(&name))?;
    audit::model_change(caller, ChangeAction::RolledBack, &name, version);
    Ok(version)
}

#[update(decode_with = "args::small_args")]
fn delete_version(name: String, version: u32) -> Result<(), RegistryError> {
    let caller = msg_caller();
    auth::maintainer(caller)?;
    registry_api::delete(caller, &name, version)
}

/// Model versions in name and version order, a page at a time: pass the last page's `next`
/// to continue (maintainers and allowed callers).
#[query(decode_with = "args::small")]
fn list_models(after: Option<ModelCursor>) -> Result<ModelPage, RegistryError> {
    auth::reader(msg_caller())?;
    Ok(registry_api::page(after))
}

/// A version's record; the active version when `version` is absent (maintainers and allowed
/// callers).
#[query(decode_with = "args::small_args")]
fn model_info(name: String, version: Option<u32>) -> Result<ModelInfo, RegistryError> {
    auth::reader(msg_caller())?;
    state::with(|s| s.registry.info(&name, version))
}

/// Chunk `index` of a version's file, in chunks of `COPY_CHUNK_BYTES` (maintainers and the
/// pool's members: members copy versions from each other with it).
#[query(decode_with = "args::small_args")]
fn version_chunk(name: String, version: u32, index: u32) -> Result<serde_bytes::ByteBuf, RegistryError> {
    auth::copier(msg_caller())?;
    registry_api::version_chunk(&name, version, index).map(serde_bytes::ByteBuf::from)
}

/// Copies a version from the inference canister `peer` into this one (maintainers; this canister
/// must be one of `peer`'s maintainers or pool members). The copy is an upload of the caller's: its sha256 is
/// checked at the end against the peer's record, and running it again resumes it.
#[update(decode_with = "args::small_args")]
async fn replicate(peer: Principal, name: String, version: u32) -> Result<ModelInfo, RegistryError> {
    let caller = msg_caller();
    auth::maintainer(caller)?;
    registry_api::replicate(caller, peer, &name, version).await
}

/// The version that serves `name` when a call names none (maintainers, allowed callers and
/// the pool's members).
#[query(decode_with = "args::small")]
fn active_version(name: String) -> Result<Option<u32>, RegistryError> {
    auth::reader(msg_caller())?;
    Ok(state::with(|s| s.registry.active_version(&name)))
}

/// Every version that serves `name` (the active one and the enabled ones) with its sha256:
/// what a pool's router pins to and a member catches up on (maintainers, allowed callers and
/// the pool's members).
#[query(decode_with = "args::small")]
fn serving_versions(name: String) -> Result<Vec<ServingVersion>, RegistryError> {
    auth::reader(msg_caller())?;
    registry_api::serving_versions(&name)
}

// ----- the pool (admins set it; its members copy from each other) -----

/// Makes `members` this canister's pool: they become its peers, which may read its registry
/// and copy its versions; then this canister catches up with them in the background (admins).
#[update(decode_with = "args::small")]
fn set_pool(members: Vec<Principal>) -> Result<(), RoleError> {
    let caller = msg_caller();
    auth::admin(caller)?;
    pool::set(members)?;
    audit::change(caller, ChangeAction::PoolSet, None, None);
    Ok(())
}

/// The pool's members (this canister among them) and how its last catch-up went (maintainers,
/// allowed callers and the pool's members).
#[query]
fn pool() -> Result<PoolView, RegistryError> {
    auth::reader(msg_caller())?;
    Ok(pool::view())
}

/// Copies and enables here every version that serves on a peer, and activates the one active
/// on most of them; answers what it did (maintainers; `CatchUpRunning` while one runs).
#[update]
async fn catch_up() -> Result<CatchUp, RegistryError> {
    auth::maintainer(msg_caller())?;
    pool::catch_up().await
}

/// The plans held in the heap and their estimated size (maintainers).
#[query]
fn plan_cache() -> Result<PlanCacheReport, RegistryError> {
    auth::maintainer(msg_caller())?;
    Ok(state::with(|s| {
        let (plans, estimated_bytes) = s.plans.usage();
        PlanCacheReport { plans: plans as u32, estimated_bytes, budget_bytes: s.config.get().plan_cache_bytes }
    }))
}

// ----- roles and settings (admins = controllers) -----

fn set_role(list: List, who: Principal, granted: bool) -> Result<(), RoleError> {
    let caller = msg_caller();
    auth::admin(caller)?;
    state::with_mut(|s| {
        if granted {
            s.access.grant(list, who)
        } else {
            s.access.revoke(list, who);
            Ok(())
        }
    })?;
    let action = if granted { ChangeAction::RoleGranted } else { ChangeAction::RoleRevoked };
    audit::change(caller, action, None, Some((who, auth::role_name(list))));
    Ok(())
}

#[update(decode_with = "args::small")]
fn grant_maintainer(who: Principal) -> Result<(), RoleError> {
    set_role(List::Maintainers, who, true)
}

#[update(decode_with = "args::small")]
fn revoke_maintainer(who: Principal) -> Result<(), RoleError> {
    set_role(List::Maintainers, who, false)
}

/// Allows a principal (normally an agency canister) to run inference.
#[update(decode_with = "args::small")]
fn allow_caller(who: Principal) -> Result<(), RoleError> {
    set_role(List::Callers, who, true)
}

#[update(decode_with = "args::small")]
fn disallow_caller(who: Principal) -> Result<(), RoleError> {
    set_role(List::Callers, who, false)
}

/// Lets a text front canister tokenize for allowed callers and run the token endpoints on their
/// behalf (admins).
#[update(decode_with = "args::small")]
fn allow_front(who: Principal) -> Result<(), RoleError> {
    set_role(List::Fronts, who, true)
}

#[update(decode_with = "args::small")]
fn disallow_front(who: Principal) -> Result<(), RoleError> {
    set_role(List::Fronts, who, false)
}

/// Who holds which role (maintainers).
#[query]
fn roles() -> Result<Roles, RoleError> {
    auth::maintainer(msg_caller())?;
    Ok(state::with(|s| Roles {
        maintainers: s.access.members(List::Maintainers),
        callers: s.access.members(List::Callers),
        peers: s.access.members(List::Peers),
        fronts: s.access.members(List::Fronts),
        auditors: s.access.members(List::Auditors),
    }))
}

/// The settings (maintainers).
#[query]
fn config() -> Result<Config, ConfigError> {
    auth::maintainer(msg_caller())?;
    Ok(state::with(|s| s.config()))
}

#[update(decode_with = "args::small")]
fn set_config(config: Config) -> Result<(), ConfigError> {
    let caller = msg_caller();
    auth::admin(caller)?;
    config.validate()?;
    state::with_mut(|s| s.config.set(config));
    audit::change(caller, ChangeAction::ConfigSet, None, None);
    Ok(())
}

// ----- inference (allowed callers) -----

/// Classifies one input with a model; works for any model size by continuing across messages.
/// The version must serve (the active one when absent, or one a maintainer enabled).
#[update(decode_with = "args::input")]
async fn classify(request: ClassifyRequest) -> Result<Classification, InferenceError> {
    let caller = msg_caller();
    auth::inference_caller(caller)?;
    let input = std::slice::from_ref(&request.input);
    let pending = audit::Pending::begin(caller, None, "classify", &request.model, request.version, || {
        audit::inputs_sha256(input)
    })?;
    let answer = async {
        let info = inference::serving(&request.model, request.version)?;
        let outcome = inference::run(caller, auth::inference_caller, info, input, false).await?;
        let output_sha256 = outcome.output_sha256()?;
        Ok((inference::classification(outcome, request.top_k)?, output_sha256))
    };
    pending.close(answer.await)
}

/// `classify` as a query, for models whose cost fits one query; `TooExpensiveForQuery` otherwise.
/// Not logged, so without a receipt: a query's state changes are discarded.
#[query(decode_with = "args::input")]
async fn classify_query(request: ClassifyRequest) -> Result<Classification, InferenceError> {
    let caller = msg_caller();
    auth::inference_caller(caller)?;
    let info = inference::serving(&request.model, request.version)?;
    let input = std::slice::from_ref(&request.input);
    let outcome = inference::run(caller, auth::inference_caller, info, input, true).await?;
    inference::classification(outcome, request.top_k)
}

/// Classifies a batch of tokenized texts with a text model: labels and scores per text, in
/// request order (allowed callers; a text front on an allowed caller's behalf).
#[update(decode_with = "args::input")]
async fn classify_tokens(request: TokensRequest) -> Result<TextClassification, InferenceError> {
    text::classify_tokens(msg_caller(), request).await
}

/// One vector per tokenized text from a text embedding model, pooled as the bundle declares
/// (allowed callers; a text front on an allowed caller's behalf).
#[update(decode_with = "args::input")]
async fn embed_tokens(request: TokensRequest) -> Result<TextEmbeddings, InferenceError> {
    text::embed_tokens(msg_caller(), request).await
}

/// Which version a text front tokenizes `classify_text` (`classify`) or `embed_text` texts for,
/// on `on_behalf_of`'s behalf, with its bundle and vocabulary (text fronts; `on_behalf_of` must
/// be an allowed caller with quota left).
#[update(decode_with = "args::small_args")]
fn text_model(
    name: String,
    version: Option<u32>,
    on_behalf_of: Principal,
    classify: bool,
) -> Result<TextModel, InferenceError> {
    text::text_model(msg_caller(), &name, version, on_behalf_of, classify)
}

/// Bytes `offset..` of a serving text version's tokenizer, up to `TOKENIZER_CHUNK_BYTES` (text
/// fronts, maintainers and pool members).
#[query(decode_with = "args::small_args")]
fn tokenizer_chunk(name: String, version: u32, offset: u64) -> Result<serde_bytes::ByteBuf, InferenceError> {
    auth::tokenizer_reader(msg_caller())?;
    text::tokenizer_chunk(&name, version, offset).map(serde_bytes::ByteBuf::from)
}

/// Runs a model and returns its raw output tensors.
#[update(decode_with = "args::input_args")]
async fn infer(model: String, version: Option<u32>, inputs: Vec<InputTensor>) -> Result<Inference, InferenceError> {
    let caller = msg_caller();
    auth::inference_caller(caller)?;
    let pending = audit::Pending::begin(caller, None, "infer", &model, version, || audit::inputs_sha256(&inputs))?;
    let answer = async {
        let info = inference::serving(&model, version)?;
        let outcome = inference::run(caller, auth::inference_caller, info, &inputs, false).await?;
        let answer = inference::inference(outcome)?;
        let output_sha256 = audit::outputs_sha256(&answer.outputs);
        Ok((answer, output_sha256))
    };
    pending.close(answer.await)
}

/// Runs a model like `infer` and reports the instructions each node of its plan took (for
/// maintainers: which operators a model's cost goes to, before or after activating it). Takes
/// a job slot like any inference.
#[update(decode_with = "args::input_args")]
async fn profile(model: String, version: Option<u32>, inputs: Vec<InputTensor>) -> Result<Profile, InferenceError> {
    let caller = msg_caller();
    auth::maintainer(caller)?;
    let pending = audit::Pending::begin(caller, None, "profile", &model, version, || audit::inputs_sha256(&inputs))?;
    let answer = async {
        let info = state::with(|s| s.registry.info(&model, version))?;
        let prepared = inference::prepare(caller, auth::maintainer, info, &inputs, false).await?;
        let outcome = prepared.profiled().run().await?;
        let output_sha256 = outcome.output_sha256()?;
        Ok((inference::profile(outcome), output_sha256))
    };
    pending.close(answer.await)
}

/// Starts a job and returns its id at once; poll `status`, then fetch `result`. Refusals that
/// need no computation (access, model, inputs, capacity) come back here.
#[update(decode_with = "args::input")]
async fn submit(request: JobRequest) -> Result<u64, JobError> {
    let caller = msg_caller();
    auth::inference_caller(caller)?;
    jobs::submit(caller, request).await
}

/// A job's progress or outcome, for the principal that submitted it.
#[query(decode_with = "args::small")]
fn status(job: u64) -> Result<JobStatus, JobError> {
    jobs::status(msg_caller(), job)
}

/// A finished job's result (kept until it expires, so a lost reply can be fetched again).
#[query(decode_with = "args::small")]
fn result(job: u64) -> Result<JobResult, JobError> {
    jobs::result(msg_caller(), job)
}

/// Stops a running job, or discards a finished one's result (its submitter).
#[update(decode_with = "args::small")]
fn cancel(job: u64) -> Result<(), JobError> {
    jobs::cancel(msg_caller(), job)
}

// ----- the audit log and the certified registry -----

/// Entries of the audit log, oldest first, filtered and paged (auditors and admins).
#[query(decode_with = "args::small")]
fn audit_log(query: AuditQuery) -> Result<AuditPage, AuditError> {
    auth::auditor(msg_caller())?;
    Ok(state::with(|s| s.audit.page(&query, ic_cdk::api::time())))
}

/// The log's head, its retention and what logging costs; certified in a query (anyone: the
/// head reveals no entry, and lets anyone check an exported log against the subnet).
#[query]
fn audit_head() -> AuditHead {
    audit::head(certified::head_certified())
}

/// Every model's active version and sha256, certified in a query (anyone).
#[query]
fn certified_models() -> CertifiedModels {
    CertifiedModels { models: certified::active_models(), certified: certified::models_certified() }
}

/// One model's active version and sha256 (absent: no such model is active), certified in a
/// query with a witness of just that leaf or of its absence (anyone).
#[query(decode_with = "args::small")]
fn certified_model(name: String) -> CertifiedModel {
    let model = certified::active_models().into_iter().find(|m| m.name == name);
    CertifiedModel { model, certified: certified::model_certified(&name) }
}

/// Lets a principal read the audit log (admins).
#[update(decode_with = "args::small")]
fn grant_auditor(who: Principal) -> Result<(), RoleError> {
    set_role(List::Auditors, who, true)
}

#[update(decode_with = "args::small")]
fn revoke_auditor(who: Principal) -> Result<(), RoleError> {
    set_role(List::Auditors, who, false)
}

/// How long audit entries are kept; older ones are dropped at once, whole, from the front
/// (admins).
#[update(decode_with = "args::small")]
fn set_audit_retention(retention: AuditRetention) -> Result<(), AuditError> {
    let caller = msg_caller();
    auth::admin(caller)?;
    audit::set_retention(caller, retention)
}

/// The continuation point of long inferences: awaiting a call to it ends the current message.
/// Only this canister's own calls reach it (ingress is filtered; anyone else's call does
/// nothing).
#[update(hidden = true)]
fn yield_message() {}

/// Ingress filter ([`auth::accepts_ingress`]); the methods check again (this runs on one node).
#[ic_cdk::inspect_message]
fn inspect_message() {
    // The size alone: copying a 2 MiB chunk only to measure it would waste the filter's budget.
    let arg_bytes = ic0::msg_arg_data_size();
    if auth::accepts_ingress(&ic_cdk::api::msg_method_name(), msg_caller(), arg_bytes) {
        ic_cdk::api::accept_message();
    }
}

ic_cdk::export_candid!();
