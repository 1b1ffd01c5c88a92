//! The agency canister's candid types: its own interface, and its mirror of the inference
//! canister's (from `inference/inference.did`; candid lets each side add optional fields).
//! Kept in their own file so test code can use them without linking the canister.

use candid::{CandidType, Deserialize, Principal};

#[derive(CandidType, Deserialize, Clone, Debug)]
pub enum TensorData { F32(Vec<f32>), I8(Vec<i8>), U8(serde_bytes::ByteBuf) }
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct InputTensor { pub shape: Vec<u64>, pub data: TensorData }
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct ClassifyRequest { pub model: String, pub version: Option<u32>, pub input: InputTensor, pub top_k: Option<u32> }
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct LabelScore { pub label: String, pub index: u32, pub score: f32 }
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ModelRef { pub name: String, pub version: u32, pub sha256: Vec<u8> }
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct Classification { pub labels: Vec<LabelScore>, pub model: ModelRef, pub instructions: u64, pub messages: u32 }
/// The inference canister's errors, forwarded as they are.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum InferenceError {
    NotAuthorized { caller: Principal }, UnknownModel(String), UnknownVersion { name: String, version: u32 },
    InvalidInput(String), Busy { in_flight: u32, limit: u32 }, Stopping, TooExpensiveForQuery { budget: u64 },
    Engine(String), CallFailed(String), UnknownJob(u64), Pending { steps_done: u32, steps_total: u32 }, Cancelled,
    Interrupted(String),
}

/// Where this agency's inference runs and with which model.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct Settings { pub inference_canister: Principal, pub model: String }

#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct Document { pub id: String, pub image: InputTensor }

/// What was decided about a document, and by which model.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct Decision {
    pub document_id: String, pub label: String, pub score: f32, pub model: ModelRef,
    pub instructions: u64, pub messages: u32, pub decided_at_ns: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub enum AgencyError { Inference(InferenceError), CallFailed(String), NoLabel, AlreadyDecided(Decision) }
