//! The example agency canister's interface: its candid types and a typed client. The inference
//! canister's types (`InputTensor`, `ModelRef`, `InferenceError`) are `inference-api`'s own.
//!
//! Who may do what: controllers of the agency canister are its admins; admins grant the
//! [`AgencyRole::User`] role (may call `decide`) and the [`AgencyRole::Reader`] role (may read
//! decisions, as admins may). The anonymous principal holds no role.

use candid::{CandidType, Deserialize, Principal};
use inference_api::{InferenceError, InputTensor, ModelRef};
use thiserror::Error;

/// Document ids have 1 to this many bytes.
pub const MAX_DOCUMENT_ID_BYTES: usize = 128;
/// The most decisions one `decisions` page holds (a larger `limit` is capped to it).
pub const MAX_PAGE: u32 = 100;
/// The most decisions kept when [`Settings::max_decisions`] is not set.
pub const DEFAULT_MAX_DECISIONS: u64 = 100_000;
/// The largest [`Settings::max_decisions`] accepted.
pub const MAX_DECISIONS_LIMIT: u64 = 10_000_000;

/// Where this agency's inference runs, with which model, and how many decisions it keeps.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub inference_canister: Principal,
    pub model: String,
    /// The most decisions kept (1..=[`MAX_DECISIONS_LIMIT`]; [`DEFAULT_MAX_DECISIONS`] when
    /// absent). Decisions are audit records and are never evicted: when full, `decide` refuses
    /// with [`AgencyError::StorageFull`].
    pub max_decisions: Option<u64>,
    /// The text model `decide_texts` classifies with (a text bundle on the inference canister);
    /// absent: `decide_texts` is refused with `NotConfigured`.
    pub text_model: Option<String>,
    /// The text front canister that tokenizes for the inference canister (`decide_texts` sends
    /// it the texts); absent: `decide_texts` is refused with `NotConfigured`.
    pub text_canister: Option<Principal>,
}

impl Settings {
    /// The decision limit in force.
    pub fn decision_limit(&self) -> u64 {
        self.max_decisions.unwrap_or(DEFAULT_MAX_DECISIONS)
    }
}

/// Who holds the agency's roles (admins are the canister's controllers and are not listed).
/// Also the optional second install argument: the users and readers to start with.
#[derive(CandidType, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    /// May call `decide`.
    pub users: Vec<Principal>,
    /// May read decisions (`decision`, `decisions`).
    pub readers: Vec<Principal>,
}

/// A role of the agency canister.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgencyRole {
    /// A controller of the agency canister: manages roles and settings, reads decisions.
    Admin,
    /// Granted by an admin: submits documents to `decide`.
    User,
    /// Granted by an admin: reads decisions (auditors).
    Reader,
}

/// A citizen's document to decide on.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct Document {
    /// The agency's id of the document: 1 to [`MAX_DOCUMENT_ID_BYTES`] bytes, decided once.
    pub id: String,
    pub image: InputTensor,
}

/// A citizen's text (a petition, a complaint, a form's free text) to decide on.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TextDocument {
    /// The agency's id of the document: 1 to [`MAX_DOCUMENT_ID_BYTES`] bytes, decided once.
    pub id: String,
    pub text: String,
}

/// What was decided about a document, by which model, and at whose request.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct Decision {
    pub document_id: String,
    pub label: String,
    pub score: f32,
    pub model: ModelRef,
    pub instructions: u64,
    pub messages: u32,
    pub decided_at_ns: u64,
    /// The user that submitted the document (absent only in decisions recorded before the agency
    /// kept it).
    pub submitted_by: Option<Principal>,
    /// The inference canister's audit-log entry of the inference behind this decision (shared
    /// by a batch's decisions; absent in decisions recorded before receipts).
    pub receipt: Option<inference_api::Receipt>,
}

/// One page of decisions in document-id order.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct DecisionPage {
    pub decisions: Vec<Decision>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
    /// How many decisions are kept in all.
    pub total: u64,
}

