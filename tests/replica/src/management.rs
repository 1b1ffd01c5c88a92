//! The management canister (`aaaaa-aa`) as canisters call it. Only what the canisters here use
//! is answered; every other method is rejected as one the replica does not implement, never
//! answered with a made-up success.

use candid::Principal;
use sha2::{Digest, Sha256};

use crate::host::Response;
use crate::replica::RejectCode;

/// The management canister's answers, with the replica's source of randomness.
#[derive(Default)]
pub struct Management {
    draws: u64,
}

impl Management {
    /// Answers `method` called by canister `caller` with `arg`.
    pub fn call(&mut self, caller: Principal, method: &str, arg: &[u8]) -> Response {
        match method {
            "raw_rand" => self.raw_rand(caller, arg),
            _ => reject(
                RejectCode::DestinationInvalid,
                format!("the local replica does not implement the management canister's {method}"),
            ),
        }
    }

    /// 32 bytes no canister can predict on the IC (drawn from the subnet's random tape in the
    /// round after the call). Here they are a hash chain, different on every call and the same
    /// in every run, so tests stay reproducible; the replica is not a source of secrets.
    fn raw_rand(&mut self, caller: Principal, arg: &[u8]) -> Response {
        if candid::decode_args::<()>(arg).is_err() {
            return reject(RejectCode::CanisterError, "raw_rand takes no argument".into());
        }
        self.draws += 1;
        let bytes = Sha256::new()
            .chain_update(b"ic-replica raw_rand")
            .chain_update(caller.as_slice())
            .chain_update(self.draws.to_le_bytes())
            .finalize()
            .to_vec();
        // `blob` and `vec nat8` are one type on the wire.
        Response::Reply(candid::encode_one(bytes).expect("a blob encodes"))
    }
}

fn reject(code: RejectCode, message: String) -> Response {
    Response::Reject { code: code as u32, message }
}
