//! `decide`: reserve the document id, ask the inference canister, record the decision.

use agency_api::{AgencyError, Decision, Document, MAX_DOCUMENT_ID_BYTES};
use candid::Principal;
use inference_api::ClassifyRequest;
use inference_client::{CdkTransport, InferenceClient};

use crate::{auth, state};

/// Classifies `document` for `caller` (a user) and records the decision; the first call for an
/// id wins.
pub async fn decide(caller: Principal, document: Document) -> Result<Decision, AgencyError> {
    let id = document.id;
    if id.is_empty() || id.len() > MAX_DOCUMENT_ID_BYTES {
        return Err(AgencyError::InvalidDocumentId { length: id.len() as u64, max: MAX_DOCUMENT_ID_BYTES as u64 });
    }
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
    let best = c.labels.into_iter().next().ok_or(AgencyError::NoLabel)?;
    let decision = Decision {
        document_id: id,
        label: best.label,
        score: best.score,
        model: c.model,
        instructions: c.instructions,
        messages: c.messages,
        decided_at_ns: ic_cdk::api::time(),
        submitted_by: Some(caller),
    };
    state::with_store(|s| s.record(decision.clone())).map_err(|e| visible_to(caller, e))?;
    Ok(decision)
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
