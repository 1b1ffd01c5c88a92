//! The benchmark's baseline canister (`tests/plain-tract`): tract's optimised plan run in one
//! call, as DFINITY's image-classification example runs it. Its reply types are mirrored here
//! (the harness links no canister crate) and its calls made raw, as its controller would.

use candid::{CandidType, Deserialize, Principal};
use serde::de::DeserializeOwned;

use crate::{canister_wasm, CallCost, Ic, Reject};

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum PlainError {
    NotController,
    NoModel,
    BadInput { expected: u64, got: u64 },
    Load(String),
    Run(String),
}

/// How `load` parsed the model: as it is, or only without the file's `value_info`.
#[derive(CandidType, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    AsIs,
    WithoutValueInfo,
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq)]
pub struct Inference {
    pub output: Vec<f32>,
    pub instructions: u64,
}

/// An installed plain-tract canister.
pub struct PlainTract {
    pub canister: Principal,
}

impl PlainTract {
    /// Creates and installs one, controlled by `controller`.
    pub fn install(ic: &mut dyn Ic, controller: Principal) -> PlainTract {
        let canister = ic.create_canister(controller);
        let wasm = canister_wasm("plain_tract_canister");
        ic.install_canister(canister, &wasm, candid::encode_args(()).unwrap(), controller)
            .expect("the plain-tract canister installs");
        PlainTract { canister }
    }

    fn call<R: CandidType + DeserializeOwned>(
        &self,
        ic: &mut dyn Ic,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> (Result<R, Reject>, CallCost) {
        let outcome = ic.update_call(self.canister, sender, method, arg);
        let reply = outcome
            .result
            .map(|bytes| candid::decode_one(&bytes).unwrap_or_else(|e| panic!("plain tract's {method} reply: {e}")));
        (reply, outcome.cost)
    }

    /// Sends the whole model in 1 MiB appends, then has it parsed and optimised for one f32
    /// input of `shape`.
    pub fn load(
        &self,
        ic: &mut dyn Ic,
        sender: Principal,
        model: &[u8],
        shape: &[usize],
    ) -> Result<Result<Loaded, PlainError>, Reject> {
        for chunk in model.chunks(1 << 20) {
            let arg = candid::encode_one(serde_bytes::ByteBuf::from(chunk.to_vec())).unwrap();
            if let Err(e) = self.call::<Result<(), PlainError>>(ic, sender, "append", arg).0? {
                return Ok(Err(e));
            }
        }
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        self.call(ic, sender, "load", candid::encode_one(&shape).unwrap()).0
    }

    /// One inference, in one message.
    pub fn run(
        &self,
        ic: &mut dyn Ic,
        sender: Principal,
        shape: &[usize],
        data: &[f32],
    ) -> (Result<Result<Inference, PlainError>, Reject>, CallCost) {
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        self.call(ic, sender, "run", candid::encode_args((&shape, data)).unwrap())
    }
}
