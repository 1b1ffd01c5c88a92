//! Certified data: a canister's data certificate, read in a query, verifies with ic-agent (the
//! client that verifies mainnet's certificates) under the replica's root key, and a forged one
//! does not.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{install, module};
use ic_agent::Agent;
use ic_certification::{Certificate, LookupResult};
use ic_replica::{LocalReplica, Principal};

fn certifying() -> Vec<u8> {
    module(
        r#"
        (func (export "canister_update set")
          i32.const 0 i32.const 0 call $arg_size call $arg_copy
          i32.const 0 call $arg_size call $certified_data_set call $msg_reply)
        (func (export "canister_update set_then_trap")
          i32.const 0 i32.const 0 call $arg_size call $arg_copy
          i32.const 0 call $arg_size call $certified_data_set
          i32.const 0 i32.const 0 call $trap)
        (func (export "canister_query certificate")
          i32.const 0 i32.const 0 call $certificate_size call $certificate_copy
          i32.const 0 call $certificate_size call $append call $msg_reply)
        (func (export "canister_update certificate_in_update") call $certificate_size drop call $msg_reply)
        (func (export "canister_query present")
          i32.const 0 call $certificate_present i32.store i32.const 0 i32.const 4 call $append call $msg_reply)
        (func (export "canister_update present_in_update")
          i32.const 0 call $certificate_present i32.store i32.const 0 i32.const 4 call $append call $msg_reply)
        (func (export "canister_update root_key")
          i32.const 0 i32.const 0 call $root_key_size call $root_key_copy
          i32.const 0 call $root_key_size call $append call $msg_reply)
        (func (export "canister_query root_key_in_query") call $root_key_size drop call $msg_reply)"#,
    )
}

fn agent(root_key: Option<&[u8]>) -> Agent {
    let agent = Agent::builder().with_url("http://127.0.0.1:4943").build().expect("an agent");
    if let Some(key) = root_key {
        agent.set_root_key(key.to_vec());
    }
    agent
}

#[test]
fn a_data_certificate_verifies_with_ic_agent_and_a_forged_one_does_not() {
    let mut r = LocalReplica::new();
    let id = install(&mut r, &certifying());
    // ic-agent refuses a certificate whose time is far from its own clock: bring the replica's
    // clock to now.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    r.advance_time(Duration::from_nanos(now - r.time_nanos()));
    let data = b"model 7, sha256 prefix 3f2a".to_vec();
    r.update_call(id, Principal::anonymous(), "set", data.clone()).0.unwrap();

    let bytes = r.query_call(id, Principal::anonymous(), "certificate", vec![]).0.unwrap();
    let certificate: Certificate = serde_cbor::from_slice(&bytes).expect("a CBOR certificate");
    let local = agent(Some(r.root_key()));
    local.verify(&certificate, id).expect("the replica's certificate verifies under its root key");
    let path: [&[u8]; 3] = [b"canister", id.as_slice(), b"certified_data"];
    assert_eq!(certificate.tree.lookup_path(path), LookupResult::Found(data.as_slice()));

    // The same signature over another tree, or the certificate under mainnet's root key: refused.
    let forged = Certificate {
        tree: ic_replica::certification::canister_tree(id, b"model 8", now),
        signature: certificate.signature.clone(),
        delegation: None,
    };
    assert!(local.verify(&forged, id).is_err());
    assert!(agent(None).verify(&certificate, id).is_err());
}

#[test]
fn certificates_exist_in_queries_only_and_the_root_key_outside_them() {
    let mut r = LocalReplica::new();
    let id = install(&mut r, &certifying());
    assert_eq!(r.query_call(id, Principal::anonymous(), "present", vec![]).0.unwrap(), [1, 0, 0, 0]);
    assert_eq!(r.update_call(id, Principal::anonymous(), "present_in_update", vec![]).0.unwrap(), [0, 0, 0, 0]);
    let err = r.update_call(id, Principal::anonymous(), "certificate_in_update", vec![]).0.unwrap_err();
    assert!(err.message.contains("data_certificate_size\" cannot be executed in"), "{}", err.message);
    assert_eq!(r.update_call(id, Principal::anonymous(), "root_key", vec![]).0.unwrap(), r.root_key());
    let err = r.query_call(id, Principal::anonymous(), "root_key_in_query", vec![]).0.unwrap_err();
    assert!(err.message.contains("root_key_size\" cannot be executed in"), "{}", err.message);
}

#[test]
fn a_trapped_message_leaves_the_certified_data_as_it_was() {
    let mut r = LocalReplica::new();
    let id = install(&mut r, &certifying());
    r.update_call(id, Principal::anonymous(), "set", b"kept".to_vec()).0.unwrap();
    r.update_call(id, Principal::anonymous(), "set_then_trap", b"lost".to_vec()).0.unwrap_err();
    let bytes = r.query_call(id, Principal::anonymous(), "certificate", vec![]).0.unwrap();
    let certificate: Certificate = serde_cbor::from_slice(&bytes).unwrap();
    let path: [&[u8]; 3] = [b"canister", id.as_slice(), b"certified_data"];
    assert_eq!(certificate.tree.lookup_path(path), LookupResult::Found(b"kept".as_slice()));
}
