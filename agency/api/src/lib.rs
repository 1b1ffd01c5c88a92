//! The example agency canister's interface: its candid types and a typed client. The inference
//! canister's types (`InputTensor`, `ModelRef`, `InferenceError`) are `inference-api`'s own.

use candid::{CandidType, Deserialize, Principal};
use inference_api::{InferenceError, InputTensor, ModelRef};

/// Where this agency's inference runs and with which model.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub inference_canister: Principal,
    pub model: String,
}

/// A citizen's document to decide on.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct Document {
    pub id: String,
    pub image: InputTensor,
}

/// What was decided about a document, and by which model.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct Decision {
    pub document_id: String,
    pub label: String,
    pub score: f32,
    pub model: ModelRef,
    pub instructions: u64,
    pub messages: u32,
    pub decided_at_ns: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub enum AgencyError {
    /// The inference canister's typed refusal, as it gave it.
    Inference(InferenceError),
    CallFailed(String),
    NoLabel,
    AlreadyDecided(Decision),
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
    /// Classifies a citizen's document and records the decision (decisions are immutable).
    Update decide(document: &Document) -> Result<Decision, AgencyError>;
    Query decision(document_id: &str) -> Option<Decision>;
    Query decisions() -> Vec<Decision>;
}
