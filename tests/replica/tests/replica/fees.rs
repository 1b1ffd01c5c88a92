//! Cycles as the IC charges them, against hand-summed figures: execution, ingress, calls,
//! prepayments, compilation, storage and the subnet's size (`../shared/docs/ic-platform.md` §4
//! and its corrections).

use crate::common::{install, module, CONTROLLER};
use ic_replica::fees::{INGRESS_ENVELOPE_BYTES, LARGE_SUBNET_SIZE};
use ic_replica::{Fees, LocalReplica, MessageKind, Principal, RejectCode};

/// `f` replies at once: the message's function entry (1) + `call` (5) + msg_reply (500).
const REPLY_ONLY: u64 = 506;

fn replier() -> Vec<u8> {
    module(
        r#"(func (export "canister_update f") call $msg_reply) (func (export "canister_update a_longer_name") call $msg_reply)"#,
    )
}

#[test]
fn an_update_pays_5m_per_message_1_per_instruction_and_its_ingress_with_the_method_name() {
    let mut r = LocalReplica::new();
    let id = install(&mut r, &replier());
    let before = r.cycle_balance(id);
    let (result, report) = r.update_call(id, Principal::anonymous(), "f", vec![1, 2, 3]);
    result.unwrap();
    let cycles = report.cycles_by_kind();
    assert_eq!(report.instructions(), REPLY_ONLY);
    assert_eq!(cycles.execution, 5_000_000 + 506);
    // 1.2 M + 2,000 per byte: method name (1), argument (3) and the envelope around them.
    assert_eq!(cycles.ingress, 1_200_000 + 2_000 * (1 + 3 + INGRESS_ENVELOPE_BYTES as u128));
    assert_eq!(cycles.xnet, 0);
    assert_eq!(before - r.cycle_balance(id), report.cycles(), "the balance pays exactly the report");

    // A longer method name costs 2,000 per extra byte.
    let (_, longer) = r.update_call(id, Principal::anonymous(), "a_longer_name", vec![1, 2, 3]);
    assert_eq!(longer.cycles_by_kind().ingress - cycles.ingress, 2_000 * ("a_longer_name".len() as u128 - 1));
}

#[test]
fn a_34_node_subnet_scales_every_fee_and_rounds_down() {
    let mut r = LocalReplica::new();
    r.set_subnet_size(LARGE_SUBNET_SIZE);
    let id = install(&mut r, &replier());
    let before = r.cycle_balance(id);
    let (result, report) = r.update_call(id, Principal::anonymous(), "f", vec![]);
    result.unwrap();
    let cycles = report.cycles_by_kind();
    // Prepaid floor((5 M + 40 B) × 34 / 13), refunded floor((40 B − 506) × 34 / 13).
    assert_eq!(cycles.execution, 104_628_461_538 - 104_615_383_292);
    // floor(1.2 M × 34 / 13) + floor(2,000 × 34 / 13) per byte.
    assert_eq!(cycles.ingress, 3_138_461 + 5_230 * (1 + INGRESS_ENVELOPE_BYTES as u128));
    assert_eq!(before - r.cycle_balance(id), report.cycles());
    // The same call priced on 13 nodes.
    let at_13 = report.cycles_at(&Fees::default());
    assert_eq!(at_13.execution, 5_000_506);
}

/// `f` calls this canister's `noop` (4-byte method name, no argument, a 10-byte reply) and
/// replies from the callback; `g` calls it too but replies at once with `call_perform`'s result.
fn caller() -> Vec<u8> {
    module(
        r#"
      (type $cb (func (param i32)))
      (table 1 funcref) (elem (i32.const 0) $on_reply)
      (data (i32.const 200) "noop")
      (func (export "canister_update noop") i32.const 0 i32.const 10 call $append call $msg_reply)
      (func $call_noop (result i32)
        i32.const 100 i32.const 0 call $self_size call $self_copy
        i32.const 100 call $self_size i32.const 200 i32.const 4 i32.const 0 i32.const 0 i32.const 0 i32.const 0
        call $call_new
        call $call_perform)
      (func (export "canister_update f") call $call_noop drop)
      (func (export "canister_update g")
        i32.const 300 call $call_noop i32.store
        i32.const 300 i32.const 4 call $append call $msg_reply)
      (func $on_reply (param i32) call $msg_reply)
      (func (export "canister_update cost")
        i64.const 4 i64.const 10 i32.const 0 call $cost_call
        i32.const 0 i32.const 16 call $append call $msg_reply)
    "#,
    )
}

#[test]
fn a_call_pays_its_request_and_response_bytes_and_prepays_the_rest() {
    let mut r = LocalReplica::new();
    let id = install(&mut r, &caller());
    let before = r.cycle_balance(id);
    let (result, report) = r.update_call(id, Principal::anonymous(), "f", vec![]);
    result.unwrap();
    assert_eq!(report.message_count(), 3);
    // 260,000 per call + 1,000 per request byte ("noop") and per response byte (10).
    assert_eq!(report.cycles_by_kind().xnet, 260_000 + 1_000 * 4 + 1_000 * 10);
    // Three messages' fixed fees and their instructions; the prepayments all came back.
    assert_eq!(report.cycles_by_kind().execution, 3 * 5_000_000 + report.instructions() as u128);
    assert_eq!(before - r.cycle_balance(id), report.cycles());
}

