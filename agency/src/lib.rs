//! An agency's canister on the same subnet: it classifies a citizen's document with the
//! inference canister (inter-canister, so the data never leaves the subnet) and records each
//! decision with the exact model version and sha256 that made it, for auditors.

use std::cell::RefCell;

use agency_api::{AgencyError, Decision, Document, Settings};
use candid::Principal;
use ic_stable_structures::{memory_manager::*, DefaultMemoryImpl, StableBTreeMap, StableCell};
use inference_api::ClassifyRequest;
use inference_client::{CdkTransport, InferenceClient};

type Mem = VirtualMemory<DefaultMemoryImpl>;
thread_local! {
    static MEMORY: MemoryManager<DefaultMemoryImpl> = MemoryManager::init(DefaultMemoryImpl::default());
    static SETTINGS: RefCell<StableCell<Settings, Mem>> = RefCell::new(StableCell::init(
        MEMORY.with(|m| m.get(MemoryId::new(0))),
        Settings { inference_canister: Principal::anonymous(), model: String::new() }));
    static DECISIONS: RefCell<StableBTreeMap<String, Decision, Mem>> =
        RefCell::new(StableBTreeMap::init(MEMORY.with(|m| m.get(MemoryId::new(1)))));
}

#[ic_cdk::init]
fn init(settings: Settings) {
    SETTINGS.with(|s| s.borrow_mut().set(settings));
}

/// Classifies a citizen's document and records the decision (decisions are immutable).
#[ic_cdk::update]
async fn decide(document: Document) -> Result<Decision, AgencyError> {
    if let Some(d) = decision(document.id.clone()) {
        return Err(AgencyError::AlreadyDecided(d));
    }
    let settings = SETTINGS.with(|s| s.borrow().get().clone());
    let inference = InferenceClient::new(CdkTransport { canister: settings.inference_canister });
    let request = ClassifyRequest { model: settings.model, version: None, input: document.image, top_k: Some(1) };
    let answer = inference.classify(&request).await.map_err(|e| AgencyError::CallFailed(e.to_string()))?;
    let c = answer.map_err(AgencyError::Inference)?;
    let best = c.labels.into_iter().next().ok_or(AgencyError::NoLabel)?;
    let decision = Decision {
        document_id: document.id.clone(),
        label: best.label,
        score: best.score,
        model: c.model,
        instructions: c.instructions,
        messages: c.messages,
        decided_at_ns: ic_cdk::api::time(),
    };
    DECISIONS.with(|d| d.borrow_mut().insert(document.id, decision.clone()));
    Ok(decision)
}

#[ic_cdk::query]
fn decision(document_id: String) -> Option<Decision> {
    DECISIONS.with(|d| d.borrow().get(&document_id))
}

#[ic_cdk::query]
fn decisions() -> Vec<Decision> {
    DECISIONS.with(|d| d.borrow().iter().map(|e| e.value()).collect())
}

ic_cdk::export_candid!();
