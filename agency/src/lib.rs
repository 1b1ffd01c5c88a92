//! An agency's canister on the same subnet: it classifies a citizen's document with the
//! inference canister (inter-canister, so the data never leaves the subnet) and records each
//! decision with the exact model version and sha256 that made it, and who asked, for auditors.
//!
//! Its controllers (admins) choose who may submit documents (users) and who may read decisions
//! (readers); nobody else gets inference through this canister or sees a citizen's decision.
//! Each endpoint here is a role check and one call into the module that does the work.

mod auth;
mod decide;
mod state;
mod store;

use agency_api::{
    AgencyError, AgencyRole, Decision, DecisionPage, Document, Roles, Settings, TextDocument, MAX_DECISIONS_LIMIT,
};
use candid::Principal;
use ic_cdk::api::msg_caller;
use ic_cdk::{query, update};

/// Installs with its settings and, optionally, the users and readers to start with.
#[ic_cdk::init]
fn init(settings: Settings, roles: Option<Roles>) {
    if let Err(e) = validate(&settings) {
        ic_cdk::trap(format!("invalid settings: {e}"));
    }
    state::set_settings(settings);
    let roles = roles.unwrap_or_default();
    let grants =
        roles.users.iter().map(|u| (AgencyRole::User, u)).chain(roles.readers.iter().map(|r| (AgencyRole::Reader, r)));
    for (role, who) in grants {
        if let Err(e) = state::set_role(role, *who, true) {
            ic_cdk::trap(format!("invalid initial roles: {e}"));
        }
    }
}

/// Classifies a citizen's document and records the decision (users). Decisions are immutable:
/// the first call for an id wins, a concurrent one gets `InProgress`, a later one
/// `AlreadyDecided`.
#[update(decode_with = "decode_document")]
async fn decide(document: Document) -> Result<Decision, AgencyError> {
    let caller = msg_caller();
    auth::user(caller)?;
    decide::decide(caller, document).await
}

/// Classifies a batch of texts with the agency's text model (one call to the text front canister)
/// and records a decision for each, in request order (users). All or none: an id already
/// decided or being decided refuses the whole batch before any inference.
#[update(decode_with = "decode_texts")]
async fn decide_texts(documents: Vec<TextDocument>) -> Result<Vec<Decision>, AgencyError> {
    let caller = msg_caller();
    auth::user(caller)?;
    decide::decide_texts(caller, documents).await
}

/// One document's decision, if it was decided (readers and admins).
#[query]
fn decision(document_id: String) -> Result<Option<Decision>, AgencyError> {
    auth::reader(msg_caller())?;
    Ok(state::with_store(|s| s.get(&document_id)))
}

/// Decisions in document-id order after `after`, at most `limit` (capped to `MAX_PAGE`, 0 asks
/// for a full page); `next` continues (readers and admins).
#[query]
fn decisions(after: Option<String>, limit: u32) -> Result<DecisionPage, AgencyError> {
    auth::reader(msg_caller())?;
    Ok(state::with_store(|s| s.page(after.as_deref(), limit)))
}

/// The settings in force (readers and admins).
#[query]
fn settings() -> Result<Settings, AgencyError> {
    auth::reader(msg_caller())?;
    Ok(state::settings())
}

/// Grants (`allowed = true`) or revokes the user role: who may call `decide` (admins).
#[update]
fn set_user(who: Principal, allowed: bool) -> Result<(), AgencyError> {
    auth::admin(msg_caller())?;
    state::set_role(AgencyRole::User, who, allowed)
}

/// Grants (`allowed = true`) or revokes the reader role: who may read decisions (admins).
#[update]
fn set_reader(who: Principal, allowed: bool) -> Result<(), AgencyError> {
    auth::admin(msg_caller())?;
    state::set_role(AgencyRole::Reader, who, allowed)
}

/// Who holds the user and reader roles (admins).
#[query]
fn roles() -> Result<Roles, AgencyError> {
    auth::admin(msg_caller())?;
    Ok(Roles { users: state::holders(AgencyRole::User), readers: state::holders(AgencyRole::Reader) })
}

/// Replaces the settings (admins). A limit below the decisions already kept is accepted; `decide`
/// then refuses until it is raised (nothing is evicted).
#[update]
fn set_settings(settings: Settings) -> Result<(), AgencyError> {
    auth::admin(msg_caller())?;
    validate(&settings)?;
    state::set_settings(settings);
    Ok(())
}

fn validate(settings: &Settings) -> Result<(), AgencyError> {
    match settings.max_decisions {
        Some(max) if !(1..=MAX_DECISIONS_LIMIT).contains(&max) => {
            Err(AgencyError::OutOfRange { field: "max_decisions".into(), value: max, min: 1, max: MAX_DECISIONS_LIMIT })
        }
        _ => Ok(()),
    }
}

/// Decodes `decide`'s argument with candid's quotas set, so a message makes the decoder do only
/// work in proportion to an image a message can carry (2 MiB of i8, the costliest per byte, is
/// ~8.4 M units of candid's cost model) and skip little.
fn decode_document(bytes: Vec<u8>) -> Document {
    let mut config = candid::DecoderConfig::new();
    config.set_decoding_quota(20_000_000).set_skipping_quota(10_000);
    match candid::utils::decode_args_with_config::<(Document,)>(&bytes, &config) {
        Ok((document,)) => document,
        Err(e) => ic_cdk::trap(format!("decide: the argument does not decode as a Document: {e}")),
    }
}

/// Decodes `decide_texts`'s argument within an inter-canister request's 2 MiB (texts cost about
/// one candid unit per byte).
fn decode_texts(bytes: Vec<u8>) -> Vec<TextDocument> {
    let mut config = candid::DecoderConfig::new();
    config.set_decoding_quota(20_000_000).set_skipping_quota(10_000);
    match candid::utils::decode_args_with_config::<(Vec<TextDocument>,)>(&bytes, &config) {
        Ok((documents,)) => documents,
        Err(e) => ic_cdk::trap(format!("decide_texts: the argument does not decode as text documents: {e}")),
    }
}

/// Ingress filter ([`auth::accepts_ingress`]); the methods check again (this runs on one node).
#[ic_cdk::inspect_message]
fn inspect_message() {
    if auth::accepts_ingress(&ic_cdk::api::msg_method_name(), msg_caller()) {
        ic_cdk::api::accept_message();
    }
}

ic_cdk::export_candid!();
