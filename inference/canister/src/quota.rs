//! Per-caller instruction quotas ([`inference_engine::quota`]) under the configured quota and
//! window, answered with a typed `QuotaExceeded`.

use candid::Principal;
use inference_api::InferenceError;
use inference_engine::quota::Quota;

use crate::state;

fn quota(s: &state::State) -> Quota {
    let config = s.config.get();
    Quota { instructions: config.instruction_quota_per_caller, window_ns: config.quota_window_ns }
}

/// Refuses `caller` while its quota for the current window is spent.
pub fn check(caller: Principal, now_ns: u64) -> Result<(), InferenceError> {
    state::with(|s| s.usage.check(caller, quota(s), now_ns))
        .map_err(|retry_after_ns| InferenceError::QuotaExceeded { retry_after_ns })
}

/// Adds `instructions` to what `caller` used in the current window.
pub fn charge(caller: Principal, instructions: u64, now_ns: u64) {
    state::with_mut(|s| {
        let quota = quota(s);
        s.usage.charge(caller, instructions, quota, now_ns)
    });
}