/// Errors of the agency's endpoints. Every refusal leaves the agency's state unchanged.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Error)]
pub enum AgencyError {
    /// The caller lacks the role the endpoint requires.
    #[error("{caller} may not call this: it needs the {needs} role")]
    NotAuthorized { caller: Principal, needs: AgencyRole },
    /// The anonymous principal can hold no role.
    #[error("the anonymous principal cannot hold a role")]
    AnonymousPrincipal,
    /// A document id must have 1 to `max` bytes.
    #[error("a document id has 1 to {max} bytes; this one has {length}")]
    InvalidDocumentId { length: u64, max: u64 },
    /// A setting outside its range (`set_settings`).
    #[error("{field} = {value} is outside {min}..={max}")]
    OutOfRange { field: String, value: u64, min: u64, max: u64 },
    /// Another call is deciding this document right now; ask for its decision later.
    #[error("document \"{document_id}\" is being decided by another call")]
    InProgress { document_id: String },
    /// Decisions are immutable. The decision is included for its submitter, readers and admins.
    #[error("document \"{document_id}\" was already decided")]
    AlreadyDecided { document_id: String, decision: Option<Box<Decision>> },
    /// All `limit` decision records are taken (counting decisions in progress). Decisions are
    /// audit records and are never evicted: an admin raises the limit with `set_settings`.
    #[error("all {limit} decision records are taken")]
    StorageFull { limit: u64 },
    /// The inference canister's typed refusal, as it gave it.
    #[error("the inference canister refused: {0}")]
    Inference(InferenceError),
    /// The call to the inference canister failed (rejected, or its reply did not decode).
    #[error("calling the inference canister failed: {0}")]
    CallFailed(String),
    /// The model answered no label.
    #[error("the model answered no label")]
    NoLabel,
    /// The endpoint needs a setting an admin has not made (`set_settings`).
    #[error("this agency has no {setting} set")]
    NotConfigured { setting: String },
    /// One call names a document id twice.
    #[error("document \"{document_id}\" appears twice in the batch")]
    DuplicateDocument { document_id: String },
}

impl std::fmt::Display for AgencyRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AgencyRole::Admin => "admin (controller)",
            AgencyRole::User => "agency user",
            AgencyRole::Reader => "decision reader",
        })
    }
}

#[cfg(feature = "storable")]
inference_api::candid_storable!(Decision);
#[cfg(feature = "storable")]
inference_api::candid_storable!(Settings);

/// The agency canister, reached through `T`.
pub struct AgencyClient<T> {
    transport: T,
}

impl<T: inference_client::Transport> AgencyClient<T> {
    pub fn new(transport: T) -> Self {
        AgencyClient { transport }
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }
}

inference_client::typed_endpoints! {
    AgencyClient;

    // ----- users -----
    /// Classifies a citizen's document and records the decision (decisions are immutable; the
    /// first call for an id wins).
    Update decide(document: &Document) -> Result<Decision, AgencyError>;
    /// Classifies a batch of citizens' texts with the agency's text model in one call to the
    /// text front canister and records a decision for each, in request order (all or none).
    Update decide_texts(documents: &[TextDocument]) -> Result<Vec<Decision>, AgencyError>;

    // ----- readers and admins -----
    /// One document's decision, if it was decided.
    Query decision(document_id: &str) -> Result<Option<Decision>, AgencyError>;
    /// Decisions in document-id order after `after`, at most `limit` (capped to [`MAX_PAGE`]; 0
    /// asks for a full page).
    Query decisions(after: Option<&str>, limit: u32) -> Result<DecisionPage, AgencyError>;
    Query settings() -> Result<Settings, AgencyError>;

    // ----- admins (controllers) -----
    /// Grants (`allowed = true`) or revokes the user role: who may call `decide`.
    Update set_user(who: Principal, allowed: bool) -> Result<(), AgencyError>;
    /// Grants (`allowed = true`) or revokes the reader role: who may read decisions.
    Update set_reader(who: Principal, allowed: bool) -> Result<(), AgencyError>;
    Query roles() -> Result<Roles, AgencyError>;
    /// Replaces the settings (the inference canister, the model, the decision limit).
    Update set_settings(settings: &Settings) -> Result<(), AgencyError>;
}
