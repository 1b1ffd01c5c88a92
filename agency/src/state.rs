//! The agency's state: settings, role lists and decisions in stable memory (each in its own
//! virtual memory, named below), and the ids being decided (on the heap, see [`crate::store`]).

use std::cell::RefCell;

use agency_api::{AgencyError, AgencyRole, Settings};
use candid::Principal;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap, StableCell};

use crate::store::Store;

type Mem = VirtualMemory<DefaultMemoryImpl>;

const SETTINGS_MEMORY: MemoryId = MemoryId::new(0);
const DECISIONS_MEMORY: MemoryId = MemoryId::new(1);
const USERS_MEMORY: MemoryId = MemoryId::new(2);
const READERS_MEMORY: MemoryId = MemoryId::new(3);

thread_local! {
    static MEMORY: MemoryManager<DefaultMemoryImpl> = MemoryManager::init(DefaultMemoryImpl::default());
    static SETTINGS: RefCell<StableCell<Settings, Mem>> = RefCell::new(StableCell::init(
        MEMORY.with(|m| m.get(SETTINGS_MEMORY)),
        Settings { inference_canister: Principal::anonymous(), model: String::new(), max_decisions: None, text_model: None, text_canister: None }));
    static STORE: RefCell<Store<Mem>> = RefCell::new(Store::init(MEMORY.with(|m| m.get(DECISIONS_MEMORY))));
    static USERS: RefCell<StableBTreeMap<Principal, (), Mem>> =
        RefCell::new(StableBTreeMap::init(MEMORY.with(|m| m.get(USERS_MEMORY))));
    static READERS: RefCell<StableBTreeMap<Principal, (), Mem>> =
        RefCell::new(StableBTreeMap::init(MEMORY.with(|m| m.get(READERS_MEMORY))));
}

pub fn settings() -> Settings {
    SETTINGS.with(|s| s.borrow().get().clone())
}

pub fn set_settings(settings: Settings) {
    SETTINGS.with(|s| s.borrow_mut().set(settings));
}

pub fn with_store<R>(f: impl FnOnce(&mut Store<Mem>) -> R) -> R {
    STORE.with(|s| f(&mut s.borrow_mut()))
}

fn list<R>(role: AgencyRole, f: impl FnOnce(&mut StableBTreeMap<Principal, (), Mem>) -> R) -> R {
    match role {
        AgencyRole::User => USERS.with(|l| f(&mut l.borrow_mut())),
        AgencyRole::Reader => READERS.with(|l| f(&mut l.borrow_mut())),
        AgencyRole::Admin => unreachable!("admins are the controllers, not a list"),
    }
}

/// Whether `who` is on the `role` list (users or readers).
pub fn holds(role: AgencyRole, who: Principal) -> bool {
    list(role, |l| l.contains_key(&who))
}

/// Puts `who` on the `role` list or takes it off.
pub fn set_role(role: AgencyRole, who: Principal, allowed: bool) -> Result<(), AgencyError> {
    if who == Principal::anonymous() {
        return Err(AgencyError::AnonymousPrincipal);
    }
    list(role, |l| if allowed { l.insert(who, ()) } else { l.remove(&who) });
    Ok(())
}

pub fn holders(role: AgencyRole) -> Vec<Principal> {
    list(role, |l| l.keys().collect())
}
