//! `agency/agency.did` is generated from the code; this test fails when they disagree.
//! Regenerate with `UPDATE_DID=1 cargo test -p agency-canister --test candid_interface`.

use candid_parser::utils::{service_equal, CandidSource};

#[test]
fn committed_did_matches_the_code() {
    // SAFETY: takes back the CString `export_candid!` leaked, once.
    let generated =
        unsafe { std::ffi::CString::from_raw(agency_canister::get_candid_pointer()) }.into_string().unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("agency.did");
    if std::env::var_os("UPDATE_DID").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).expect("agency/agency.did exists");
    service_equal(CandidSource::Text(&generated), CandidSource::Text(&committed)).unwrap_or_else(|e| {
        panic!("agency/agency.did is stale ({e}); regenerate with UPDATE_DID=1. The code says:\n{generated}")
    });
}
