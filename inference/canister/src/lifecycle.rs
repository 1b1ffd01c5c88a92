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

use inference_api::InitArgs;

fn start(args: Option<InitArgs>) {
    run_static_constructors();
    let kernels = args.and_then(|a| a.kernels).unwrap_or_default();
    if let Err(e) = inference_engine::platform::select_kernels(kernels) {
        ic_cdk::trap(format!("kernels {kernels:?}: {e}"));
    }
    crate::state::open();
    crate::certified::refresh_models();
}

#[ic_cdk::init]
fn init(args: Option<InitArgs>) {
    start(args);
}

/// Stable structures reopen over the same stable memory; plans are rebuilt lazily. Polling jobs
/// that were running lost their task with the old heap: they are marked interrupted.
#[ic_cdk::post_upgrade]
fn post_upgrade(args: Option<InitArgs>) {
    start(args);
    crate::state::with_mut(|s| s.jobs.interrupt_running(ic_cdk::api::time()));
}

/// Refuses an upgrade while any call of this canister to itself awaits its reply (a job's
/// continuation, a plan build): ic-cdk keeps each awaiting future behind a pointer into the
/// heap, which the new module replaces, so its reply would run undefined code. Stopping the
/// canister first ends every job (`Stopping`) and waits for the replies; then upgrade and start.
/// Otherwise the callers' quota usage, kept on the heap, is saved for the new module.
#[ic_cdk::pre_upgrade]
fn pre_upgrade() {
    let awaiting = crate::state::with(|s| s.awaiting);
    if awaiting > 0 {
        ic_cdk::trap(format!(
            "{awaiting} calls of this canister await replies (jobs or plan builds in flight): \
             stop the canister first, then upgrade it, then start it"
        ));
    }
    crate::state::with_mut(|s| s.usage.save());
}
