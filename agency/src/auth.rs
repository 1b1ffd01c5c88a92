//! Every caller rule of the agency, in one place. Controllers are admins; admins grant the user
//! role (may call `decide`) and the reader role (may read decisions, as admins may). The
//! anonymous principal holds no role. Each endpoint calls one of these rules first;
//! [`accepts_ingress`] applies the same rules as a filter before a message is accepted.

use agency_api::{AgencyError, AgencyRole};
use candid::Principal;

use crate::state;

fn require(caller: Principal, needs: AgencyRole, holds: bool) -> Result<(), AgencyError> {
    if holds && caller != Principal::anonymous() {
        Ok(())
    } else {
        Err(AgencyError::NotAuthorized { caller, needs })
    }
}

fn is_admin(caller: Principal) -> bool {
    caller != Principal::anonymous() && ic_cdk::api::is_controller(&caller)
}

/// A controller of this canister.
pub fn admin(caller: Principal) -> Result<(), AgencyError> {
    require(caller, AgencyRole::Admin, is_admin(caller))
}

/// A user an admin allowed to submit documents.
pub fn user(caller: Principal) -> Result<(), AgencyError> {
    require(caller, AgencyRole::User, state::holds(AgencyRole::User, caller))
}

/// A reader an admin allowed to read decisions, or an admin.
pub fn reader(caller: Principal) -> Result<(), AgencyError> {
    require(caller, AgencyRole::Reader, is_admin(caller) || state::holds(AgencyRole::Reader, caller))
}

/// Whether an ingress message may enter. A filter run on one node, not a boundary: every method
/// checks its rule again (and queries called as queries never pass through here).
pub fn accepts_ingress(method: &str, caller: Principal) -> bool {
    match method {
        "decide" | "decide_texts" => user(caller).is_ok(),
        "decision" | "decisions" | "settings" => reader(caller).is_ok(),
        _ => admin(caller).is_ok(),
    }
}
