//! The replica's IC rules, on small hand-written modules whose cost can be summed by hand from
//! the IC's table (`../shared/docs/ic-platform.md` §3).

use ic_replica::{LocalReplica, Principal, RejectCode};

use crate::common::{cost_of, cost_of_any, install, module, IMPORTS};

// msg_reply costs `call` (5) + the system call (500).
const REPLY: u64 = 505;
// Entering a wasm function costs 1 on the IC: the message's own function, and every callee.
const ENTRY: u64 = ic_replica::costs::FUNCTION_ENTRY_COST;

#[test]
fn straight_line_block_costs_the_table_sum() {
    // const 1 + const 1 + add 1 + const 1 + div_u 10 + drop 1 + f32.const 1 + f32.const 1 + max 18 + drop 1
    let cost = cost_of(
        r#"(func (export "canister_update f")
        i32.const 7 i32.const 5 i32.add i32.const 3 i32.div_u drop
        f32.const 1 f32.const 2 f32.max drop
        call $msg_reply)"#,
    );
    assert_eq!(cost, ENTRY + 36 + REPLY);
}

#[test]
fn loop_of_n_iterations_costs_n_times_its_body() {
    // local.get 1 + const 1 + add 1 + local.tee 1 + const 1 + lt_u 1 + br_if 2 = 8 per iteration
    let cost = cost_of(
        r#"(func (export "canister_update f") (local $i i32)
        (loop $l local.get $i i32.const 1 i32.add local.tee $i i32.const 1000 i32.lt_u br_if $l)
        call $msg_reply)"#,
    );
    assert_eq!(cost, ENTRY + 8 * 1000 + REPLY);
}

#[test]
fn calls_and_indirect_calls_cost_5_and_10() {
    let cost = cost_of(
        r#"
        (type $t (func (result i32)))
        (table 1 funcref) (elem (i32.const 0) $g)
        (func $g (result i32) i32.const 1)
        (func (export "canister_update f")
          call $g drop
          i32.const 0 call_indirect (type $t) drop
          call $msg_reply)"#,
    );
    // call 5 + g's entry 1 + its const 1 + drop 1; const 1 + call_indirect 10 + g's entry 1 +
    // its const 1 + drop 1
    assert_eq!(cost, ENTRY + (5 + ENTRY + 1 + 1) + (1 + 10 + ENTRY + 1 + 1) + REPLY);
}

#[test]
fn bulk_memory_charges_its_size() {
    let cost = cost_of(
        r#"(func (export "canister_update f")
        i32.const 0 i32.const 0 i32.const 4096 memory.fill
        i32.const 100 i32.const 0 i32.const 1000 memory.copy
        call $msg_reply)"#,
    );
    // 3 consts + fill 100 + 4096 bytes; 3 consts + copy 100 + 1000 bytes
    assert_eq!(cost, ENTRY + 3 + 100 + 4096 + 3 + 100 + 1000 + REPLY);
}

#[test]
fn system_api_calls_charge_overhead_plus_bytes() {
    // msg_reply_data_append(0, 300): 2 consts + call 5 + 500 + 50 per byte sent out
    let cost = cost_of(
        r#"(func (export "canister_update f")
        i32.const 0 i32.const 300 call $append
        call $msg_reply)"#,
    );
    assert_eq!(cost, ENTRY + 2 + 5 + 500 + 50 * 300 + REPLY);
    // stable64_grow(1): const + call + 100; stable64_write(0, 0, 10): 3 consts + call + 20 + 10
    // bytes + 1000 for the newly dirtied 4 KiB page
    let cost = cost_of(
        r#"(func (export "canister_update f")
        i64.const 1 call $stable_grow drop
        i64.const 0 i64.const 0 i64.const 10 call $stable_write
        call $msg_reply)"#,
    );
    assert_eq!(cost, ENTRY + (1 + 5 + 100 + 1) + (3 + 5 + 20 + 10 + 1000) + REPLY);
}

