//! `inference/text.did` is generated from the code; this test fails when they disagree.
//! Regenerate with `UPDATE_DID=1 cargo test -p text-canister --test candid_interface`.

use std::path::PathBuf;

use candid_parser::utils::{service_equal, CandidSource};

fn interface_from_code() -> String {
    // SAFETY: `get_candid_pointer` (from `ic_cdk::export_candid!`) hands over a CString it
    // allocated with `into_raw`; taking it back once frees it.
    unsafe { std::ffi::CString::from_raw(text_canister::get_candid_pointer()) }.into_string().expect("utf-8 interface")
}

#[test]
fn committed_did_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../text.did");
    let generated = interface_from_code();
    if std::env::var_os("UPDATE_DID").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).expect("inference/text.did exists");
    service_equal(CandidSource::Text(&generated), CandidSource::Text(&committed)).unwrap_or_else(|e| {
        panic!("inference/text.did is stale ({e}).\nRegenerate it: UPDATE_DID=1 cargo test -p text-canister --test candid_interface\nThe code says:\n{generated}")
    });
}
