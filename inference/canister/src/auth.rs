//! Every caller rule of the canister, in one place. Controllers are admins; admins grant the
//! maintainer role and the inference allow-list; maintainers manage models; allowed callers run
//! inference. The anonymous principal holds no role. Each endpoint calls one of these rules
//! first; [`accepts_ingress`] applies the same rules as a filter before a message is accepted.

use candid::Principal;
use inference_api::{NotAuthorized, Role};
use inference_engine::access::List;

use crate::state;

fn require(caller: Principal, needs: Role, holds: bool) -> Result<(), NotAuthorized> {
    if holds {
        Ok(())
    } else {
        Err(NotAuthorized { caller, needs })
    }
}

fn is_admin(caller: Principal) -> bool {
    caller != Principal::anonymous() && ic_cdk::api::is_controller(&caller)
}

/// A controller of this canister.
pub fn admin(caller: Principal) -> Result<(), NotAuthorized> {
    require(caller, Role::Admin, is_admin(caller))
}

/// A maintainer, or an admin. The list is asked first: it is the common case, and cheaper than
/// the system call that asks for controllers.
pub fn maintainer(caller: Principal) -> Result<(), NotAuthorized> {
    let holds = state::with(|s| s.access.contains(List::Maintainers, caller)) || is_admin(caller);
    require(caller, Role::Maintainer, holds)
}

/// An allowed caller: an agency canister, or a principal an admin allowed explicitly.
pub fn inference_caller(caller: Principal) -> Result<(), NotAuthorized> {
    require(caller, Role::Caller, state::with(|s| s.access.contains(List::Callers, caller)))
}

/// A member of this canister's pool (set by an admin with `set_pool`).
pub fn peer(caller: Principal) -> Result<(), NotAuthorized> {
    require(caller, Role::Peer, state::with(|s| s.access.contains(List::Peers, caller)))
}

/// A text front canister (granted by an admin with `allow_front`).
pub fn front(caller: Principal) -> Result<(), NotAuthorized> {
    require(caller, Role::Front, state::with(|s| s.access.contains(List::Fronts, caller)))
}

/// An auditor (granted by an admin), or an admin.
pub fn auditor(caller: Principal) -> Result<(), NotAuthorized> {
    let holds = state::with(|s| s.access.contains(List::Auditors, caller)) || is_admin(caller);
    require(caller, Role::Auditor, holds)
}

/// A role list's name in audit entries.
pub fn role_name(list: List) -> &'static str {
    match list {
        List::Maintainers => "maintainer",
        List::Callers => "caller",
        List::Peers => "peer",
        List::Fronts => "front",
        List::Auditors => "auditor",
    }
}

/// Who a token endpoint runs for: the caller itself, an allowed caller; or, for a text front
/// naming `on_behalf_of`, that principal, which must be an allowed caller. Only fronts may name
/// one, so nobody else spends another's quota.
pub fn token_caller(caller: Principal, on_behalf_of: Option<Principal>) -> Result<Principal, NotAuthorized> {
    match on_behalf_of {
        None => inference_caller(caller).map(|()| caller),
        Some(agency) => {
            front(caller)?;
            inference_caller(agency).map(|()| agency)
        }
    }
}

/// Whoever may see which models there are: maintainers (and admins), allowed callers and the
/// pool's members. A refusal names the caller role, the one an outsider would be given.
pub fn reader(caller: Principal) -> Result<(), NotAuthorized> {
    let holds = maintainer(caller).is_ok() || inference_caller(caller).is_ok() || peer(caller).is_ok();
    require(caller, Role::Caller, holds)
}

/// Whoever may read a version's tokenizer: text fronts, maintainers (and admins) and the pool's
/// members.
pub fn tokenizer_reader(caller: Principal) -> Result<(), NotAuthorized> {
    front(caller).or_else(|_| copier(caller))
}

/// Whoever may read a version's bytes: maintainers (and admins) and the pool's members.
pub fn copier(caller: Principal) -> Result<(), NotAuthorized> {
    maintainer(caller).or_else(|_| peer(caller))
}

/// This canister itself: its continuation and plan-building calls.
pub fn this_canister(caller: Principal) -> Result<(), NotAuthorized> {
    require(caller, Role::ThisCanister, caller == ic_cdk::api::canister_self())
}

/// Whether an ingress message may enter: inference only from allowed callers, internal methods
/// never, everything else (management, profiling, the self-test) from maintainers and admins;
/// and only with an argument within the method's size limit ([`crate::args`]). A filter run on
/// one node, not a boundary: every method checks its rule and its argument again.
pub fn accepts_ingress(method: &str, caller: Principal, arg_bytes: usize) -> bool {
    if arg_bytes > crate::args::limit_of(method) {
        return false;
    }
    match method {
        "classify" | "classify_tokens" | "embed_tokens" | "infer" | "submit" | "cancel" => {
            inference_caller(caller).is_ok()
        }
        // Fronts are canisters: they never send ingress.
        "text_model" => false,
        "yield_message" | "build_plan" => false,
        _ => maintainer(caller).is_ok(),
    }
}
