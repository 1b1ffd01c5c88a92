//! The canister's state: stable structures (survive upgrades) and heap caches (rebuilt lazily).

use std::cell::RefCell;
use std::collections::BTreeMap;

use candid::Principal;
use ic_stable_structures::{DefaultMemoryImpl, StableCell};
use inference_api::{CatchUp, Config};
use inference_engine::access::Access;
use inference_engine::audit::AuditLog;
use inference_engine::jobs::{IdKey, Jobs};
use inference_engine::quota::Usage;
use inference_engine::registry::Registry;
use inference_engine::stable::{self, Mem, StableLayout};

use crate::plans::PlanCache;

pub struct State {
    pub layout: StableLayout<DefaultMemoryImpl>,
    pub registry: Registry<DefaultMemoryImpl>,
    pub access: Access<DefaultMemoryImpl>,
    /// The audit log ([`crate::audit`]).
    pub audit: AuditLog<DefaultMemoryImpl>,
    /// What logging has cost since this heap began.
    pub audit_stats: crate::audit::Stats,
    pub config: StableCell<Config, Mem<DefaultMemoryImpl>>,
    /// Polling jobs and their results (`submit` / `status` / `result` / `cancel`).
    pub jobs: Jobs<DefaultMemoryImpl>,
    /// The secret job ids are derived from, drawn by the first `submit` after an install or
    /// upgrade ([`crate::jobs`]).
    pub job_id_key: Option<IdKey>,
    /// Optimised plans by (model, version), built on activation or on first use after an
    /// upgrade, within the configured heap budget.
    pub plans: PlanCache,
    /// Inference jobs now in flight, in all and per caller.
    pub jobs_in_flight: u32,
    pub jobs_per_caller: BTreeMap<Principal, u32>,
    /// Calls of this canister to itself (continuations, plan builds) awaiting their replies:
    /// an upgrade now would leave their callbacks pointing into a heap that no longer exists.
    pub awaiting: u32,
    /// What each caller's inferences used in its current quota window.
    pub usage: Usage<DefaultMemoryImpl>,
    /// Measured instructions of the last complete inference per (model, version).
    pub measured: BTreeMap<(String, u32), u64>,
    /// A catch-up with the pool runs ([`crate::pool`]), and how the last one ended (since this
    /// heap began: an upgrade forgets it).
    pub catching_up: bool,
    pub last_catch_up: Option<CatchUp>,
}

impl State {
    fn open() -> State {
        let layout = StableLayout::init(DefaultMemoryImpl::default());
        State {
            registry: Registry::init(&layout),
            access: Access::init(&layout),
            audit: AuditLog::init(&layout),
            audit_stats: Default::default(),
            config: StableCell::init(layout.memory(stable::CONFIG), Config::default()),
            jobs: Jobs::init(&layout),
            job_id_key: None,
            usage: Usage::init(&layout),
            layout,
            plans: PlanCache::default(),
            jobs_in_flight: 0,
            jobs_per_caller: BTreeMap::new(),
            awaiting: 0,
            measured: BTreeMap::new(),
            catching_up: false,
            last_catch_up: None,
        }
    }

    pub fn config(&self) -> Config {
        self.config.get().clone()
    }
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Opens the state over stable memory (init and post_upgrade).
pub fn open() {
    STATE.with(|s| *s.borrow_mut() = Some(State::open()));
}

pub fn with<R>(f: impl FnOnce(&State) -> R) -> R {
    STATE.with(|s| f(s.borrow().as_ref().expect("state opened in init/post_upgrade")))
}

pub fn with_mut<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(s.borrow_mut().as_mut().expect("state opened in init/post_upgrade")))
}
