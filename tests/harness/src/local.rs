//! The local replica as an [`Ic`].

use std::time::Duration;

use candid::Principal;
use ic_replica::{CallReport, Fees, LocalReplica};

use crate::{CallCost, CallOutcome, Ic, Reject};

pub struct LocalBackend {
    pub replica: LocalReplica,
}

impl LocalBackend {
    /// A replica pricing a 13-node subnet, or as many nodes as `IC_REPLICA_SUBNET_SIZE` says
    /// (34 for the IC's large application subnets).
    pub fn new() -> Self {
        let mut replica = LocalReplica::new();
        if let Some(nodes) = std::env::var("IC_REPLICA_SUBNET_SIZE").ok().and_then(|n| n.parse().ok()) {
            replica.set_subnet_size(nodes);
        }
        LocalBackend { replica }
    }
}

impl Default for LocalBackend {
    fn default() -> Self {
        Self::new()
    }
}

fn cost(report: &CallReport) -> CallCost {
    CallCost {
        instructions: Some(report.instructions()),
        messages: Some(report.message_count()),
        max_instructions_per_message: Some(report.max_instructions_per_message()),
        rounds: Some(report.rounds()),
        cycles: Some(report.cycles()),
        cycles_by_kind: Some(report.cycles_by_kind()),
        cycles_34_nodes: Some(report.cycles_at(&Fees::new(ic_replica::fees::LARGE_SUBNET_SIZE)).total()),
        per_message: report.messages.iter().map(|m| (m.canister, m.instructions)).collect(),
    }
}

fn reject(r: ic_replica::Reject) -> Reject {
    Reject { code: r.code as u32, message: r.message }
}

impl Ic for LocalBackend {
    fn backend_name(&self) -> &'static str {
        "local replica"
    }
    fn create_canister(&mut self, controller: Principal) -> Principal {
        self.replica.create_canister(controller)
    }
    fn install_canister(
        &mut self,
        canister: Principal,
        wasm: &[u8],
        arg: Vec<u8>,
        sender: Principal,
    ) -> Result<(), Reject> {
        self.replica.install_canister(canister, wasm, arg, sender).map(|_| ()).map_err(reject)
    }
    fn upgrade_canister(
        &mut self,
        canister: Principal,
        wasm: &[u8],
        arg: Vec<u8>,
        sender: Principal,
    ) -> Result<(), Reject> {
        self.replica.upgrade_canister(canister, wasm, arg, sender).map(|_| ()).map_err(reject)
    }
    fn stop_canister(&mut self, canister: Principal, sender: Principal) -> Result<(), Reject> {
        self.replica.stop_canister(canister, sender).map_err(reject)
    }
    fn start_canister(&mut self, canister: Principal, sender: Principal) -> Result<(), Reject> {
        self.replica.start_canister(canister, sender).map_err(reject)
    }
    fn update_call(&mut self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> CallOutcome {
        let (result, report) = self.replica.update_call(canister, sender, method, payload);
        CallOutcome { result: result.map_err(reject), cost: cost(&report) }
    }
    fn query_call(&mut self, canister: Principal, sender: Principal, method: &str, payload: Vec<u8>) -> CallOutcome {
        let (result, report) = self.replica.query_call(canister, sender, method, payload);
        CallOutcome { result: result.map_err(reject), cost: cost(&report) }
    }
    fn submit_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        payload: Vec<u8>,
    ) -> Result<u64, Reject> {
        self.replica.submit_call(canister, sender, method, payload).map_err(reject)
    }
    fn await_call(&mut self, id: u64) -> CallOutcome {
        let (result, report) = self.replica.await_call(id);
        CallOutcome { result: result.map_err(reject), cost: cost(&report) }
    }
    fn call_from_canister(
        &mut self,
        canister: Principal,
        caller: Principal,
        method: &str,
        payload: Vec<u8>,
    ) -> Option<CallOutcome> {
        let (result, report) = self.replica.call_from_canister(canister, caller, method, payload);
        Some(CallOutcome { result: result.map_err(reject), cost: cost(&report) })
    }
    fn stable_memory(&mut self, canister: Principal) -> Option<Vec<u8>> {
        Some(self.replica.stable_memory(canister).to_vec())
    }
    fn stable_memory_sha256(&mut self, canister: Principal) -> Option<[u8; 32]> {
        use sha2::Digest;
        // Hashed where it lies: copying it first was most of `random_arguments`' time.
        Some(sha2::Sha256::digest(self.replica.stable_memory(canister)).into())
    }
    fn tick(&mut self) {
        self.replica.tick();
    }
    fn advance_time(&mut self, by: Duration) {
        self.replica.advance_time(by);
    }
    fn cycle_balance(&mut self, canister: Principal) -> u128 {
        self.replica.cycle_balance(canister)
    }
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn memory_usage(&mut self, canister: Principal) -> Option<(u64, u64)> {
        Some((self.replica.heap_bytes(canister), self.replica.stable_bytes(canister)))
    }
    fn root_key(&mut self) -> Vec<u8> {
        self.replica.root_key().to_vec()
    }
}
