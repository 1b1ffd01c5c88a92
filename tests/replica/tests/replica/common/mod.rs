//! Small hand-written modules and helpers shared by the replica's rule tests.

use ic_replica::{LocalReplica, Principal};

pub const IMPORTS: &str = r#"
  (import "ic0" "msg_reply" (func $msg_reply))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i32 i32 i32)))
  (import "ic0" "trap" (func $trap (param i32 i32)))
  (import "ic0" "stable64_grow" (func $stable_grow (param i64) (result i64)))
  (import "ic0" "stable64_write" (func $stable_write (param i64 i64 i64)))
  (import "ic0" "stable64_read" (func $stable_read (param i64 i64 i64)))
  (import "ic0" "performance_counter" (func $perf (param i32) (result i64)))
  (import "ic0" "canister_self_size" (func $self_size (result i32)))
  (import "ic0" "canister_self_copy" (func $self_copy (param i32 i32 i32)))
  (import "ic0" "call_new" (func $call_new (param i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "ic0" "call_perform" (func $call_perform (result i32)))
  (import "ic0" "accept_message" (func $accept))
  (import "ic0" "msg_method_name_size" (func $method_size (result i32)))
  (import "ic0" "msg_reject" (func $reject (param i32 i32)))
  (import "ic0" "call_data_append" (func $call_append (param i32 i32)))
  (import "ic0" "stable64_size" (func $stable_size (result i64)))
  (import "ic0" "stable_size" (func $stable32_size (result i32)))
  (import "ic0" "stable_grow" (func $stable32_grow (param i32) (result i32)))
  (import "ic0" "stable_write" (func $stable32_write (param i32 i32 i32)))
  (import "ic0" "stable_read" (func $stable32_read (param i32 i32 i32)))
  (import "ic0" "canister_cycle_balance128" (func $balance (param i32)))
  (import "ic0" "cycles_burn128" (func $cycles_burn (param i64 i64 i32)))
  (import "ic0" "cost_call" (func $cost_call (param i64 i64 i32)))
  (import "ic0" "cost_create_canister" (func $cost_create (param i32)))
  (import "ic0" "cost_sign_with_ecdsa" (func $cost_ecdsa (param i32 i32 i32 i32) (result i32)))
  (import "ic0" "subnet_self_size" (func $subnet_size (result i32)))
  (import "ic0" "subnet_self_copy" (func $subnet_copy (param i32 i32 i32)))
  (import "ic0" "env_var_count" (func $env_count (result i32)))
  (import "ic0" "env_var_value_size" (func $env_value_size (param i32 i32) (result i32)))
  (import "ic0" "env_var_value_copy" (func $env_value_copy (param i32 i32 i32 i32 i32)))
  (import "ic0" "msg_arg_data_size" (func $arg_size (result i32)))
  (import "ic0" "certified_data_set" (func $certified_data_set (param i32 i32)))
  (import "ic0" "data_certificate_present" (func $certificate_present (result i32)))
  (import "ic0" "data_certificate_size" (func $certificate_size (result i32)))
  (import "ic0" "data_certificate_copy" (func $certificate_copy (param i32 i32 i32)))
  (import "ic0" "root_key_size" (func $root_key_size (result i32)))
  (import "ic0" "root_key_copy" (func $root_key_copy (param i32 i32 i32)))
"#;

pub const CONTROLLER: Principal = Principal::from_slice(&[7; 29]);

pub fn module(body: &str) -> Vec<u8> {
    wat::parse_str(format!("(module {IMPORTS} (memory 2) {body})")).unwrap()
}

pub fn install(replica: &mut LocalReplica, wasm: &[u8]) -> Principal {
    let id = replica.create_canister(CONTROLLER);
    replica.install_canister(id, wasm, vec![], CONTROLLER).expect("install");
    id
}

/// Instructions the single message of an update call took.
pub fn cost_of(body: &str) -> u64 {
    let mut r = LocalReplica::new();
    let id = install(&mut r, &module(body));
    let (result, report) = r.update_call(id, Principal::anonymous(), "f", vec![]);
    result.expect("call replies");
    assert_eq!(report.message_count(), 1);
    report.instructions()
}

/// Instructions the single message of an update call took, whether it replied, rejected or
/// trapped.
pub fn cost_of_any(body: &str) -> u64 {
    let mut r = LocalReplica::new();
    let id = install(&mut r, &module(body));
    let (_, report) = r.update_call(id, Principal::anonymous(), "f", vec![]);
    assert_eq!(report.message_count(), 1);
    report.instructions()
}
