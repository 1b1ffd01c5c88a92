//! Per-caller instruction quotas: what each caller's inferences used in the current window,
//! charged message by message, so that one agency cannot spend the canister's cycles (and every
//! other agency's share of its messages) on its own.
//!
//! The usage lives on the heap: an upgrade starts every caller's window afresh. A query can be
//! refused once the quota is spent, but what it used cannot be recorded (the IC discards a
//! query's state changes).

use candid::Principal;
use inference_api::InferenceError;

use crate::state;

#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    window_start_ns: u64,
    instructions: u64,
}

/// Refuses `caller` while its quota for the current window is spent.
pub fn check(caller: Principal, now_ns: u64) -> Result<(), InferenceError> {
    state::with(|s| {
        let (quota, window) = (s.config.get().instruction_quota_per_caller, s.config.get().quota_window_ns);
        match s.usage.get(&caller) {
            Some(u) if now_ns < u.window_start_ns.saturating_add(window) && u.instructions >= quota => {
                Err(InferenceError::QuotaExceeded { retry_after_ns: u.window_start_ns + window - now_ns })
            }
            _ => Ok(()),
        }
    })
}

/// Adds `instructions` to what `caller` used in the current window (a new window starts when
/// the last one is over).
pub fn charge(caller: Principal, instructions: u64, now_ns: u64) {
    state::with_mut(|s| {
        let window = s.config.get().quota_window_ns;
        let usage = s.usage.entry(caller).or_default();
        if now_ns >= usage.window_start_ns.saturating_add(window) {
            *usage = Usage { window_start_ns: now_ns, instructions: 0 };
        }
        usage.instructions = usage.instructions.saturating_add(instructions);
    });
}
