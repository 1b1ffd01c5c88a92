//! The text front canister: `classify_text` and `embed_text` with the same candid the agencies
//! would call on the inference canister, tokenized here with the text model's own tokenizer and
//! run by the inference canister's token endpoints on the agency's behalf (its access, quota
//! and slots). It exists because the tokenizer is over a MiB of code, more than the inference
//! canister's code budget leaves; it holds no model and no caller data.
//!
//! Who may call: anyone may ask; the inference canister decides. Before tokenizing anything,
//! [`front`] asks it ([`text_model`](inference_client::calls::text_model)) whether the caller
//! is an allowed caller with quota left, so a stranger costs one small call and no
//! tokenization. The inference canister's admin grants this canister the front role
//! (`allow_front`).

mod front;

// getrandom's custom backend (tokenizers' ahash seeds its hash maps from it).
#[cfg(target_arch = "wasm32")]
use canister_entropy as _;

use std::cell::RefCell;

use candid::utils::{decode_args_with_config, ArgumentDecoder};
use candid::{CandidType, DecoderConfig, Principal};
use ic_cdk::api::msg_caller;
use ic_cdk::{init, post_upgrade, query, update};
use ic_stable_structures::{DefaultMemoryImpl, StableCell};
use inference_api::{FrontSettings, InferenceError, TextClassification, TextEmbeddings, TextRequest};
use serde::de::DeserializeOwned;

/// Largest argument a text call takes: an ingress message's 2 MiB, with room for candid's
/// framing (inter-canister requests are limited to 2 MiB as well).
const TEXT_ARG_BYTES: usize = 2 * 1024 * 1024 + 64 * 1024;

thread_local! {
    /// The inference canister, in stable memory so that an upgrade keeps it.
    static INFERENCE: RefCell<StableCell<Principal, DefaultMemoryImpl>> =
        RefCell::new(StableCell::init(DefaultMemoryImpl::default(), Principal::anonymous()));
}

fn inference_canister() -> Principal {
    INFERENCE.with_borrow(|c| *c.get())
}

#[init]
fn init(settings: FrontSettings) {
    INFERENCE.with_borrow_mut(|c| c.set(settings.inference_canister));
}

/// Keeps the inference canister unless the upgrade names another.
#[post_upgrade]
fn post_upgrade(settings: Option<FrontSettings>) {
    if let Some(settings) = settings {
        init(settings);
    }
}

/// Which inference canister this front tokenizes for (anyone).
#[query]
fn settings() -> FrontSettings {
    FrontSettings { inference_canister: inference_canister() }
}

/// Classifies a batch of texts with a text model: labels and scores per text, in request order
/// (the inference canister's allowed callers).
#[update(decode_with = "text_request")]
async fn classify_text(request: TextRequest) -> Result<TextClassification, InferenceError> {
    front::classify_text(inference_canister(), msg_caller(), request).await
}

/// One vector per text from a text embedding model, pooled as the bundle declares (the
/// inference canister's allowed callers).
#[update(decode_with = "text_request")]
async fn embed_text(request: TextRequest) -> Result<TextEmbeddings, InferenceError> {
    front::embed_text(inference_canister(), msg_caller(), request).await
}

/// Decodes a text request within [`TEXT_ARG_BYTES`] and a decoding quota (as the inference
/// canister's `args`): an oversized or adversarial argument traps before anything runs.
fn text_request<T: CandidType + DeserializeOwned>(bytes: Vec<u8>) -> T {
    decode::<(T,)>(bytes).0
}

fn decode<T: for<'a> ArgumentDecoder<'a>>(bytes: Vec<u8>) -> T {
    if bytes.len() > TEXT_ARG_BYTES {
        ic_cdk::trap(format!("the argument has {} bytes; this method takes at most {TEXT_ARG_BYTES}", bytes.len()));
    }
    let mut config = DecoderConfig::new();
    config.set_decoding_quota(TEXT_ARG_BYTES * 8).set_skipping_quota(10_000);
    config.set_full_error_message(false);
    decode_args_with_config(&bytes, &config)
        .unwrap_or_else(|e| ic_cdk::trap(format!("the argument is not this method's candid type: {e}")))
}

/// Ingress: the text calls (the inference canister decides the rest) and `settings` called as
/// an update (as icp-cli calls it), from anyone but the anonymous principal; nothing else. A
/// filter on one node, not a boundary.
#[ic_cdk::inspect_message]
fn inspect_message() {
    let method = ic_cdk::api::msg_method_name();
    if matches!(method.as_str(), "classify_text" | "embed_text" | "settings") && msg_caller() != Principal::anonymous()
    {
        ic_cdk::api::accept_message();
    }
}

ic_cdk::export_candid!();
