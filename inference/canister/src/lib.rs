//! The inference canister: endpoints only. Each delegates to `inference-engine` or to a module
//! of this crate that adapts the engine to the IC.

mod api;
mod lifecycle;

pub use api::*;

#[ic_cdk::query]
fn platform_report() -> PlatformInfo {
    PlatformInfo::from(inference_engine::platform::PlatformReport::current())
}

/// Runs the engine's fixed self-test graph through tract and reports how much it cost.
#[ic_cdk::update]
fn self_test() -> Result<SelfTestReport, EngineError> {
    api::self_test_report()
}

ic_cdk::export_candid!();