/// What a message sends out of the sandbox costs 50 instructions a byte on the IC
/// (`BYTE_TRANSMISSION_COST_FACTOR`): a reject's message and a call's argument as a reply's bytes.
#[test]
fn bytes_sent_out_cost_50_each() {
    // msg_reject(0, 40): 2 consts + call 5 + 500 + 50 × 40
    assert_eq!(
        cost_of_any(r#"(func (export "canister_update f") i32.const 0 i32.const 40 call $reject)"#),
        ENTRY + 2 + 5 + 500 + 2_000
    );
    // call_new to a 10-byte callee and a 1-byte method: 8 consts + call 5 + 1 500 + 11 bytes;
    // call_data_append(0, 100): 2 consts + call 5 + 500 + 50 × 100. The call is never performed.
    let cost = cost_of(
        r#"(func (export "canister_update f")
        i32.const 0 i32.const 10 i32.const 0 i32.const 1 i32.const 0 i32.const 0 i32.const 0 i32.const 0
        call $call_new
        i32.const 0 i32.const 100 call $call_append
        call $msg_reply)"#,
    );
    assert_eq!(cost, ENTRY + (8 + 5 + 1_500 + 11) + (2 + 5 + 500 + 5_000) + REPLY);
    // trap(0, 10): 2 consts + call 5 + 500 + 10 bytes read + the log record (2 + 50 per byte).
    assert_eq!(
        cost_of_any(r#"(func (export "canister_update f") i32.const 0 i32.const 10 call $trap)"#),
        ENTRY + 2 + 5 + 500 + 10 + 520
    );
}

/// A module that burns `per_iteration` instructions per loop iteration through memory.fill
/// (cheap to simulate, priced per byte) in `export`, forever.
fn burner(export: &str, extra: &str) -> Vec<u8> {
    module(
        &format!(
            r#"(memory 0) (func (export "{export}")
        (loop $l i32.const 0 i32.const 0 i32.const 1048576 memory.fill br $l)) {extra}"#
        )
        .replace("(memory 2) (memory 0)", "(memory 17)"),
    )
}

#[test]
fn update_traps_at_40_billion_instructions() {
    let mut r = LocalReplica::new();
    let wasm = wat::parse_str(format!(
        r#"(module {IMPORTS} (memory 17) (func (export "canister_update f")
        (loop $l i32.const 0 i32.const 0 i32.const 1048576 memory.fill br $l)))"#
    ))
    .unwrap();
    let _ = burner;
    let id = install(&mut r, &wasm);
    let (result, report) = r.update_call(id, Principal::anonymous(), "f", vec![]);
    let err = result.unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError);
    assert!(err.message.contains("exceeded the limit of 40000000000 instructions"), "{}", err.message);
    // The message ran right up to the limit, and no further.
    assert_eq!(report.instructions(), 40_000_000_000);
    assert_eq!(report.rounds(), 20);
}

#[test]
fn query_and_inspect_limits() {
    let mut r = LocalReplica::new();
    let wasm = wat::parse_str(format!(
        r#"(module {IMPORTS} (memory 17)
        (func $burn (loop $l i32.const 0 i32.const 0 i32.const 1048576 memory.fill br $l))
        (func (export "canister_query q") call $burn)
        (func (export "canister_update u") call $msg_reply)
        (func (export "canister_inspect_message") call $burn))"#
    ))
    .unwrap();
    let id = install(&mut r, &wasm);
    let (result, report) = r.query_call(id, Principal::anonymous(), "q", vec![]);
    assert!(result.unwrap_err().message.contains("limit of 5000000000 instructions"));
    assert_eq!(report.instructions(), 5_000_000_000);
    let (result, _) = r.update_call(id, Principal::anonymous(), "u", vec![]);
    let err = result.unwrap_err();
    assert!(err.message.contains("inspect_message") && err.message.contains("200000000"), "{}", err.message);
}

#[test]
fn ingress_payload_over_2_mib_is_refused_and_reply_over_2_mib_traps() {
    let mut r = LocalReplica::new();
    let wasm = wat::parse_str(format!(
        r#"(module {IMPORTS} (memory 64)
        (func (export "canister_update f") call $msg_reply)
        (func (export "canister_update big") i32.const 0 i32.const 2097153 call $append call $msg_reply))"#
    ))
    .unwrap();
    let id = install(&mut r, &wasm);
    // The limit covers the whole message: argument, method name ("f") and envelope.
    let largest = 2 * 1024 * 1024 - 1 - ic_replica::fees::INGRESS_ENVELOPE_BYTES as usize;
    let (ok, _) = r.update_call(id, Principal::anonymous(), "f", vec![0; largest]);
    assert!(ok.is_ok());
    let (too_big, _) = r.update_call(id, Principal::anonymous(), "f", vec![0; largest + 1]);
    assert!(too_big.unwrap_err().message.contains("exceeds the ingress limit"));
    let (reply, _) = r.update_call(id, Principal::anonymous(), "big", vec![]);
    assert!(reply.unwrap_err().message.contains("cannot be larger than 2097152"));
}

