//! Canister lifecycle: init and upgrade hooks.
//!
//! tract registers its kernels through static constructors (`inventory`). In a
//! `wasm32-unknown-unknown` cdylib, wasm-ld wraps *every export* in a call to
//! `__wasm_call_ctors` unless the program references that function itself, which would re-run
//! all constructors at the start of every message and bill their instructions each time. We
//! reference it and run the constructors exactly once per heap lifetime: in `init` and in
//! `post_upgrade` (an upgrade starts a fresh heap). The heap, and with it the registry the
//! constructors built, persists between messages.

#[cfg(target_arch = "wasm32")]
extern "C" {
    fn __wasm_call_ctors();
}

fn run_static_constructors() {
    // SAFETY: called once per fresh heap, before any other code of this module runs, which is
    // the contract the linker's own wrapper would have honoured.
    #[cfg(target_arch = "wasm32")]
    unsafe {
        __wasm_call_ctors()
    };
}

#[ic_cdk::init]
fn init() {
    run_static_constructors();
    crate::state::open();
}

/// Stable structures reopen over the same stable memory; plans are rebuilt lazily. Polling jobs
/// that were running lost their task with the old heap: they are marked interrupted.
#[ic_cdk::post_upgrade]
fn post_upgrade() {
    run_static_constructors();
    crate::state::open();
    crate::state::with_mut(|s| s.jobs.interrupt_running(ic_cdk::api::time()));
}
