//! The canister's state: stable structures (survive upgrades) and heap caches (rebuilt lazily).

use std::cell::RefCell;
use std::collections::BTreeMap;

use candid::{CandidType, Deserialize};
use ic_stable_structures::{DefaultMemoryImpl, StableCell};
use inference_engine::access::Access;
use inference_engine::model::LoadedModel;
use inference_engine::registry::Registry;
use inference_engine::stable::{self, Mem, StableLayout};

/// Settings admins can change; kept in stable memory.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Instructions an inference may use in one message before yielding to a new one. The
    /// IC's limit is 40 B; the default keeps a 10 B margin for the largest node and the reply.
    pub update_budget: u64,
    /// The same for queries (limit 5 B).
    pub query_budget: u64,
    /// Inference jobs in flight at once; beyond it callers get `Busy`.
    pub max_jobs: u32,
    /// Largest input accepted, in elements.
    pub max_input_elements: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config { update_budget: 30_000_000_000, query_budget: 4_000_000_000, max_jobs: 32, max_input_elements: 4 << 20 }
    }
}
inference_engine::candid_storable!(Config);

pub struct State {
    pub layout: StableLayout<DefaultMemoryImpl>,
    pub registry: Registry<DefaultMemoryImpl>,
    pub access: Access<DefaultMemoryImpl>,
    pub config: StableCell<Config, Mem<DefaultMemoryImpl>>,
    /// Polling jobs and their results (`submit` / `status` / `result` / `cancel`).
    pub jobs: crate::jobs::Jobs,
    /// Optimised plans by (model, version), built on activation or on first use after an upgrade.
    pub plans: BTreeMap<(String, u32), LoadedModel>,
    /// Inference jobs now in flight.
    pub jobs_in_flight: u32,
    /// Measured instructions of the last complete inference per (model, version).
    pub measured: BTreeMap<(String, u32), u64>,
}

impl State {
    fn open() -> State {
        let layout = StableLayout::init(DefaultMemoryImpl::default());
        State {
            registry: Registry::init(&layout),
            access: Access::init(&layout),
            config: StableCell::init(layout.memory(stable::CONFIG), Config::default()),
            jobs: crate::jobs::Jobs::init(&layout),
            layout,
            plans: BTreeMap::new(),
            jobs_in_flight: 0,
            measured: BTreeMap::new(),
        }
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