/// Counter in heap (address 0) and stable memory (offset 0): `inc` adds one to both and
/// replies; `inc_trap` adds one to both, then traps; `get` replies with both (8 bytes).
fn counter_module() -> Vec<u8> {
    module(
        r#"
      (data (i32.const 0) "\00\00\00\00")
      (func $bump
        i32.const 0 i32.const 0 i32.load i32.const 1 i32.add i32.store
        (if (i64.eqz (call $stable_grow (i64.const 0))) (then (drop (call $stable_grow (i64.const 1)))))
        i64.const 4 i64.const 0 i64.const 4 call $stable_read
        i32.const 4 i32.const 4 i32.load i32.const 1 i32.add i32.store
        i64.const 0 i64.const 4 i64.const 4 call $stable_write)
      (func (export "canister_update inc") call $bump call $msg_reply)
      (func (export "canister_update inc_trap") call $bump i32.const 0 i32.const 4 call $trap)
      (func (export "canister_query get")
        i64.const 4 i64.const 0 i64.const 4 call $stable_read
        i32.const 0 i32.const 8 call $append call $msg_reply)
      (func (export "canister_query grow_then_trap")
        i32.const 100 memory.grow drop i32.const 0 i32.const 4 call $trap)
      (func (export "canister_update grow_trap")
        i32.const 100 memory.grow drop call $bump i32.const 0 i32.const 4 call $trap)
    "#,
    )
}

fn counters(r: &mut LocalReplica, id: Principal) -> (u32, u32) {
    let bytes = r.query_call(id, Principal::anonymous(), "get", vec![]).0.unwrap();
    (u32::from_le_bytes(bytes[0..4].try_into().unwrap()), u32::from_le_bytes(bytes[4..8].try_into().unwrap()))
}

#[test]
fn a_trap_rolls_back_heap_and_stable_memory_and_keeps_earlier_state() {
    let mut r = LocalReplica::new();
    let id = install(&mut r, &counter_module());
    for _ in 0..3 {
        r.update_call(id, Principal::anonymous(), "inc", vec![]).0.unwrap();
    }
    assert_eq!(counters(&mut r, id), (3, 3));
    let (err, _) = r.update_call(id, Principal::anonymous(), "inc_trap", vec![]);
    assert!(err.unwrap_err().message.contains("ic0.trap"));
    assert_eq!(counters(&mut r, id), (3, 3));
    // A trap after the heap grew: the heap size is rolled back too.
    let heap = r.heap_bytes(id);
    r.update_call(id, Principal::anonymous(), "grow_trap", vec![]).0.unwrap_err();
    assert_eq!(r.heap_bytes(id), heap);
    assert_eq!(counters(&mut r, id), (3, 3));
    r.update_call(id, Principal::anonymous(), "inc", vec![]).0.unwrap();
    assert_eq!(counters(&mut r, id), (4, 4));
}

#[test]
fn queries_never_persist_state() {
    let mut r = LocalReplica::new();
    let id = install(&mut r, &counter_module());
    r.update_call(id, Principal::anonymous(), "inc", vec![]).0.unwrap();
    let heap = r.heap_bytes(id);
    r.query_call(id, Principal::anonymous(), "grow_then_trap", vec![]).0.unwrap_err();
    assert_eq!(r.heap_bytes(id), heap);
    assert_eq!(counters(&mut r, id), (1, 1));
}

#[test]
fn stable_memory_survives_an_upgrade_and_the_heap_resets() {
    let mut r = LocalReplica::new();
    let controller = Principal::from_slice(&[7; 29]);
    let id = install(&mut r, &counter_module());
    r.update_call(id, Principal::anonymous(), "inc", vec![]).0.unwrap();
    r.update_call(id, Principal::anonymous(), "inc", vec![]).0.unwrap();
    assert_eq!(counters(&mut r, id), (2, 2));
    // Only controllers upgrade.
    assert!(r.upgrade_canister(id, &counter_module(), vec![], Principal::anonymous()).is_err());
    r.upgrade_canister(id, &counter_module(), vec![], controller).unwrap();
    assert_eq!(counters(&mut r, id), (0, 2));
}

#[test]
fn performance_counter_0_resets_after_an_await_and_1_does_not() {
    // `f` burns 10,000 fill-bytes, then calls its own `noop`; the reply callback replies with
    // performance_counter(0) and (1) as measured at its start.
    let wasm = module(
        r#"
      (type $cb (func (param i32)))
      (table 1 funcref) (elem (i32.const 0) $on_reply)
      (func (export "canister_update noop") call $msg_reply)
      (func (export "canister_update f")
        i32.const 20000 i32.const 0 i32.const 10000 memory.fill
        i32.const 100 i32.const 0 call $self_size call $self_copy
        i32.const 100 call $self_size i32.const 200 i32.const 4 i32.const 0 i32.const 0 i32.const 0 i32.const 0 call $call_new
        call $call_perform drop)
      (data (i32.const 200) "noop")
      (func $on_reply (param i32)
        i32.const 300 i32.const 0 call $perf i64.store
        i32.const 308 i32.const 1 call $perf i64.store
        i32.const 300 i32.const 16 call $append call $msg_reply)
    "#,
    );
    let mut r = LocalReplica::new();
    let id = install(&mut r, &wasm);
    let (result, report) = r.update_call(id, Principal::anonymous(), "f", vec![]);
    let bytes = result.expect("reply from the callback");
    let counter0 = u64::from_le_bytes(bytes[0..8].try_into().unwrap());
    let counter1 = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    // The callback is a new message: its counter 0 covers only a few instructions, while the
    // call-context counter includes the first message's >10,000.
    assert!(counter0 < 1_000, "counter 0 after the await: {counter0}");
    assert!(counter1 > 10_000 + counter0, "counter 1: {counter1}");
    assert_eq!(report.message_count(), 3, "{:?}", report.messages);
}

