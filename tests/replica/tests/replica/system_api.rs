//! The system API an IC module may import, and the IC's validation of modules, on small
//! hand-written modules (`../shared/docs/ic-platform.md`, "Corrections and additions").

use crate::common::{cost_of, install, module, CONTROLLER};
use ic_replica::{LocalReplica, Principal};

const ENTRY: u64 = ic_replica::costs::FUNCTION_ENTRY_COST;
const REPLY: u64 = 505;

#[test]
fn stable64_size_costs_its_call_alone_and_128_bit_cycles_calls_cost_500() {
    // Wasm-native stable memory makes stable64_size an unmetered `memory.size`: call 5 + drop 1.
    assert_eq!(
        cost_of(r#"(func (export "canister_update f") call $stable_size drop call $msg_reply)"#),
        ENTRY + 6 + REPLY
    );
    // canister_cycle_balance128(0): const 1 + call 5 + 500, nothing per byte written.
    assert_eq!(
        cost_of(r#"(func (export "canister_update f") i32.const 0 call $balance call $msg_reply)"#),
        ENTRY + 506 + REPLY
    );
}

fn reply_of(r: &mut LocalReplica, id: Principal, method: &str) -> Vec<u8> {
    r.update_call(id, Principal::anonymous(), method, vec![]).0.unwrap()
}

#[test]
fn the_32_bit_stable_api_addresses_the_same_memory() {
    let wasm = module(
        r#"(data (i32.const 0) "abcd")
        (func (export "canister_update f")
          i32.const 1 call $stable32_grow drop
          i32.const 8 i32.const 0 i32.const 4 call $stable32_write
          i32.const 16 i64.extend_i32_u i64.const 8 i64.const 4 call $stable_read
          i32.const 20 call $stable32_size i32.store
          i32.const 16 i32.const 8 call $append call $msg_reply)"#,
    );
    let mut r = LocalReplica::new();
    let id = install(&mut r, &wasm);
    // Written through the 32-bit call, read back through the 64-bit one; one page.
    assert_eq!(reply_of(&mut r, id, "f"), [b'a', b'b', b'c', b'd', 1, 0, 0, 0]);
}

#[test]
fn subnet_self_cycles_burn_and_costs_answer() {
    let wasm = module(
        r#"
        (data (i32.const 500) "key_1")
        (func (export "canister_update subnet")
          i32.const 0 i32.const 0 call $subnet_size call $subnet_copy
          i32.const 0 call $subnet_size call $append call $msg_reply)
        (func (export "canister_update burn")
          i64.const 0 i64.const 1000 i32.const 0 call $cycles_burn
          i32.const 0 i32.const 16 call $append call $msg_reply)
        (func (export "canister_update create")
          i32.const 0 call $cost_create
          i32.const 0 i32.const 16 call $append call $msg_reply)
        (func (export "canister_update ecdsa")
          i32.const 0 i32.const 500 i32.const 5 i32.const 0 i32.const 16 call $cost_ecdsa i32.store
          i32.const 4 i32.const 500 i32.const 5 i32.const 7 i32.const 16 call $cost_ecdsa i32.store
          i32.const 0 i32.const 8 call $append call $msg_reply)"#,
    );
    let mut r = LocalReplica::new();
    let id = install(&mut r, &wasm);
    assert_eq!(reply_of(&mut r, id, "subnet"), ic_replica::subnet_id().as_slice());
    let before = r.cycle_balance(id);
    let (burned, report) = r.update_call(id, Principal::anonymous(), "burn", vec![]);
    assert_eq!(u128::from_le_bytes(burned.unwrap().try_into().unwrap()), 1_000);
    assert_eq!(before - r.cycle_balance(id), report.cycles() + 1_000);
    assert_eq!(u128::from_le_bytes(reply_of(&mut r, id, "create").try_into().unwrap()), 500_000_000_000);
    // secp256k1 (0) is a curve, but this subnet holds no key: 2; curve 7 does not exist: 1.
    assert_eq!(reply_of(&mut r, id, "ecdsa"), [2, 0, 0, 0, 1, 0, 0, 0]);
}

#[test]
fn environment_variables_are_the_controllers_setting() {
    let wasm = module(
        r#"(data (i32.const 600) "MODE")
        (func (export "canister_update count") i32.const 0 call $env_count i32.store
          i32.const 0 i32.const 4 call $append call $msg_reply)
        (func (export "canister_update mode")
          i32.const 600 i32.const 4 i32.const 0 i32.const 0 i32.const 600 i32.const 4 call $env_value_size
          call $env_value_copy
          i32.const 0 i32.const 600 i32.const 4 call $env_value_size call $append call $msg_reply)"#,
    );
    let mut r = LocalReplica::new();
    let id = install(&mut r, &wasm);
    assert_eq!(reply_of(&mut r, id, "count"), [0, 0, 0, 0]);
    let missing = r.update_call(id, Principal::anonymous(), "mode", vec![]).0.unwrap_err();
    assert!(missing.message.contains("`MODE` does not exist"), "{}", missing.message);
    let vars = [("MODE".to_string(), "audit".to_string())].into_iter().collect();
    assert!(r.set_env_vars(id, Principal::anonymous(), Default::default()).is_err(), "controllers only");
    r.set_env_vars(id, CONTROLLER, vars).unwrap();
    assert_eq!(reply_of(&mut r, id, "count"), [1, 0, 0, 0]);
    assert_eq!(reply_of(&mut r, id, "mode"), b"audit");
}

#[test]
fn queries_may_touch_1_gib_of_stable_memory_and_updates_2() {
    // 16,385 pages of 64 KiB: one more than 1 GiB. `scan(n)` reads the first n of them.
    let wasm = module(
        r#"
        (func (export "canister_update grow") i64.const 16385 call $stable_grow drop call $msg_reply)
        (func $scan (param $n i32) (local $i i32)
          (loop $l
            i64.const 0
            local.get $i i64.extend_i32_u i64.const 65536 i64.mul
            i64.const 65536 call $stable_read
            local.get $i i32.const 1 i32.add local.tee $i local.get $n i32.lt_u br_if $l))
        (func (export "canister_query scan_1_gib") i32.const 16384 call $scan call $msg_reply)
        (func (export "canister_query scan_more") i32.const 16385 call $scan call $msg_reply)
        (func (export "canister_update scan_more_in_update") i32.const 16385 call $scan call $msg_reply)"#,
    );
    let mut r = LocalReplica::new();
    let id = install(&mut r, &wasm);
    reply_of(&mut r, id, "grow");
    r.query_call(id, Principal::anonymous(), "scan_1_gib", vec![]).0.unwrap();
    let err = r.query_call(id, Principal::anonymous(), "scan_more", vec![]).0.unwrap_err();
    assert!(err.message.contains("accessed pages in the stable memory"), "{}", err.message);
    reply_of(&mut r, id, "scan_more_in_update");
}

fn refused(wat_text: &str) -> String {
    let mut r = LocalReplica::new();
    let id = r.create_canister(CONTROLLER);
    r.install_canister(id, &wat::parse_str(wat_text).unwrap(), vec![], CONTROLLER).unwrap_err().message
}

#[test]
fn a_function_over_the_ic_complexity_limit_is_refused() {
    // 20,001 empty loops weigh 20,001 × 50 + 20,001 `end`s + the function's own `end`.
    let loops = "(loop)".repeat(20_001);
    let e = refused(&format!("(module (memory 1) (func {loops}))"));
    assert!(e.contains("with complexity 1020052 which exceeds the maximum complexity allowed 1000000"), "{e}");
    // 19,000 of them are within it. Validated, not installed: compiling 19,000 nested loops took
    // cranelift 17 s, and the rule under test is validation's.
    let loops = "(loop)".repeat(19_000);
    let within = wat::parse_str(format!("(module (memory 1) (func {loops}))")).unwrap();
    assert_eq!(ic_replica::validate::validate(&within, &ic_replica::system_api::signatures()), Ok(()));
}

#[test]
fn exports_and_imports_must_have_the_ic_signatures() {
    let e = refused(r#"(module (memory 1) (func (export "canister_update f") (param i32)))"#);
    assert!(e.contains("Expected input params [] for 'canister_update f', got [I32]"), "{e}");
    let e = refused(r#"(module (memory 1) (func (export "canister_init") (result i32) i32.const 0))"#);
    assert!(e.contains("Expected return type [] for 'canister_init', got [I32]"), "{e}");
    let e = refused(r#"(module (import "ic0" "msg_reply" (func (param i32))) (memory 1))"#);
    assert!(e.contains("Expected input params [] for 'msg_reply', got [I32]"), "{e}");
    let e = refused(r#"(module (import "env" "msg_reply" (func)) (memory 1))"#);
    assert!(e.contains("expected to be imported from one of"), "{e}");
    let e = refused(r#"(module (import "env" "g" (global i32)) (memory 1))"#);
    assert!(e.contains("Importing globals is not allowed"), "{e}");
    let e = refused(r#"(module (import "ic0" "memory" (memory 1)))"#);
    assert!(e.contains("Only memory imported from env.memory is allowed"), "{e}");
    let e = refused(r#"(module (memory 1) (func (export "canister_start")))"#);
    assert!(e.contains("Exporting reserved symbol canister_start"), "{e}");
    // The IC's validation lets `env.memory` through (this replica then cannot link it).
    let signatures = ic_replica::system_api::signatures();
    let env_memory = wat::parse_str(r#"(module (import "env" "memory" (memory 1)))"#).unwrap();
    assert_eq!(ic_replica::validate::validate(&env_memory, &signatures), Ok(()));
}

#[test]
fn icp_sections_are_public_or_private_unique_and_few() {
    let custom = |names: &[&str]| {
        let mut m = wasm_encoder::Module::new();
        for name in names {
            m.section(&wasm_encoder::CustomSection { name: (*name).into(), data: b"x".as_slice().into() });
        }
        m.finish()
    };
    let signatures = ic_replica::system_api::signatures();
    let check = |names: &[&str]| ic_replica::validate::validate(&custom(names), &signatures).map_err(|e| e.to_string());
    assert_eq!(check(&["icp:public candid:service", "icp:private notes", "other"]), Ok(()));
    assert!(check(&["icp:public x", "icp:private x"]).unwrap_err().contains("name x already exists"));
    assert!(check(&["icp:shared x"]).unwrap_err().contains("has no public/private scope"));
    assert!(check(&["icp:public"]).unwrap_err().contains("must have a space after the public/private scope"));
    let many: Vec<String> = (0..17).map(|i| format!("icp:public s{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(check(&many).unwrap_err().contains("defined 17 custom sections"));
}