#[test]
fn cost_call_answers_the_prepayment_of_a_call() {
    let mut r = LocalReplica::new();
    let id = install(&mut r, &caller());
    let bytes = r.update_call(id, Principal::anonymous(), "cost", vec![]).0.unwrap();
    // 260,000 + 1,000 × 14 bytes + the largest response (2 MiB × 1,000) + its callback (5 M + 40 B).
    assert_eq!(u128::from_le_bytes(bytes.try_into().unwrap()), 42_102_412_000 + 14_000);
}

#[test]
fn a_canister_short_of_cycles_is_refused_as_on_the_ic() {
    let mut r = LocalReplica::new();
    let id = install(&mut r, &caller());
    let threshold = r.freezing_threshold(id);
    let fees = r.fees();
    let ingress = fees.ingress(("g".len() + INGRESS_ENVELOPE_BYTES as usize) as u64);
    let prepaid = fees.execution(40_000_000_000);

    // Enough to receive the message but not to prepay its execution: refused before it runs.
    r.set_cycle_balance(id, threshold + ingress + prepaid - 1);
    let (result, report) = r.update_call(id, Principal::anonymous(), "g", vec![]);
    let err = result.unwrap_err();
    assert_eq!(err.code, RejectCode::SysTransient);
    assert_eq!(err.message, format!("Canister {id} is out of cycles"));
    assert_eq!(report.message_count(), 0);

    // Not even enough to receive it: refused at submission, nothing charged.
    r.set_cycle_balance(id, threshold + ingress - 1);
    let (result, _) = r.update_call(id, Principal::anonymous(), "g", vec![]);
    assert!(result.unwrap_err().message.contains("out of cycles"));
    assert_eq!(r.cycle_balance(id), threshold + ingress - 1);

    // Enough to run `g` but not to prepay its call: call_perform answers 2 (SYS_TRANSIENT).
    r.set_cycle_balance(id, threshold + ingress + prepaid + fees.call_prepayment(4) - 1);
    let bytes = r.update_call(id, Principal::anonymous(), "g", vec![]).0.unwrap();
    assert_eq!(bytes, 2u32.to_le_bytes());
    // With that cycle, the call goes out.
    r.set_cycle_balance(id, threshold + ingress + prepaid + fees.call_prepayment(4));
    let bytes = r.update_call(id, Principal::anonymous(), "g", vec![]).0.unwrap();
    assert_eq!(bytes, 0u32.to_le_bytes());
}

#[test]
fn an_install_pays_compilation_6000_per_instrumented_instruction() {
    // One function: `call`, `end` (2) + its entry block's decrement and check (10); the IC adds
    // two functions (66) and four globals (2 each).
    let wasm = wat::parse_str(
        r#"(module (import "ic0" "msg_reply" (func $r)) (memory 1) (func (export "canister_update f") call $r))"#,
    )
    .unwrap();
    let mut r = LocalReplica::new();
    let id = r.create_canister(CONTROLLER);
    let before = r.cycle_balance(id);
    let report = r.install_canister(id, &wasm, vec![], CONTROLLER).unwrap();
    let compilation = &report.messages[0];
    assert_eq!(compilation.kind, MessageKind::Compilation);
    assert_eq!(compilation.instructions, 6_000 * (2 + 10 + 66 + 8));
    // One install message: its fixed fee and the compilation's instructions.
    assert_eq!(report.cycles(), 5_000_000 + 516_000);
    assert_eq!(before - r.cycle_balance(id), report.cycles());
}

#[test]
fn storage_is_charged_as_time_passes_and_sets_the_freezing_threshold() {
    let mut r = LocalReplica::new();
    let id = install(&mut r, &replier());
    let bytes = r.memory_usage(id);
    // Two wasm pages of heap and the module itself.
    assert_eq!(bytes, 2 * 65_536 + replier().len() as u64);
    let before = r.cycle_balance(id);
    r.advance_time(std::time::Duration::from_secs(86_400));
    // 127,000 cycles per GiB-second.
    assert_eq!(before - r.cycle_balance(id), bytes as u128 * 127_000 * 86_400 / (1 << 30));
    assert_eq!(r.freezing_threshold(id), bytes as u128 * 127_000 * 30 * 86_400 / (1 << 30));
}

#[test]
fn a_callback_under_a_lowered_limit_pays_what_its_record_says() {
    // The call prepays its callback's execution at the IC's 40 B; the callback runs under the
    // test's lower limit and gets back everything but what it used.
    let mut r = LocalReplica::new();
    r.set_update_instruction_limit(1_000_000);
    let id = install(&mut r, &caller());
    let before = r.cycle_balance(id);
    let (result, report) = r.update_call(id, Principal::anonymous(), "f", vec![]);
    result.unwrap();
    assert_eq!(report.message_count(), 3);
    assert_eq!(before - r.cycle_balance(id), report.cycles());
}
