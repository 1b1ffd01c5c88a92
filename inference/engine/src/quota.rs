//! Per-caller instruction quotas: what each caller's inferences used in its current window,
//! charged message by message, so that one agency cannot spend the canister's cycles (and every
//! other agency's share of its messages) on its own.
//!
//! The usage is charged on the heap (a stable-map write at every message of every inference
//! showed as +1–2 % on the small tabular benchmarks) and saved to stable memory before an
//! upgrade ([`Usage::save`], from `pre_upgrade`), so an upgrade gives no one a fresh window. A
//! query can be refused once the quota is spent, but what it used cannot be recorded (the IC
//! discards a query's state changes).

use std::collections::BTreeMap;

use candid::Principal;
use ic_stable_structures::{Memory, StableBTreeMap};

use crate::stable::{self, Mem, PrincipalKey, StableLayout};

/// A quota: at most `instructions` per window of `window_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub instructions: u64,
    pub window_ns: u64,
}

/// Each caller's (window start, instructions used in it): live on the heap, saved in a fixed
/// 16 bytes a caller.
pub struct Usage<M: Memory> {
    windows: BTreeMap<Principal, (u64, u64)>,
    saved: StableBTreeMap<PrincipalKey, (u64, u64), Mem<M>>,
}

impl<M: Memory> Usage<M> {
    /// Opens the saved usage (empty on a fresh canister, and on one saved before layout 3).
    pub fn init(layout: &StableLayout<M>) -> Self {
        let saved: StableBTreeMap<PrincipalKey, (u64, u64), Mem<M>> =
            StableBTreeMap::init(layout.memory(stable::QUOTA_USAGE));
        let windows = saved.iter().map(|e| (Principal::from_slice(&e.key().0), e.value())).collect();
        Usage { windows, saved }
    }

    /// Writes the live usage to stable memory (before an upgrade).
    pub fn save(&mut self) {
        self.saved.clear_new();
        for (caller, window) in &self.windows {
            self.saved.insert(key(*caller), *window);
        }
    }

    /// `Err(nanoseconds until the window ends)` while `caller`'s quota for its current window
    /// is spent.
    pub fn check(&self, caller: Principal, quota: Quota, now_ns: u64) -> Result<(), u64> {
        match self.windows.get(&caller).copied() {
            Some((start, used)) if now_ns < start.saturating_add(quota.window_ns) && used >= quota.instructions => {
                Err(start + quota.window_ns - now_ns)
            }
            _ => Ok(()),
        }
    }

    /// Adds `instructions` to what `caller` used in its current window (a new window starts when
    /// the last one is over).
    pub fn charge(&mut self, caller: Principal, instructions: u64, quota: Quota, now_ns: u64) {
        let window = self.windows.entry(caller).or_insert((now_ns, 0));
        if now_ns >= window.0.saturating_add(quota.window_ns) {
            *window = (now_ns, 0);
        }
        window.1 = window.1.saturating_add(instructions);
    }

    /// What `caller` used in the window that began at the returned time, if it ever used any.
    pub fn of(&self, caller: Principal) -> Option<(u64, u64)> {
        self.windows.get(&caller).copied()
    }
}

fn key(caller: Principal) -> PrincipalKey {
    PrincipalKey(caller.as_slice().to_vec())
}
