//! Every endpoint of the inference canister, once: its method name, mode, arguments and reply.
//! [`typed_endpoints!`](crate::typed_endpoints) makes of each line a [`calls`] constructor and an
//! [`InferenceClient`] method.

use inference_api::*;

use crate::InferenceClient;

crate::typed_endpoints! {
    InferenceClient;

    // ----- platform (anyone) -----
    /// Which tract kernels the canister computes with.
    Query platform_report() -> PlatformInfo;
    /// Checks every kernel against its reference and runs a fixed graph (maintainers).
    Update self_test() -> Result<SelfTestReport, SelfTestError>;

    // ----- model registry (maintainers) -----
    /// Starts an upload (or use [`crate::InferenceClient::uploads`] to resume one).
    Update upload_start(request: &UploadRequest) -> Result<UploadTicket, RegistryError>;
    Update upload_chunk(chunk: &UploadChunk) -> Result<UploadStatus, RegistryError>;
    /// Verifies the whole sha256, inspects the model and records it as a new version.
    Update upload_finish(upload_id: u64) -> Result<ModelInfo, RegistryError>;
    Update upload_abort(upload_id: u64) -> Result<(), RegistryError>;
    /// Which chunks are still missing, for resuming.
    Query upload_status(upload_id: u64) -> Result<UploadStatus, RegistryError>;
    /// The caller's unfinished uploads (every one, for an admin).
    Query uploads() -> Result<Vec<UploadSummary>, RegistryError>;
    /// Builds the version's plan (so a model that cannot run never serves), then switches to it.
    Update activate(name: &str, version: u32) -> Result<(), RegistryError>;
    /// Lets a version besides the active one serve callers who name it (after building its
    /// plan), or stops it.
    Update enable_version(name: &str, version: u32, enabled: bool) -> Result<(), RegistryError>;
    /// Returns to the previously active version; answers the version now active.
    Update rollback(name: &str) -> Result<u32, RegistryError>;
    Update delete_version(name: &str, version: u32) -> Result<(), RegistryError>;
    /// A page of versions in name and version order; pass the last page's `next` to continue
    /// (maintainers and allowed callers, as the next two).
    Query list_models(after: Option<&ModelCursor>) -> Result<ModelPage, RegistryError>;
    /// A version's record; the active version when `version` is absent.
    Query model_info(name: &str, version: Option<u32>) -> Result<ModelInfo, RegistryError>;
    /// Chunk `index` of a version's file, in chunks of `COPY_CHUNK_BYTES` (maintainers: pool
    /// members copy versions from each other with it).
    Query version_chunk(name: &str, version: u32, index: u32) -> Result<serde_bytes::ByteBuf, RegistryError>;
    /// Copies `name` v`version` from the inference canister `peer` into this one, chunk by chunk,
    /// verifies its sha256 and records it as a version here (maintainers; this canister must be a
    /// maintainer of `peer`). Running it again resumes an interrupted copy.
    Update replicate(peer: candid::Principal, name: &str, version: u32) -> Result<ModelInfo, RegistryError>;
    Query active_version(name: &str) -> Result<Option<u32>, RegistryError>;
    /// Every version that serves `name`, with its sha256 (what a pool's router pins to).
    Query serving_versions(name: &str) -> Result<Vec<ServingVersion>, RegistryError>;
    /// The plans held in the heap against the configured budget (maintainers).
    Query plan_cache() -> Result<PlanCacheReport, RegistryError>;

    // ----- roles and settings (admins = controllers) -----
    Update grant_maintainer(who: candid::Principal) -> Result<(), RoleError>;
    Update revoke_maintainer(who: candid::Principal) -> Result<(), RoleError>;
    /// Allows a principal (normally an agency canister) to run inference.
    Update allow_caller(who: candid::Principal) -> Result<(), RoleError>;
    Update disallow_caller(who: candid::Principal) -> Result<(), RoleError>;
    /// Lets a text front canister run the token endpoints on allowed callers' behalf.
    Update allow_front(who: candid::Principal) -> Result<(), RoleError>;
    Update disallow_front(who: candid::Principal) -> Result<(), RoleError>;
    /// Who holds which role (maintainers, as `config`).
    Query roles() -> Result<Roles, RoleError>;
    Query config() -> Result<Config, ConfigError>;
    Update set_config(config: &Config) -> Result<(), ConfigError>;

    // ----- the pool -----
    /// Makes `members` the canister's pool (its peers may copy its versions), then it catches up
    /// with them in the background (admins).
    Update set_pool(members: &[candid::Principal]) -> Result<(), RoleError>;
    /// The pool's members and the last catch-up (maintainers, callers and members).
    Query pool() -> Result<PoolView, RegistryError>;
    /// Copies and enables what serves on the peers, activates what most have active (maintainers).
    Update catch_up() -> Result<CatchUp, RegistryError>;

    // ----- inference (allowed callers) -----
    /// Classifies one input; any model size, continuing across messages.
    Update classify(request: &ClassifyRequest) -> Result<Classification, InferenceError>;
    /// `classify` in one query, for models that fit a query's budget.
    Query classify_query(request: &ClassifyRequest) -> Result<Classification, InferenceError>;
    /// Classifies a batch of texts tokenized with the version's own tokenizer: labels and scores
    /// per text (agencies send text to the text front, [`crate::text::TextClient`]).
    Update classify_tokens(request: &TokensRequest) -> Result<TextClassification, InferenceError>;
    /// One pooled vector per tokenized text from a text embedding model.
    Update embed_tokens(request: &TokensRequest) -> Result<TextEmbeddings, InferenceError>;
    /// Which version a text front tokenizes for, on an allowed caller's behalf (text fronts).
    Update text_model(name: &str, version: Option<u32>, on_behalf_of: candid::Principal, classify: bool) -> Result<TextModel, InferenceError>;
    /// Bytes `offset..` of a serving text version's tokenizer, up to `TOKENIZER_CHUNK_BYTES`
    /// (text fronts, maintainers, pool members).
    Query tokenizer_chunk(name: &str, version: u32, offset: u64) -> Result<serde_bytes::ByteBuf, InferenceError>;
    /// Runs a model and returns its raw output tensors.
    Update infer(model: &str, version: Option<u32>, inputs: &[InputTensor]) -> Result<Inference, InferenceError>;
    /// Instructions per node of the plan (maintainers).
    Update profile(model: &str, version: Option<u32>, inputs: &[InputTensor]) -> Result<Profile, InferenceError>;
    /// Starts a job and answers its id at once.
    Update submit(request: &JobRequest) -> Result<u64, JobError>;
    Query status(job: u64) -> Result<JobStatus, JobError>;
    Query result(job: u64) -> Result<JobResult, JobError>;
    /// Stops a running job, or discards a finished one's result.
    Update cancel(job: u64) -> Result<(), JobError>;

    // ----- the audit log and the certified registry -----
    /// Entries of the audit log, oldest first, filtered and paged (auditors and admins).
    Query audit_log(query: &AuditQuery) -> Result<AuditPage, AuditError>;
    /// The log's head, certified in a query (anyone; check it with [`crate::certified`]).
    Query audit_head() -> AuditHead;
    /// Every model's active version and sha256, certified in a query (anyone).
    Query certified_models() -> CertifiedModels;
    /// One model's active version, or the proof that none is active under `name` (anyone).
    Query certified_model(name: &str) -> CertifiedModel;
    Update grant_auditor(who: candid::Principal) -> Result<(), RoleError>;
    Update revoke_auditor(who: candid::Principal) -> Result<(), RoleError>;
    /// How long entries are kept (admins).
    Update set_audit_retention(retention: &AuditRetention) -> Result<(), AuditError>;
}
