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
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum List {
    Maintainers,
    Callers,
}

impl<M: Memory> Access<M> {
    pub fn init(layout: &StableLayout<M>) -> Self {
        Access {
            maintainers: StableBTreeMap::init(layout.memory(stable::MAINTAINERS)),
            callers: StableBTreeMap::init(layout.memory(stable::CALLERS)),
        }
    }

    fn list(&self, list: List) -> &StableBTreeMap<PrincipalKey, (), Mem<M>> {
        match list {
            List::Maintainers => &self.maintainers,
            List::Callers => &self.callers,
        }
    }

    /// Adds `who` to a list; the anonymous principal is refused.
    pub fn grant(&mut self, list: List, who: Principal) -> Result<(), RoleError> {
        if who == Principal::anonymous() {
            return Err(RoleError::AnonymousPrincipal);
        }
        let key = PrincipalKey(who.as_slice().to_vec());
        match list {
            List::Maintainers => self.maintainers.insert(key, ()),
            List::Callers => self.callers.insert(key, ()),
        };
        Ok(())
    }

    pub fn revoke(&mut self, list: List, who: Principal) {
        let key = PrincipalKey(who.as_slice().to_vec());
        match list {
            List::Maintainers => self.maintainers.remove(&key),
            List::Callers => self.callers.remove(&key),
        };
    }

    pub fn contains(&self, list: List, who: Principal) -> bool {
        who != Principal::anonymous() && self.list(list).contains_key(&PrincipalKey(who.as_slice().to_vec()))
    }

    pub fn members(&self, list: List) -> Vec<Principal> {
        self.list(list).iter().map(|e| Principal::from_slice(&e.key().0)).collect()
    }
}
