//! One interface that scenario tests and benchmarks are written against, with two backends:
//! the local replica ([`ic_replica::LocalReplica`], the default) and PocketIC (the `pocket-ic`
//! crate, built with this crate's `pocket-ic` feature and selected when `POCKET_IC_BIN` points
//! at a server binary). Method names mirror the `pocket-ic` crate's so IC developers feel at
//! home.

pub mod cases;
pub mod deploy;
mod local;
pub mod plain_tract;
#[cfg(feature = "pocket-ic")]
mod pocket;

use std::path::PathBuf;
use std::time::Duration;

use candid::CandidType;
pub use candid::Principal;
pub use inference_client::{Call, CallError, Mode};
use serde::de::DeserializeOwned;

pub use local::LocalBackend;
#[cfg(feature = "pocket-ic")]
pub use pocket::PocketIcBackend;

/// A call that did not get a reply: the reject code of the interface spec and the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    pub code: u32,
    pub message: String,
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reject code {}: {}", self.code, self.message)
    }
}
impl std::error::Error for Reject {}

/// What a call cost, as far as the backend can see it. The local replica meters every message
/// with the IC's cost table; PocketIC reports no counts, so there the canister must measure
/// itself with `performance_counter` (as canbench does) and these stay `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallCost {
    pub instructions: Option<u64>,
    pub messages: Option<u64>,
    pub max_instructions_per_message: Option<u64>,
    pub rounds: Option<u64>,
    /// Every cycle the call cost on a 13-node subnet: execution, ingress and inter-canister.
    pub cycles: Option<u128>,
    /// The same cycles by what they paid for.
    pub cycles_by_kind: Option<ic_replica::Cycles>,
    /// What the call would cost on a 34-node subnet (every fee × 34 / 13, rounded down as the IC
    /// rounds).
    pub cycles_34_nodes: Option<u128>,
    /// Each executed message's canister and instructions, in order, where known.
    pub per_message: Vec<(Principal, u64)>,
}

/// A reply or reject, and what it cost.
#[derive(Clone, Debug)]
pub struct CallOutcome {
    pub result: Result<Vec<u8>, Reject>,
    pub cost: CallCost,
}

