//! Who may do what. Controllers are admins (the shell asks the IC); admins grant the maintainer
//! role and the caller allow-list; maintainers manage models; allowed callers classify.
//! The anonymous principal can hold no role.

use candid::Principal;
use ic_stable_structures::{Memory, StableBTreeMap};
use inference_api::RoleError;

use crate::stable::{self, Mem, PrincipalKey, StableLayout};

pub struct Access<M: Memory> {
    maintainers: StableBTreeMap<PrincipalKey, (), Mem<M>>,
    callers: StableBTreeMap<PrincipalKey, (), Mem<M>>,
    peers: StableBTreeMap<PrincipalKey, (), Mem<M>>,
    fronts: StableBTreeMap<PrincipalKey, (), Mem<M>>,
    auditors: StableBTreeMap<PrincipalKey, (), Mem<M>>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum List {
    Maintainers,
    Callers,
    /// The other members of this canister's pool: they read its registry and copy versions.
    Peers,
    /// Text front canisters: they tokenize for allowed callers and run token endpoints on their
    /// behalf.
    Fronts,
    /// They read the audit log.
    Auditors,
}

impl<M: Memory> Access<M> {
    pub fn init(layout: &StableLayout<M>) -> Self {
        Access {
            maintainers: StableBTreeMap::init(layout.memory(stable::MAINTAINERS)),
            callers: StableBTreeMap::init(layout.memory(stable::CALLERS)),
            peers: StableBTreeMap::init(layout.memory(stable::PEERS)),
            fronts: StableBTreeMap::init(layout.memory(stable::FRONTS)),
            auditors: StableBTreeMap::init(layout.memory(stable::AUDITORS)),
        }
    }

    fn list(&self, list: List) -> &StableBTreeMap<PrincipalKey, (), Mem<M>> {
        match list {
            List::Maintainers => &self.maintainers,
            List::Callers => &self.callers,
            List::Peers => &self.peers,
            List::Fronts => &self.fronts,
            List::Auditors => &self.auditors,
        }
    }

    fn list_mut(&mut self, list: List) -> &mut StableBTreeMap<PrincipalKey, (), Mem<M>> {
        match list {
            List::Maintainers => &mut self.maintainers,
            List::Callers => &mut self.callers,
            List::Peers => &mut self.peers,
            List::Fronts => &mut self.fronts,
            List::Auditors => &mut self.auditors,
        }
    }

    /// Makes a list exactly `members`; nothing changes when one of them is anonymous.
    pub fn replace(&mut self, list: List, members: &[Principal]) -> Result<(), RoleError> {
        if members.contains(&Principal::anonymous()) {
            return Err(RoleError::AnonymousPrincipal);
        }
        for gone in self.members(list) {
            self.revoke(list, gone);
        }
        for &who in members {
            self.grant(list, who)?;
        }
        Ok(())
    }

    /// Adds `who` to a list; the anonymous principal is refused.
    pub fn grant(&mut self, list: List, who: Principal) -> Result<(), RoleError> {
        if who == Principal::anonymous() {
            return Err(RoleError::AnonymousPrincipal);
        }
        self.list_mut(list).insert(PrincipalKey(who.as_slice().to_vec()), ());
        Ok(())
    }

    pub fn revoke(&mut self, list: List, who: Principal) {
        self.list_mut(list).remove(&PrincipalKey(who.as_slice().to_vec()));
    }

    pub fn contains(&self, list: List, who: Principal) -> bool {
        who != Principal::anonymous() && self.list(list).contains_key(&PrincipalKey(who.as_slice().to_vec()))
    }

    pub fn members(&self, list: List) -> Vec<Principal> {
        self.list(list).iter().map(|e| Principal::from_slice(&e.key().0)).collect()
    }
}
