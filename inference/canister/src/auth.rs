//! Roles: controllers are admins; admins grant maintainers and allowed callers.

use candid::Principal;
use inference_engine::access::List;

use crate::state;

pub fn is_admin(who: Principal) -> bool {
    who != Principal::anonymous() && ic_cdk::api::is_controller(&who)
}

pub fn is_maintainer(who: Principal) -> bool {
    is_admin(who) || state::with(|s| s.access.contains(List::Maintainers, who))
}

/// Whether `who` may run inference: an allowed caller (an agency canister, or a user principal
/// an admin allowed explicitly).
pub fn may_infer(who: Principal) -> bool {
    state::with(|s| s.access.contains(List::Callers, who))
}