/// The operations tests and benchmarks need from an IC.
pub trait Ic {
    /// Which backend this is, for reports.
    fn backend_name(&self) -> &'static str;
    /// Creates a canister controlled by `controller`, with cycles to spare.
    fn create_canister(&mut self, controller: Principal) -> Principal;
    fn install_canister(
        &mut self,
        canister: Principal,
        wasm: &[u8],
        arg: Vec<u8>,
        sender: Principal,
    ) -> Result<(), Reject>;
    fn upgrade_canister(
        &mut self,
        canister: Principal,
        wasm: &[u8],
        arg: Vec<u8>,
        sender: Principal,
    ) -> Result<(), Reject>;
    fn stop_canister(&mut self, canister: Principal, sender: Principal) -> Result<(), Reject>;
    fn start_canister(&mut self, canister: Principal, sender: Principal) -> Result<(), Reject>;
    /// An ingress update call, run to completion (every message it causes).
    fn update_call(&mut self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> CallOutcome;
    fn query_call(&mut self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> CallOutcome;
    /// Submits an ingress update without waiting (inspect_message runs now); returns its id.
    fn submit_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        payload: Vec<u8>,
    ) -> Result<u64, Reject>;
    /// Runs the IC until the submitted call has its answer.
    fn await_call(&mut self, id: u64) -> CallOutcome;
    /// An update call made by canister `caller` (no inspect_message, as between canisters on
    /// the IC); `None` where the backend cannot stand in for a canister's code.
    fn call_from_canister(
        &mut self,
        _canister: Principal,
        _caller: Principal,
        _method: &str,
        _payload: Vec<u8>,
    ) -> Option<CallOutcome> {
        None
    }
    /// A canister's stable memory, where the backend can read it.
    fn stable_memory(&mut self, _canister: Principal) -> Option<Vec<u8>> {
        None
    }
    /// The sha256 of a canister's stable memory, where the backend can read it.
    fn stable_memory_sha256(&mut self, canister: Principal) -> Option<[u8; 32]> {
        use sha2::Digest;
        self.stable_memory(canister).map(|bytes| sha2::Sha256::digest(&bytes).into())
    }
    fn tick(&mut self);
    fn advance_time(&mut self, by: Duration);
    fn cycle_balance(&mut self, canister: Principal) -> u128;
    /// Heap and stable-memory bytes of a canister, where the backend can see them.
    fn memory_usage(&mut self, canister: Principal) -> Option<(u64, u64)>;
    /// The root key certificates are signed with (DER), as an agent fetches a local network's.
    fn root_key(&mut self) -> Vec<u8>;
    /// For backend-specific hooks (e.g. the local replica's fault injection).
    fn as_any(&mut self) -> &mut dyn std::any::Any;
}

/// The backend the environment asks for: PocketIC when `POCKET_IC_BIN` is set (in a build with
/// the `pocket-ic` feature), else the local replica.
pub fn backend() -> Box<dyn Ic> {
    if std::env::var_os("POCKET_IC_BIN").is_none() {
        return Box::new(LocalBackend::new());
    }
    #[cfg(feature = "pocket-ic")]
    return Box::new(PocketIcBackend::new());
    #[cfg(not(feature = "pocket-ic"))]
    panic!(
        "POCKET_IC_BIN is set, but this build has no PocketIC backend: run the tests with \
         `--features canister-harness/pocket-ic`"
    );
}

/// Makes a typed call (from `inference_client::calls` or `agency_api::calls`) as `sender`, as
/// an update or a query as the endpoint is, to the end of every message it causes; the decoded
/// reply and what the call cost.
pub fn call<R: CandidType + DeserializeOwned>(
    ic: &mut dyn Ic,
    canister: Principal,
    sender: Principal,
    call: Call<R>,
) -> (Result<R, CallError>, CallCost) {
    let outcome = match call.mode {
        Mode::Update => ic.update_call(canister, sender, call.method, call.arg.clone()),
        Mode::Query => ic.query_call(canister, sender, call.method, call.arg.clone()),
    };
    (reply(&call, outcome.result), outcome.cost)
}

/// Submits a typed update call without waiting for it (inspect_message runs now), so that
/// several can run at once; [`await_call`] gets its reply.
pub fn submit_call<R>(ic: &mut dyn Ic, canister: Principal, sender: Principal, call: &Call<R>) -> Result<u64, Reject> {
    ic.submit_call(canister, sender, call.method, call.arg.clone())
}

/// Runs the IC until a call [`submit_call`] sent has its answer; decodes it as `call`'s reply.
pub fn await_call<R: CandidType + DeserializeOwned>(
    ic: &mut dyn Ic,
    id: u64,
    call: &Call<R>,
) -> (Result<R, CallError>, CallCost) {
    let outcome = ic.await_call(id);
    (reply(call, outcome.result), outcome.cost)
}

/// A raw outcome decoded as `call`'s reply (or the rejection, as a [`CallError`]).
pub fn reply<R: CandidType + DeserializeOwned>(
    call: &Call<R>,
    result: Result<Vec<u8>, Reject>,
) -> Result<R, CallError> {
    match result {
        Ok(bytes) => call.decode(&bytes),
        Err(reject) => Err(CallError::Rejected { method: call.method, message: reject.to_string() }),
    }
}

/// Where `scripts/build-canisters.sh` puts the optimised module of a canister crate.
pub fn canister_wasm_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/canisters").join(format!("{name}.wasm"))
}

/// The optimised module of a canister crate, built by `scripts/build-canisters.sh`.
pub fn canister_wasm(name: &str) -> Vec<u8> {
    let path = canister_wasm_path(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}. Build the canisters first: scripts/build-canisters.sh", path.display()))
}

/// A principal for tests, distinct per `n`, never anonymous.
pub fn user(n: u8) -> Principal {
    Principal::from_slice(&[n, 0xAB, 0xCD, 0x01])
}