#[test]
fn modules_the_ic_refuses_are_refused_at_install() {
    let controller = Principal::from_slice(&[7; 29]);
    let refused = |wat_text: &str| {
        let mut r = LocalReplica::new();
        let id = r.create_canister(controller);
        r.install_canister(id, &wat::parse_str(wat_text).unwrap(), vec![], controller).unwrap_err().message
    };
    let e = refused(r#"(module (import "env" "f" (func)) (memory 1))"#);
    assert!(e.contains("Module imports function 'f' from 'env' that is not exported by the runtime"), "{e}");
    let e = refused(r#"(module (import "ic0" "no_such_call" (func)) (memory 1))"#);
    assert!(e.contains("not exported by the runtime"), "{e}");
    let e = refused(r#"(module (memory 1) (memory 1))"#);
    assert!(e.contains("memor"), "{e}");
    let e = refused(
        r#"(module (memory 1) (func (export "x") (param v128 v128 v128) (result v128)
        local.get 0 local.get 1 local.get 2 f32x4.relaxed_madd))"#,
    );
    assert!(e.contains("relaxed"), "{e}");
    let e = refused(r#"(module (memory 1) (func (export "canister_bogus")))"#);
    assert!(e.contains("Exporting reserved function 'canister_bogus' with \"canister_\" prefix"), "{e}");
    // gzip-compressed modules are accepted.
    let mut r = LocalReplica::new();
    let id = r.create_canister(controller);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &counter_module()).unwrap();
    r.install_canister(id, &gz.finish().unwrap(), vec![], controller).unwrap();
}

#[test]
fn global_timers_fire_on_tick_after_time_advances() {
    // init arms the timer 1 s ahead; the timer handler writes 1 to heap address 0; `get` replies it.
    let wasm = wat::parse_str(format!(
        r#"(module {IMPORTS}
        (import "ic0" "global_timer_set" (func $timer_set (param i64) (result i64)))
        (import "ic0" "time" (func $time (result i64)))
        (memory 1)
        (func (export "canister_init") call $time i64.const 1000000000 i64.add call $timer_set drop)
        (func (export "canister_global_timer") i32.const 0 i32.const 1 i32.store)
        (func (export "canister_query get") i32.const 0 i32.const 4 call $append call $msg_reply))"#
    ))
    .unwrap();
    let mut r = LocalReplica::new();
    let id = install(&mut r, &wasm);
    let fired =
        |r: &mut LocalReplica| r.query_call(id, Principal::anonymous(), "get", vec![]).0.unwrap() == vec![1, 0, 0, 0];
    r.tick();
    assert!(!fired(&mut r), "not due yet");
    r.advance_time(std::time::Duration::from_millis(999));
    r.tick();
    assert!(!fired(&mut r), "still not due");
    r.advance_time(std::time::Duration::from_millis(1));
    let report = r.tick();
    assert!(fired(&mut r));
    assert_eq!(report.message_count(), 1);
    assert_eq!(report.messages[0].kind, ic_replica::MessageKind::GlobalTimer);
}

#[test]
fn install_traps_at_300_billion_instructions_and_leaves_the_canister_empty() {
    let controller = Principal::from_slice(&[7; 29]);
    let wasm = wat::parse_str(format!(
        r#"(module {IMPORTS} (memory 17) (func (export "canister_init")
        (loop $l i32.const 0 i32.const 0 i32.const 1048576 memory.fill br $l))
        (func (export "canister_update f") call $msg_reply))"#
    ))
    .unwrap();
    let mut r = LocalReplica::new();
    let id = r.create_canister(controller);
    let err = r.install_canister(id, &wasm, vec![], controller).unwrap_err();
    assert!(err.message.contains("limit of 300000000000 instructions"), "{}", err.message);
    assert!(r.module_hash(id).is_none(), "a failed install leaves no code");
    let (call, _) = r.update_call(id, Principal::anonymous(), "f", vec![]);
    assert!(call.unwrap_err().message.contains("no code installed"));
}
