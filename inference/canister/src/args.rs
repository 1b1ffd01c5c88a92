//! Argument decoding with limits, for every endpoint that takes caller data
//! (`#[update(decode_with = …)]`): the argument's size is checked before any decoding, and
//! candid's decoding quota bounds the work a small but adversarial argument can cause (a
//! `vec null` of a billion elements takes a few bytes on the wire). An argument over its limit,
//! or not of the method's type, traps before the method runs: the caller gets the IC's reject
//! with this module's message, and nothing changes.

use candid::utils::{decode_args_with_config, ArgumentDecoder};
use candid::{CandidType, DecoderConfig};
use serde::de::DeserializeOwned;

/// Names, versions, ids, principals and settings.
pub const SMALL_ARG_BYTES: usize = 4 * 1024;
/// `upload_start`'s request: labels (thousands of class names) and input specs.
pub const UPLOAD_REQUEST_BYTES: usize = 256 * 1024;
/// One chunk and its envelope: an ingress message's 2 MiB.
pub const CHUNK_ARG_BYTES: usize = 2 * 1024 * 1024;
/// `build_plan`'s shapes and plan values (this canister's own call).
pub const PLAN_ARG_BYTES: usize = 64 * 1024;
/// Inference inputs: the largest inter-canister request (10 MiB).
pub const INPUT_ARG_BYTES: usize = 10 * 1024 * 1024;

/// candid's cost of a legitimate argument is at most about 5 units per byte (a `vec nat8`
/// sent element by element); 8 leaves a margin while bounding a blow-up to 8× the size.
const QUOTA_PER_BYTE: usize = 8;
/// Extra fields and arguments a newer client may send are skipped, within this much.
const SKIPPING_QUOTA: usize = 10_000;

/// The argument size limit of each method, for `inspect_message` to apply the same limits
/// before a message is accepted (methods that take no argument accept none larger than the
/// small limit either).
pub fn limit_of(method: &str) -> usize {
    match method {
        "upload_chunk" => CHUNK_ARG_BYTES,
        "upload_start" => UPLOAD_REQUEST_BYTES,
        "build_plan" => PLAN_ARG_BYTES,
        "classify" | "classify_query" | "classify_tokens" | "embed_tokens" | "infer" | "profile" | "submit" => {
            INPUT_ARG_BYTES
        }
        _ => SMALL_ARG_BYTES,
    }
}

fn decode<T: for<'a> ArgumentDecoder<'a>>(bytes: Vec<u8>, max_bytes: usize) -> T {
    if bytes.len() > max_bytes {
        ic_cdk::trap(format!("the argument has {} bytes; this method takes at most {max_bytes}", bytes.len()));
    }
    let mut config = DecoderConfig::new();
    config.set_decoding_quota(max_bytes * QUOTA_PER_BYTE).set_skipping_quota(SKIPPING_QUOTA);
    config.set_full_error_message(false);
    let bytes: &[u8] = if bytes.is_empty() { b"DIDL\x00\x00" } else { &bytes };
    decode_args_with_config(bytes, &config)
        .unwrap_or_else(|e| ic_cdk::trap(format!("the argument is not this method's candid type: {e}")))
}

fn one<T: CandidType + DeserializeOwned>(bytes: Vec<u8>, max_bytes: usize) -> T {
    decode::<(T,)>(bytes, max_bytes).0
}

/// A single small argument.
pub fn small<T: CandidType + DeserializeOwned>(bytes: Vec<u8>) -> T {
    one(bytes, SMALL_ARG_BYTES)
}

/// Several small arguments.
pub fn small_args<T: for<'a> ArgumentDecoder<'a>>(bytes: Vec<u8>) -> T {
    decode(bytes, SMALL_ARG_BYTES)
}

/// `build_plan`'s arguments.
pub fn plan_args<T: for<'a> ArgumentDecoder<'a>>(bytes: Vec<u8>) -> T {
    decode(bytes, PLAN_ARG_BYTES)
}

pub fn upload_request<T: CandidType + DeserializeOwned>(bytes: Vec<u8>) -> T {
    one(bytes, UPLOAD_REQUEST_BYTES)
}

pub fn chunk<T: CandidType + DeserializeOwned>(bytes: Vec<u8>) -> T {
    one(bytes, CHUNK_ARG_BYTES)
}

pub fn input<T: CandidType + DeserializeOwned>(bytes: Vec<u8>) -> T {
    one(bytes, INPUT_ARG_BYTES)
}

pub fn input_args<T: for<'a> ArgumentDecoder<'a>>(bytes: Vec<u8>) -> T {
    decode(bytes, INPUT_ARG_BYTES)
}
