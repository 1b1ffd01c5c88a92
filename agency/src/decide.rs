//! `decide`: reserve the document id, ask the inference canister, record the decision.

use agency_api::{AgencyError, Decision, Document, TextDocument, MAX_DOCUMENT_ID_BYTES};
use candid::Principal;
use inference_api::{ClassifyRequest, LabelScore, ModelRef, Receipt, TextInput, TextRequest};
use inference_client::text::TextClient;
use inference_client::{CdkTransport, InferenceClient};

use crate::{auth, state};

/// Classifies `document` for `caller` (a user) and records the decision; the first call for an
/// id wins.
pub async fn decide(caller: Principal, document: Document) -> Result<Decision, AgencyError> {
    let id = document.id;
    check_id(&id)?;
    let settings = state::settings();
    state::with_store(|s| s.reserve(&id, settings.decision_limit())).map_err(|e| visible_to(caller, e))?;
    // From here until the decision is recorded the id is reserved; the guard ends the
    // reservation on every other way out: an error, or a trap after the await (ic-cdk drops this
    // future in the call's cleanup, whose changes are kept).
    let _reservation = Reservation(id.clone());
    let inference = InferenceClient::new(CdkTransport { canister: settings.inference_canister });
    let request = ClassifyRequest { model: settings.model, version: None, input: document.image, top_k: Some(1) };
    let answer = inference.classify(&request).await.map_err(|e| AgencyError::CallFailed(e.to_string()))?;
    let c = answer.map_err(AgencyError::Inference)?;
    let answered = Answered { model: c.model, instructions: c.instructions, messages: c.messages, receipt: c.receipt };
    let decision = answered.decision(id, c.labels, ic_cdk::api::time(), caller)?;
    state::with_store(|s| s.record(decision.clone())).map_err(|e| visible_to(caller, e))?;
    Ok(decision)
}

/// What one inference call answered besides the labels: which model, at what cost, logged as
/// which audit entry.
struct Answered {
    model: ModelRef,
    instructions: u64,
    messages: u32,
    receipt: Option<Receipt>,
}

impl Answered {
    /// The decision on `document_id`: its best label (the first of `scores`, best first).
    fn decision(
        &self,
        document_id: String,
        scores: Vec<LabelScore>,
        decided_at_ns: u64,
        caller: Principal,
    ) -> Result<Decision, AgencyError> {
        let best = scores.into_iter().next().ok_or(AgencyError::NoLabel)?;
        Ok(Decision {
            document_id,
            label: best.label,
            score: best.score,
            model: self.model.clone(),
            instructions: self.instructions,
            messages: self.messages,
            decided_at_ns,
            submitted_by: Some(caller),
            receipt: self.receipt.clone(),
        })
    }
}

fn check_id(id: &str) -> Result<(), AgencyError> {
    if id.is_empty() || id.len() > MAX_DOCUMENT_ID_BYTES {
        return Err(AgencyError::InvalidDocumentId { length: id.len() as u64, max: MAX_DOCUMENT_ID_BYTES as u64 });
    }
    Ok(())
}

/// Classifies a batch of texts for `caller` in one call and records a decision for each; every
/// id is checked and reserved before the call, and a refusal records none.
pub async fn decide_texts(caller: Principal, documents: Vec<TextDocument>) -> Result<Vec<Decision>, AgencyError> {
    let settings = state::settings();
    let model = settings.text_model.clone().ok_or(AgencyError::NotConfigured { setting: "text_model".into() })?;
    let front = settings.text_canister.ok_or(AgencyError::NotConfigured { setting: "text_canister".into() })?;
    let mut seen = std::collections::BTreeSet::new();
    for d in &documents {
        check_id(&d.id)?;
        if !seen.insert(d.id.as_str()) {
            return Err(AgencyError::DuplicateDocument { document_id: d.id.clone() });
        }
    }
    let mut reservations = Vec::with_capacity(documents.len());
    for d in &documents {
        state::with_store(|s| s.reserve(&d.id, settings.decision_limit())).map_err(|e| visible_to(caller, e))?;
        reservations.push(Reservation(d.id.clone()));
    }
    let front = TextClient::new(CdkTransport { canister: front });
    let texts = documents.iter().map(|d| TextInput::Text(d.text.clone())).collect();
    let request = TextRequest { model, version: None, texts, top_k: Some(1) };
    let answer = front.classify_text(&request).await.map_err(|e| AgencyError::CallFailed(e.to_string()))?;
    let c = answer.map_err(AgencyError::Inference)?;
    let decided_at_ns = ic_cdk::api::time();
    let answered = Answered { model: c.model, instructions: c.instructions, messages: c.messages, receipt: c.receipt };
    let decisions = documents
        .iter()
        .zip(c.texts)
        .map(|(d, labels)| answered.decision(d.id.clone(), labels.scores, decided_at_ns, caller))
        .collect::<Result<Vec<_>, AgencyError>>()?;
    if decisions.len() != documents.len() {
        // The reply holds one classification per text; anything else is a broken reply.
        let (got, sent) = (decisions.len(), documents.len());
        return Err(AgencyError::CallFailed(format!("the text front answered {got} classifications for {sent} texts")));
    }
    for decision in &decisions {
        state::with_store(|s| s.record(decision.clone())).map_err(|e| visible_to(caller, e))?;
    }
    Ok(decisions)
}

/// An earlier decision is shown only to its submitter, readers and admins.
fn visible_to(caller: Principal, e: AgencyError) -> AgencyError {
    match e {
        AgencyError::AlreadyDecided { document_id, decision: Some(d) }
            if d.submitted_by != Some(caller) && auth::reader(caller).is_err() =>
        {
            AgencyError::AlreadyDecided { document_id, decision: None }
        }
        e => e,
    }
}

/// A document id reserved for one `decide`; dropping it ends the reservation (a no-op once the
/// decision is recorded).
struct Reservation(String);

impl Drop for Reservation {
    fn drop(&mut self) {
        state::with_store(|s| s.release(&self.0));
    }
}
