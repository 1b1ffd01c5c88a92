//! The two system canisters icp-cli asks when it creates canisters on a network, answered by the
//! front itself since the replica runs no NNS: the cycles minting canister's
//! `get_default_subnets` (this replica's one subnet) and the cycles ledger's `create_canister`
//! (a provisional creation, paid from cycles the local network hands out, as a local dfx or
//! icp network's seeded ledger does).

use candid::{CandidType, Decode, Encode, Nat, Principal};
use ic_management_canister_types::CanisterSettings;
use serde::Deserialize;

use super::Front;
use crate::replica::{Reject, RejectCode};

/// The cycles minting canister (`rkp4c-7iaaa-aaaaa-aaaca-cai`, the NNS's fifth canister id).
pub fn cycles_minting_canister() -> Principal {
    Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 4, 1, 1])
}

/// The cycles ledger (`um5iw-rqaaa-aaaaq-qaaba-cai`).
pub fn cycles_ledger() -> Principal {
    Principal::from_text("um5iw-rqaaa-aaaaq-qaaba-cai").expect("a canister id")
}

/// Canister ids below this are never given to a canister here, so neither system id is.
pub fn reserved_ids() -> u64 {
    let index = |p: Principal| u64::from_be_bytes(p.as_slice()[..8].try_into().expect("a canister id"));
    index(cycles_minting_canister()).max(index(cycles_ledger())) + 1
}

#[derive(CandidType, Deserialize)]
struct CreateCanisterArgs {
    amount: Nat,
    creation_args: Option<CreationArgs>,
}

#[derive(CandidType, Deserialize)]
struct CreationArgs {
    settings: Option<CanisterSettings>,
}

#[derive(CandidType)]
struct CreateCanisterSuccess {
    block_id: Nat,
    canister_id: Principal,
}

#[derive(CandidType)]
enum CreateCanisterError {
    GenericError { error_code: Nat, message: String },
}

/// Whether the front answers for `canister` itself.
pub fn is_system_canister(canister: Principal) -> bool {
    canister == cycles_minting_canister() || canister == cycles_ledger()
}

/// A query to a system canister, answered here; `None` when `canister` is not one.
pub fn query(canister: Principal, method: &str) -> Option<Result<Vec<u8>, Reject>> {
    if canister == cycles_minting_canister() {
        return Some(match method {
            "get_default_subnets" => Ok(Encode!(&vec![crate::subnet_id()]).expect("encodes")),
            _ => Err(not_served(canister, method, "query")),
        });
    }
    None
}

/// An update to one of the system canisters ([`is_system_canister`]), answered here.
pub fn update(
    front: &mut Front,
    sender: Principal,
    canister: Principal,
    method: &str,
    arg: &[u8],
) -> Result<Vec<u8>, Reject> {
    if canister != cycles_ledger() || method != "create_canister" {
        return Err(not_served(canister, method, "update"));
    }
    let args = Decode!(arg, CreateCanisterArgs).map_err(|e| Reject {
        code: RejectCode::CanisterError,
        message: format!("Error decoding candid for create_canister: {e}"),
    })?;
    let settings = args.creation_args.and_then(|c| c.settings).unwrap_or_default();
    let controllers = settings.controllers.unwrap_or_else(|| vec![sender]);
    let result = match u128::try_from(args.amount.0) {
        Ok(cycles) => {
            let canister_id = front.replica.create_canister_with(controllers, cycles, Default::default());
            front.created += 1;
            Ok(CreateCanisterSuccess { block_id: Nat::from(front.created), canister_id })
        }
        Err(_) => Err(CreateCanisterError::GenericError {
            error_code: Nat::from(1u8),
            message: "amount does not fit in 128 bits".into(),
        }),
    };
    Ok(Encode!(&result).expect("encodes"))
}

/// As the IC answers a method a canister lacks (IC0536): the front answers only what icp-cli asks.
fn not_served(canister: Principal, method: &str, kind: &str) -> Reject {
    Reject {
        code: RejectCode::CanisterError,
        message: format!(
            "Canister {canister} has no {kind} method '{method}' (the local replica answers only what icp-cli asks of it)"
        ),
    }
}
