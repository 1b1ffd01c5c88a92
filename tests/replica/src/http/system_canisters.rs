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

/// A query to a system canister, answered here; `None` when `canister` is not one.
pub fn query(_front: &mut Front, canister: Principal, method: &str, _arg: &[u8]) -> Option<Result<Vec<u8>, Reject>> {
    if canister == cycles_minting_canister() {
        return Some(match method {
            "get_default_subnets" => Ok(Encode!(&vec![crate::subnet_id()]).expect("encodes")),
            _ => Err(not_served(canister, method)),
        });
    }
    None
}

/// An update to a system canister, answered here; `None` when `canister` is not one.
pub fn update(
    front: &mut Front,
    sender: Principal,
    canister: Principal,
    method: &str,
    arg: &[u8],
) -> Option<Result<Vec<u8>, Reject>> {
    if canister == cycles_minting_canister() {
        return Some(Err(not_served(canister, method)));
    }
    if canister != cycles_ledger() {
        return None;
    }
    if method != "create_canister" {
        return Some(Err(not_served(canister, method)));
    }
    let args = match Decode!(arg, CreateCanisterArgs) {
        Ok(args) => args,
        Err(e) => {
            return Some(Err(Reject {
                code: RejectCode::CanisterError,
                message: format!("Error decoding candid for create_canister: {e}"),
            }))
        }
    };
    let settings = args.creation_args.and_then(|c| c.settings).unwrap_or_default();
    let controllers = settings.controllers.unwrap_or_else(|| vec![sender]);
    let result = match u128::try_from(args.amount.0) {
        Ok(cycles) => {
            let canister_id = front.replica.create_canister_with(controllers, cycles);
            front.created += 1;
            Ok(CreateCanisterSuccess { block_id: Nat::from(front.created), canister_id })
        }
        Err(_) => Err(CreateCanisterError::GenericError {
            error_code: Nat::from(1u8),
            message: "amount does not fit in 128 bits".into(),
        }),
    };
    Some(Ok(Encode!(&result).expect("encodes")))
}

fn not_served(canister: Principal, method: &str) -> Reject {
    Reject {
        code: RejectCode::DestinationInvalid,
        message: format!("The local replica answers only what icp-cli asks of {canister}, not {method}"),
    }
}
