//! PocketIC as an [`Ic`], through the `pocket-ic` crate. Used when `POCKET_IC_BIN` names a
//! `pocket-ic-server` 16.x binary (the crate checks the version); not available in CI, where
//! no server can be downloaded, but compiled there so the path stays correct.

use std::time::Duration;

use candid::Principal;
use pocket_ic::{PocketIc, RejectResponse};

use crate::{CallCost, CallOutcome, Ic, Reject};

/// Cycles each canister gets, as the local replica gives.
const CYCLES: u128 = 100_000_000_000_000;

pub struct PocketIcBackend {
    pub pic: PocketIc,
    submitted: Vec<pocket_ic::common::rest::RawMessageId>,
}

impl PocketIcBackend {
    /// Starts a PocketIC instance with one application subnet (production limits, DTS on).
    pub fn new() -> Self {
        PocketIcBackend { pic: PocketIc::new(), submitted: Vec::new() }
    }
}

impl Default for PocketIcBackend {
    fn default() -> Self {
        Self::new()
    }
}

fn reject(r: RejectResponse) -> Reject {
    Reject { code: r.reject_code as u32, message: format!("{} ({:?})", r.reject_message, r.error_code) }
}

impl Ic for PocketIcBackend {
    fn backend_name(&self) -> &'static str {
        "PocketIC"
    }
    fn create_canister(&mut self, controller: Principal) -> Principal {
        let id = self.pic.create_canister_with_settings(Some(controller), None);
        self.pic.add_cycles(id, CYCLES);
        id
    }
    fn install_canister(
        &mut self,
        canister: Principal,
        wasm: &[u8],
        arg: Vec<u8>,
        sender: Principal,
    ) -> Result<(), Reject> {
        self.pic.reinstall_canister(canister, wasm.to_vec(), arg, Some(sender)).map_err(reject)
    }
    fn upgrade_canister(
        &mut self,
        canister: Principal,
        wasm: &[u8],
        arg: Vec<u8>,
        sender: Principal,
    ) -> Result<(), Reject> {
        self.pic.upgrade_canister(canister, wasm.to_vec(), arg, Some(sender)).map_err(reject)
    }
    fn stop_canister(&mut self, canister: Principal, sender: Principal) -> Result<(), Reject> {
        self.pic.stop_canister(canister, Some(sender)).map_err(reject)
    }
    fn start_canister(&mut self, canister: Principal, sender: Principal) -> Result<(), Reject> {
        self.pic.start_canister(canister, Some(sender)).map_err(reject)
    }
    fn update_call(&mut self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> CallOutcome {
        let result = self.pic.update_call(canister, sender, method, payload).map_err(reject);
        CallOutcome { result, cost: CallCost::default() }
    }
    fn query_call(&mut self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> CallOutcome {
        let result = self.pic.query_call(canister, sender, method, payload).map_err(reject);
        CallOutcome { result, cost: CallCost::default() }
    }
    fn submit_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        payload: Vec<u8>,
    ) -> Result<u64, Reject> {
        let id = self.pic.submit_call(canister, sender, method, payload).map_err(reject)?;
        self.submitted.push(id);
        Ok(self.submitted.len() as u64 - 1)
    }
    fn await_call(&mut self, id: u64) -> CallOutcome {
        let message = self.submitted[id as usize].clone();
        CallOutcome { result: self.pic.await_call(message).map_err(reject), cost: CallCost::default() }
    }
    fn tick(&mut self) {
        self.pic.tick();
    }
    fn advance_time(&mut self, by: Duration) {
        self.pic.advance_time(by);
    }
    fn cycle_balance(&mut self, canister: Principal) -> u128 {
        self.pic.cycle_balance(canister)
    }
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn memory_usage(&mut self, _canister: Principal) -> Option<(u64, u64)> {
        None
    }
    fn stable_memory(&mut self, canister: Principal) -> Option<Vec<u8>> {
        Some(self.pic.get_stable_memory(canister))
    }
    fn root_key(&mut self) -> Vec<u8> {
        self.pic.root_key().expect("the PocketIC instance has a root key")
    }
}
