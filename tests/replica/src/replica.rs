//! The local replica: canisters, call contexts and the message queue, driven the way PocketIC
//! drives a subnet — nothing happens until a call, a tick or a time advance asks for it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use candid::Principal;
use wasmtime::Linker;

use crate::canister::{load_module, shared_cache, Entry, Execution, Instantiated, ModuleCache};
use crate::fees::Fees;
use crate::host::{Callback, Host, MessageContext, MessageKind, Response};
use crate::limits;
use crate::report::{CallReport, MessageRecord};
use crate::system_api::instruction_limit_message;

/// Reject codes of the interface spec.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RejectCode {
    SysFatal = 1,
    SysTransient = 2,
    DestinationInvalid = 3,
    CanisterReject = 4,
    CanisterError = 5,
}

impl RejectCode {
    fn from_u32(code: u32) -> RejectCode {
        match code {
            1 => RejectCode::SysFatal,
            2 => RejectCode::SysTransient,
            3 => RejectCode::DestinationInvalid,
            4 => RejectCode::CanisterReject,
            _ => RejectCode::CanisterError,
        }
    }
}

/// A call that did not get a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    pub code: RejectCode,
    pub message: String,
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}
impl std::error::Error for Reject {}

fn reject(code: RejectCode, message: impl Into<String>) -> Reject {
    Reject { code, message: message.into() }
}

/// How the management canister installs code.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum InstallMode {
    Install,
    Reinstall,
    Upgrade,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CanisterStatus {
    Running,
    Stopping,
    Stopped,
}

struct Canister {
    instance: Option<Instantiated>,
    /// Canister-level state while no module is installed.
    idle_host: Option<Host>,
    status: CanisterStatus,
}

impl Canister {
    fn host(&self) -> &Host {
        match &self.instance {
            Some(i) => i.host(),
            None => self.idle_host.as_ref().expect("host"),
        }
    }
    fn host_mut(&mut self) -> &mut Host {
        match &mut self.instance {
            Some(i) => i.host_mut(),
            None => self.idle_host.as_mut().expect("host"),
        }
    }
}

/// How a request reaches a canister: from a user (filtered by inspect_message, paying the
/// ingress fee on the signed message's bytes) or from another canister.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    Ingress { message_bytes: u64 },
    InterCanister,
}

#[derive(Clone, Debug)]
enum Origin {
    Ingress(u64),
    Canister { caller: Principal, caller_context: u64, callback: Callback },
    System,
}

struct CallContext {
    canister: Principal,
    caller: Principal,
    origin: Origin,
    replied: bool,
    outstanding: u32,
    instructions: u64,
    /// Cycles the call carried that no message has accepted yet: returned with the response.
    cycles_available: u128,
}

/// A request waiting in the queue.
struct Request {
    to: Principal,
    from: Principal,
    method: String,
    arg: Vec<u8>,
    origin: Origin,
    /// Cycles the caller attached.
    cycles: u128,
    /// For an ingress message: the bytes its canister paid to receive.
    ingress_bytes: Option<u64>,
}

enum Message {
    Request(Request),
    Response {
        to: Principal,
        context: u64,
        callback: Callback,
        response: Response,
        /// Cycles the call carried that the callee did not accept, back to the caller.
        refund: u128,
    },
}

/// The local replica. See the crate documentation for what it enforces.
pub struct LocalReplica {
    cache: Arc<ModuleCache>,
    linker: Linker<Host>,
    canisters: BTreeMap<Principal, Canister>,
    contexts: BTreeMap<u64, CallContext>,
    queue: VecDeque<Message>,
    ingress_results: BTreeMap<u64, Result<Vec<u8>, Reject>>,
    next_id: u64,
    next_canister: u64,
    time_nanos: u64,
    records: Vec<MessageRecord>,
    /// Fault injection: (canister, messages it may still execute before one traps).
    trap_after: Option<(Principal, u64)>,
    /// Instructions an update message may execute: the IC's 40 B unless a test lowers it.
    update_instruction_limit: u64,
    management: crate::management::Management,
    /// The fees of the subnet the replica stands for (13 nodes unless a test picks 34).
    fees: Fees,
}

/// Cycles a new canister gets, like PocketIC's `add_cycles` in most test set-ups.
pub const INITIAL_CYCLES: u128 = 100_000_000_000_000;
/// The replica's clock starts here (2025-01-01T00:00:00Z), so runs are reproducible.
pub const GENESIS_NANOS: u64 = 1_735_689_600_000_000_000;
/// Messages one call may cause before the replica gives up (PocketIC bounds rounds similarly).
const MAX_MESSAGES_PER_CALL: usize = 1_000_000;

impl Default for LocalReplica {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalReplica {
    pub fn new() -> Self {
        let cache = shared_cache();
        let mut linker = Linker::new(cache.engine());
        crate::system_api::register(&mut linker).expect("system API");
        LocalReplica {
            cache,
            linker,
            canisters: BTreeMap::new(),
            contexts: BTreeMap::new(),
            queue: VecDeque::new(),
            ingress_results: BTreeMap::new(),
            next_id: 0,
            next_canister: 0,
            time_nanos: GENESIS_NANOS,
            records: Vec::new(),
            trap_after: None,
            update_instruction_limit: limits::UPDATE_INSTRUCTIONS,
            management: Default::default(),
            fees: Fees::default(),
        }
    }

    /// For tests of what happens past the limit: sets the instructions an update message may
    /// execute below the IC's 40 B, so a small model stands in for one too big for 40 B (never
    /// above 40 B; pass the IC's limit to restore it).
    pub fn set_update_instruction_limit(&mut self, limit: u64) {
        self.update_instruction_limit = limit.min(limits::UPDATE_INSTRUCTIONS);
    }

    /// Prices every fee as on a subnet of `nodes` nodes (the IC's application subnets have 13,
    /// or 34): each 13-node fee scaled by `nodes / 13`, rounded down.
    pub fn set_subnet_size(&mut self, nodes: u32) {
        self.fees = Fees::new(nodes);
    }

    /// Instructions a message of `kind` may execute: 40 B for updates, callbacks and timers
    /// (or less, if a test lowered it); 5 B for a query method called by a canister, which runs
    /// replicated but without time slicing.
    fn instruction_limit(&self, kind: MessageKind) -> u64 {
        match kind {
            MessageKind::ReplicatedQuery => limits::QUERY_INSTRUCTIONS.min(self.update_instruction_limit),
            _ => self.update_instruction_limit,
        }
    }

    pub fn fees(&self) -> Fees {
        self.fees
    }

    /// Bytes the IC charges the canister storage for: its heap, stable memory and module.
    pub fn memory_usage(&self, canister: Principal) -> u64 {
        self.canisters.get(&canister).map_or(0, memory_usage)
    }

    /// The balance below which the canister is frozen: 30 days of its storage.
    pub fn freezing_threshold(&self, canister: Principal) -> u128 {
        self.fees.freezing_threshold(self.memory_usage(canister))
    }

    /// Fault injection for tests: the canister's `n`-th replicated message from now (counting
    /// from 1) traps instead of running — as a trap at any point of it would, since a trapped
    /// message's changes are rolled back. Cleanup callbacks still run. PocketIC has no such hook.
    pub fn trap_nth_message(&mut self, canister: Principal, n: u64) {
        self.trap_after = Some((canister, n));
    }

    fn injected_trap(&mut self, canister: Principal) -> bool {
        match &mut self.trap_after {
            Some((c, n)) if *c == canister => {
                *n -= 1;
                if *n == 0 {
                    self.trap_after = None;
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    // ----- canister management -----

    /// Creates an empty canister controlled by `controller`.
    pub fn create_canister(&mut self, controller: Principal) -> Principal {
        let index = self.next_canister;
        self.next_canister += 1;
        let mut bytes = index.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[1, 1]);
        let id = Principal::from_slice(&bytes);
        let mut host = Host::new(id, vec![controller], INITIAL_CYCLES);
        host.time_nanos = self.time_nanos;
        self.canisters.insert(id, Canister { instance: None, idle_host: Some(host), status: CanisterStatus::Running });
        id
    }

    /// Creates an empty canister with these controllers (none is allowed), cycles and
    /// environment variables (the management canister's `provisional_create_canister_with_cycles`).
    pub fn create_canister_with(
        &mut self,
        controllers: Vec<Principal>,
        cycles: u128,
        env_vars: BTreeMap<String, String>,
    ) -> Principal {
        let id = self.create_canister(Principal::anonymous());
        let host = self.canisters.get_mut(&id).expect("just created").host_mut();
        host.controllers = controllers;
        host.cycles = cycles;
        host.env_vars = env_vars;
        id
    }

    /// Makes canister ids start above the first `n`, so that the ids of system canisters that a
    /// front serves itself (the cycles minting canister is the fifth id) never go to a canister.
    pub fn reserve_canister_ids(&mut self, n: u64) {
        self.next_canister = self.next_canister.max(n);
    }

    /// Every canister, in id order.
    pub fn canister_ids(&self) -> Vec<Principal> {
        self.canisters.keys().copied().collect()
    }

    /// The module's `icp:` custom sections by name, as the state tree serves them.
    pub fn all_metadata(&self, canister: Principal) -> BTreeMap<String, crate::canister::Metadata> {
        self.canisters.get(&canister).and_then(|c| c.instance.as_ref()).map(|i| i.metadata.clone()).unwrap_or_default()
    }

    /// The canister's environment variables.
    pub fn env_vars(&self, canister: Principal) -> BTreeMap<String, String> {
        self.canisters.get(&canister).map(|c| c.host().env_vars.clone()).unwrap_or_default()
    }

    /// Charges `canister` the ingress fee of a `message_bytes` message sent to the management
    /// canister on its behalf (the IC's payer is the call's effective canister), if it can pay it
    /// from above its freezing threshold.
    pub fn charge_management_ingress(&mut self, canister: Principal, message_bytes: u64) -> Result<(), Reject> {
        let fee = self.fees.ingress(message_bytes);
        let fees = self.fees;
        let c = self.canister_mut(canister)?;
        if liquid(c, &fees) < fee {
            return Err(out_of_cycles(canister));
        }
        c.host_mut().cycles -= fee;
        Ok(())
    }

    /// Whether messages wait in the queue or a global timer is due: a round has work to do.
    pub fn has_work(&self) -> bool {
        !self.queue.is_empty()
            || self.canisters.values().any(|c| {
                let t = c.host().global_timer;
                c.instance.is_some() && c.status == CanisterStatus::Running && t != 0 && t <= self.time_nanos
            })
    }

    pub fn controllers(&self, canister: Principal) -> Vec<Principal> {
        self.canisters.get(&canister).map(|c| c.host().controllers.clone()).unwrap_or_default()
    }

    pub fn set_controllers(
        &mut self,
        canister: Principal,
        sender: Principal,
        controllers: Vec<Principal>,
    ) -> Result<(), Reject> {
        self.settings_of(canister, sender)?.controllers = controllers;
        Ok(())
    }

    /// The canister's state, for a change of its settings by `sender` (controllers only).
    fn settings_of(&mut self, canister: Principal, sender: Principal) -> Result<&mut Host, Reject> {
        let c = self.canister_mut(canister)?;
        if !c.host().controllers.contains(&sender) {
            return Err(reject(
                RejectCode::CanisterError,
                format!("Only controllers of canister {canister} can change its settings"),
            ));
        }
        Ok(c.host_mut())
    }

    /// Sets the canister's environment variables (a controller's setting), read through
    /// `ic0.env_var_*`.
    pub fn set_env_vars(
        &mut self,
        canister: Principal,
        sender: Principal,
        vars: BTreeMap<String, String>,
    ) -> Result<(), Reject> {
        self.settings_of(canister, sender)?.env_vars = vars;
        Ok(())
    }

    /// The replica's root public key, DER-encoded: what clients verify its certificates with
    /// (ic-agent's `set_root_key`), as they fetch a local network's.
    pub fn root_key(&self) -> &'static [u8] {
        crate::certification::root_key_der()
    }

    pub fn cycle_balance(&self, canister: Principal) -> u128 {
        self.canisters.get(&canister).map_or(0, |c| c.host().cycles)
    }

    /// For tests of what a canister short of cycles meets: sets its balance outright.
    pub fn set_cycle_balance(&mut self, canister: Principal, amount: u128) {
        if let Some(c) = self.canisters.get_mut(&canister) {
            c.host_mut().cycles = amount;
        }
    }

    pub fn add_cycles(&mut self, canister: Principal, amount: u128) {
        if let Some(c) = self.canisters.get_mut(&canister) {
            c.host_mut().cycles += amount;
        }
    }

    /// A canister's stable memory, lent rather than copied: a deployed inference canister's runs
    /// to hundreds of MB, and tests read it around hundreds of calls.
    pub fn stable_memory(&self, canister: Principal) -> &[u8] {
        self.canisters.get(&canister).map_or(&[], |c| &c.host().stable.bytes)
    }

    pub fn stable_bytes(&self, canister: Principal) -> u64 {
        self.canisters.get(&canister).map_or(0, |c| c.host().stable.bytes.len() as u64)
    }

    pub fn heap_bytes(&self, canister: Principal) -> u64 {
        self.canisters.get(&canister).and_then(|c| c.instance.as_ref()).map_or(0, |i| i.heap_bytes())
    }

    pub fn canister_log(&self, canister: Principal) -> Vec<String> {
        self.canisters.get(&canister).map(|c| c.host().log.clone()).unwrap_or_default()
    }

    /// The sha256 of the installed module, as `canister_status` reports it.
    pub fn module_hash(&self, canister: Principal) -> Option<[u8; 32]> {
        self.canisters.get(&canister)?.instance.as_ref().map(|i| i.wasm_hash)
    }

    fn canister_mut(&mut self, id: Principal) -> Result<&mut Canister, Reject> {
        self.canisters
            .get_mut(&id)
            .ok_or_else(|| reject(RejectCode::DestinationInvalid, format!("Canister {id} not found")))
    }

    /// Installs, reinstalls or upgrades `wasm` (optionally gzipped), running `canister_init` or
    /// `canister_pre_upgrade` + `canister_post_upgrade` with `arg` within the 300 B install
    /// budget. Anything failing leaves the canister exactly as it was.
    pub fn install_code(
        &mut self,
        canister: Principal,
        wasm: &[u8],
        arg: Vec<u8>,
        mode: InstallMode,
        sender: Principal,
    ) -> Result<CallReport, Reject> {
        let time = self.time_nanos;
        let loaded = load_module(&self.cache, wasm).map_err(|e| reject(RejectCode::CanisterError, e))?;
        let (module, hash, loaded_bytes, metadata) = (loaded.module, loaded.hash, loaded.wasm_bytes, loaded.metadata);
        let c = self.canister_mut(canister)?;
        if !c.host().controllers.contains(&sender) {
            return Err(reject(
                RejectCode::CanisterError,
                format!("Only controllers of canister {canister} can install code"),
            ));
        }
        match (mode, c.instance.is_some()) {
            (InstallMode::Install, true) => {
                return Err(reject(RejectCode::CanisterError, format!("Canister {canister} is already installed")))
            }
            (InstallMode::Upgrade, false) => {
                return Err(reject(RejectCode::CanisterError, format!("Canister {canister} is empty")))
            }
            _ => {}
        }
        // The install prepays its whole 300 B instruction limit, above the freezing threshold.
        let threshold = self.freezing_threshold(canister);
        let fees = self.fees;
        let prepayment = fees.execution(limits::INSTALL_INSTRUCTIONS);
        let c = self.canister_mut(canister)?;
        if c.host().cycles.saturating_sub(threshold) < prepayment {
            return Err(reject(
                RejectCode::CanisterError,
                format!("Canister {canister} does not have enough cycles to install code (InstallCodeNotEnoughCycles)"),
            ));
        }
        // Compiling the module comes out of the install's 300 B first, as on the IC.
        let compilation = loaded.compilation_instructions;
        if compilation > limits::INSTALL_INSTRUCTIONS {
            return Err(reject(
                RejectCode::CanisterError,
                format!(
                    "Canister {canister} trapped during install: {}",
                    instruction_limit_message(limits::INSTALL_INSTRUCTIONS)
                ),
            ));
        }
        let mut records = vec![MessageRecord::new(canister, MessageKind::Compilation, "compilation", compilation)];
        let mut budget = limits::INSTALL_INSTRUCTIONS - compilation;
        let mut run = |inst: &mut Instantiated,
                       linker: &Linker<Host>,
                       kind: MessageKind,
                       export: &str,
                       arg: Vec<u8>|
         -> Result<(), String> {
            if !inst.has_export(export) {
                return Ok(());
            }
            let ctx_limit = budget;
            let mut ctx = MessageContext::new(kind, sender, export, arg, ctx_limit);
            ctx.fees = fees;
            ctx.freezing_threshold = threshold;
            let exec = inst.execute(linker, &Entry::Export(export.to_string()), ctx);
            budget -= exec.instructions;
            records.push(MessageRecord::new(canister, kind, export, exec.instructions));
            match exec.trap {
                // The limit is the install's, whatever compilation and earlier hooks left of it.
                Some(t) if t == instruction_limit_message(ctx_limit) => {
                    Err(instruction_limit_message(limits::INSTALL_INSTRUCTIONS))
                }
                Some(t) => Err(t),
                None => Ok(()),
            }
        };

        // The old instance, kept intact until the new one has been set up.
        let old = c.instance.take();
        let base_host = match (&old, c.idle_host.take()) {
            (_, Some(h)) => h,
            (Some(i), None) => clone_host(i.host()),
            (None, None) => unreachable!("a canister has a host"),
        };
        let mut old = old;
        let result = (|| -> Result<Instantiated, String> {
            let mut host = clone_host(&base_host);
            host.time_nanos = time;
            if mode == InstallMode::Upgrade {
                let old = old.as_mut().expect("checked above");
                run(old, &self.linker, MessageKind::PreUpgrade, "canister_pre_upgrade", vec![])?;
                // Stable memory (as pre_upgrade left it) is carried over; the heap is not.
                host = clone_host(old.host());
                host.log.clear();
                host.log.extend(old.host().log.iter().cloned());
            } else {
                host.stable = Default::default();
                host.certified_data.clear();
                host.global_timer = 0;
            }
            let mut fresh = Instantiated::new(&self.linker, module, hash, host).map_err(|e| format!("{e:?}"))?;
            run(&mut fresh, &self.linker, MessageKind::Start, "canister_start", vec![])?;
            let init = if mode == InstallMode::Upgrade { "canister_post_upgrade" } else { "canister_init" };
            let kind = if mode == InstallMode::Upgrade { MessageKind::PostUpgrade } else { MessageKind::Init };
            run(&mut fresh, &self.linker, kind, init, arg)?;
            Ok(fresh)
        })();
        let c = self.canisters.get_mut(&canister).expect("exists");
        self.records.extend(records.iter().cloned());
        // One message's fee and every instruction, compilation included, whatever the outcome.
        let install_cycles: u128 = records.iter().map(|r| r.cycles_at(&self.fees).execution).sum();
        let module_bytes = loaded_bytes;
        match result {
            Ok(mut fresh) => {
                fresh.module_bytes = module_bytes;
                fresh.metadata = metadata;
                fresh.host_mut().cycles = fresh.host().cycles.saturating_sub(install_cycles);
                c.instance = Some(fresh);
                c.idle_host = None;
                Ok(CallReport::from_records(records, self.fees))
            }
            Err(trap) => {
                // pre_upgrade may have touched the old instance's heap and stable memory;
                // `execute` already rolled a trapped message back, and a successful
                // pre_upgrade followed by a failing post_upgrade must be undone too.
                match old {
                    Some(mut o) => {
                        o.host_mut().stable = base_host.stable.clone();
                        c.instance = Some(o);
                    }
                    None => c.idle_host = Some(base_host),
                }
                let host = c.host_mut();
                host.cycles = host.cycles.saturating_sub(install_cycles);
                Err(reject(RejectCode::CanisterError, format!("Canister {canister} trapped during install: {trap}")))
            }
        }
    }

    pub fn install_canister(
        &mut self,
        canister: Principal,
        wasm: &[u8],
        arg: Vec<u8>,
        sender: Principal,
    ) -> Result<CallReport, Reject> {
        self.install_code(canister, wasm, arg, InstallMode::Install, sender)
    }

    pub fn upgrade_canister(
        &mut self,
        canister: Principal,
        wasm: &[u8],
        arg: Vec<u8>,
        sender: Principal,
    ) -> Result<CallReport, Reject> {
        self.install_code(canister, wasm, arg, InstallMode::Upgrade, sender)
    }

    /// Stops a canister: it takes no new calls, and is stopped once every open call context
    /// has finished (the queue runs until then).
    pub fn stop_canister(&mut self, canister: Principal, sender: Principal) -> Result<(), Reject> {
        let c = self.canister_mut(canister)?;
        if !c.host().controllers.contains(&sender) {
            return Err(reject(RejectCode::CanisterError, "Only controllers can stop a canister"));
        }
        c.status = CanisterStatus::Stopping;
        c.host_mut().status = 2;
        self.run_queue(|r| !r.contexts.values().any(|cc| cc.canister == canister));
        let c = self.canister_mut(canister)?;
        c.status = CanisterStatus::Stopped;
        c.host_mut().status = 3;
        Ok(())
    }

    pub fn start_canister(&mut self, canister: Principal, sender: Principal) -> Result<(), Reject> {
        let c = self.canister_mut(canister)?;
        if !c.host().controllers.contains(&sender) {
            return Err(reject(RejectCode::CanisterError, "Only controllers can start a canister"));
        }
        c.status = CanisterStatus::Running;
        c.host_mut().status = 1;
        Ok(())
    }

    pub fn canister_status(&self, canister: Principal) -> Option<CanisterStatus> {
        self.canisters.get(&canister).map(|c| c.status)
    }

    // ----- time -----

    pub fn time_nanos(&self) -> u64 {
        self.time_nanos
    }

    /// Moves the clock forward to `nanos` (a server following the wall clock); never back.
    pub fn advance_time_to(&mut self, nanos: u64) {
        if nanos > self.time_nanos {
            self.advance_time(Duration::from_nanos(nanos - self.time_nanos));
        }
    }

    /// Moves the clock; every canister pays for the memory it held meanwhile (the IC charges
    /// storage every few seconds, down to zero).
    pub fn advance_time(&mut self, by: Duration) {
        self.time_nanos += by.as_nanos() as u64;
        let fees = self.fees;
        for c in self.canisters.values_mut() {
            let storage = fees.storage_nanos(memory_usage(c), by.as_nanos() as u64);
            let host = c.host_mut();
            host.time_nanos = self.time_nanos;
            host.cycles = host.cycles.saturating_sub(storage);
        }
    }

    /// One round: fires due global timers, then executes the messages that were queued when the
    /// round began (what they cause waits for the next round, as on PocketIC).
    pub fn tick(&mut self) -> CallReport {
        let start = self.records.len();
        let due: Vec<Principal> = self
            .canisters
            .iter()
            .filter(|(_, c)| c.instance.is_some() && c.status == CanisterStatus::Running)
            .filter(|(_, c)| {
                let t = c.host().global_timer;
                t != 0 && t <= self.time_nanos
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.canisters.get_mut(&id).unwrap().host_mut().global_timer = 0;
            let c = &self.canisters[&id];
            if liquid(c, &self.fees) < self.fees.execution(self.update_instruction_limit) {
                continue; // a frozen canister's timer does not run
            }
            let context = self.open_context(id, id, Origin::System);
            let message =
                Incoming { caller: id, method: "canister_global_timer", arg: vec![], cycles: 0, ingress_bytes: None };
            self.execute_in_context(
                id,
                context,
                Entry::Export("canister_global_timer".into()),
                MessageKind::GlobalTimer,
                message,
                None,
            );
        }
        for _ in 0..self.queue.len() {
            let Some(message) = self.queue.pop_front() else { break };
            self.deliver(message);
        }
        CallReport::from_records(self.records[start..].to_vec(), self.fees)
    }

    // ----- calls -----

    /// An ingress update call: inspect_message, then the call and every message it causes,
    /// until the reply. The report covers all of those messages.
    pub fn update_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> (Result<Vec<u8>, Reject>, CallReport) {
        let start = self.records.len();
        let result = self.submit_and_await(canister, sender, method, arg);
        (result, CallReport::from_records(self.records[start..].to_vec(), self.fees))
    }

    fn submit_and_await(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, Reject> {
        let id = self.submit(canister, sender, method, arg)?;
        self.await_result(id)
    }

    /// Submits an ingress update without executing it (PocketIC's `submit_call`): after
    /// inspect_message accepts it, it waits in the queue with everything else.
    pub fn submit_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<u64, Reject> {
        self.submit(canister, sender, method, arg)
    }

    /// Executes queued messages until the submitted call `id` has its answer (PocketIC's
    /// `await_call`); the report covers every message executed meanwhile, whoever caused it.
    pub fn await_call(&mut self, id: u64) -> (Result<Vec<u8>, Reject>, CallReport) {
        let start = self.records.len();
        let result = self.await_result(id);
        (result, CallReport::from_records(self.records[start..].to_vec(), self.fees))
    }

    fn await_result(&mut self, id: u64) -> Result<Vec<u8>, Reject> {
        self.run_queue(|r| r.ingress_results.contains_key(&id));
        self.ingress_results.remove(&id).unwrap_or_else(|| {
            Err(reject(RejectCode::SysTransient, "the call did not complete: the message queue ran dry"))
        })
    }

    /// A call from canister `caller` to `canister`, as if `caller` had made it (the test stands in
    /// for its code): no inspect_message and no ingress fee, as on the IC for inter-canister
    /// calls, and the inter-canister request limit. The report covers every message it causes.
    pub fn call_from_canister(
        &mut self,
        canister: Principal,
        caller: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> (Result<Vec<u8>, Reject>, CallReport) {
        let start = self.records.len();
        let result = self
            .enqueue_request(canister, caller, method, arg, Delivery::InterCanister)
            .and_then(|id| self.await_result(id));
        (result, CallReport::from_records(self.records[start..].to_vec(), self.fees))
    }

    fn submit(&mut self, canister: Principal, sender: Principal, method: &str, arg: Vec<u8>) -> Result<u64, Reject> {
        let message_bytes = crate::fees::ingress_message_bytes(method, &arg);
        self.enqueue_request(canister, sender, method, arg, Delivery::Ingress { message_bytes })
    }

    /// Submits an ingress update that arrived as a signed HTTP request of `message_bytes` (the
    /// CBOR envelope): the size limit and the ingress fee apply to those bytes, as on the IC,
    /// instead of [`crate::fees::ingress_message_bytes`]'s estimate.
    pub fn submit_signed_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
        message_bytes: u64,
    ) -> Result<u64, Reject> {
        self.enqueue_request(canister, sender, method, arg, Delivery::Ingress { message_bytes })
    }

    fn enqueue_request(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
        delivery: Delivery,
    ) -> Result<u64, Reject> {
        if let Delivery::Ingress { message_bytes } = delivery {
            // The IC's limit is on the whole message: argument, method name and envelope.
            if message_bytes > limits::MAX_INGRESS_BYTES as u64 {
                return Err(reject(
                    RejectCode::SysFatal,
                    format!(
                        "Request of {message_bytes} bytes exceeds the ingress limit of {} bytes",
                        limits::MAX_INGRESS_BYTES
                    ),
                ));
            }
        } else {
            if !self.canisters.contains_key(&sender) {
                return Err(reject(RejectCode::DestinationInvalid, format!("{sender} is not a canister here")));
            }
            if arg.len() > limits::MAX_REQUEST_BYTES {
                return Err(reject(
                    RejectCode::CanisterError,
                    format!("Request of {} bytes exceeds the limit of {}", arg.len(), limits::MAX_REQUEST_BYTES),
                ));
            }
        }
        let linker = &self.linker;
        let c = self
            .canisters
            .get_mut(&canister)
            .ok_or_else(|| reject(RejectCode::DestinationInvalid, format!("Canister {canister} not found")))?;
        if c.status != CanisterStatus::Running {
            return Err(reject(RejectCode::CanisterError, format!("Canister {canister} is not running")));
        }
        let Some(inst) = c.instance.as_mut() else {
            return Err(reject(RejectCode::CanisterError, format!("Canister {canister} has no code installed")));
        };
        // A query method may be called as an update: it then runs replicated, as on the IC.
        if !inst.has_export(&format!("canister_update {method}"))
            && !inst.has_export(&format!("canister_query {method}"))
        {
            return Err(reject(
                RejectCode::CanisterError,
                format!("Canister {canister} has no update method '{method}'"),
            ));
        }
        let ingress = matches!(delivery, Delivery::Ingress { .. });
        if ingress && inst.has_export("canister_inspect_message") {
            let ctx = MessageContext::new(
                MessageKind::InspectMessage,
                sender,
                method,
                arg.clone(),
                limits::INSPECT_INSTRUCTIONS,
            );
            let exec = inst.execute(linker, &Entry::Export("canister_inspect_message".into()), ctx);
            if let Some(t) = exec.trap {
                return Err(reject(
                    RejectCode::CanisterError,
                    format!("Canister {canister} trapped in inspect_message: {t}"),
                ));
            }
            if !exec.message.accepted {
                return Err(reject(
                    RejectCode::CanisterReject,
                    format!("Canister {canister} rejected the message (inspect_message did not accept it)"),
                ));
            }
        }
        let mut ingress_bytes = None;
        if let Delivery::Ingress { message_bytes: bytes } = delivery {
            // The canister pays to receive the message, if it can while staying above its
            // freezing threshold (`should_accept_ingress_message` on the IC).
            let fee = self.fees.ingress(bytes);
            if liquid(c, &self.fees) < fee {
                return Err(out_of_cycles(canister));
            }
            c.host_mut().cycles -= fee;
            ingress_bytes = Some(bytes);
        }
        let id = self.fresh_id();
        self.queue.push_back(Message::Request(Request {
            to: canister,
            from: sender,
            method: method.to_string(),
            arg,
            origin: Origin::Ingress(id),
            cycles: 0,
            ingress_bytes,
        }));
        Ok(id)
    }

    /// A query: runs with the 5 B budget and never changes state.
    pub fn query_call(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> (Result<Vec<u8>, Reject>, CallReport) {
        let linker = &self.linker;
        let Some(c) = self.canisters.get_mut(&canister) else {
            return (
                Err(reject(RejectCode::DestinationInvalid, format!("Canister {canister} not found"))),
                CallReport::default(),
            );
        };
        if c.status != CanisterStatus::Running {
            return (
                Err(reject(RejectCode::CanisterError, format!("Canister {canister} is not running"))),
                CallReport::default(),
            );
        }
        let Some(inst) = c.instance.as_mut() else {
            return (
                Err(reject(RejectCode::CanisterError, format!("Canister {canister} has no code installed"))),
                CallReport::default(),
            );
        };
        let export = format!("canister_query {method}");
        if !inst.has_export(&export) {
            return (
                Err(reject(RejectCode::CanisterError, format!("Canister {canister} has no query method '{method}'"))),
                CallReport::default(),
            );
        }
        let mut ctx = MessageContext::new(MessageKind::Query, sender, method, arg, limits::QUERY_INSTRUCTIONS);
        let certified_data = inst.host().certified_data.clone();
        ctx.certified_state =
            Some(crate::certification::CertifiedState::new(canister, certified_data, self.time_nanos));
        let exec = inst.execute(linker, &Entry::Export(export.clone()), ctx);
        let record = MessageRecord::new(canister, MessageKind::Query, method, exec.instructions);
        let report = CallReport::from_records(vec![record], self.fees);
        (response_of(canister, exec), report)
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn open_context(&mut self, canister: Principal, caller: Principal, origin: Origin) -> u64 {
        let id = self.fresh_id();
        self.contexts.insert(
            id,
            CallContext {
                canister,
                caller,
                origin,
                replied: false,
                outstanding: 0,
                instructions: 0,
                cycles_available: 0,
            },
        );
        id
    }

    fn run_queue(&mut self, done: impl Fn(&LocalReplica) -> bool) {
        let mut steps = 0;
        while !done(self) {
            let Some(message) = self.queue.pop_front() else { break };
            self.deliver(message);
            steps += 1;
            if steps > MAX_MESSAGES_PER_CALL {
                panic!("more than {MAX_MESSAGES_PER_CALL} messages: a canister is looping on calls");
            }
        }
    }

    fn deliver(&mut self, message: Message) {
        match message {
            Message::Request(request) => self.deliver_request(request),
            Message::Response { to, context, callback, response, refund } => {
                self.deliver_response(to, context, callback, response, refund)
            }
        }
    }

    fn deliver_request(&mut self, request: Request) {
        let Request { to, from, method, arg, origin, cycles, ingress_bytes } = request;
        // A refused request's cycles go back to its caller.
        let refuse = |r: &mut LocalReplica, code, msg: String| {
            r.respond(&origin, Response::Reject { code: code as u32, message: msg }, cycles)
        };
        if to == Principal::management_canister() {
            let response = self.management.call(from, &method, &arg);
            return self.respond(&origin, response, cycles);
        }
        let Some(c) = self.canisters.get(&to) else {
            return refuse(self, RejectCode::DestinationInvalid, format!("Canister {to} not found"));
        };
        if c.status != CanisterStatus::Running {
            return refuse(self, RejectCode::CanisterError, format!("Canister {to} is not running"));
        }
        let Some(inst) = c.instance.as_ref() else {
            return refuse(self, RejectCode::CanisterError, format!("Canister {to} has no code installed"));
        };
        let (export, kind) = if inst.has_export(&format!("canister_update {method}")) {
            (format!("canister_update {method}"), MessageKind::Update)
        } else if inst.has_export(&format!("canister_query {method}")) {
            (format!("canister_query {method}"), MessageKind::ReplicatedQuery)
        } else {
            return refuse(self, RejectCode::CanisterError, format!("Canister {to} has no update method '{method}'"));
        };
        // The message prepays the execution of its whole instruction limit.
        if liquid(c, &self.fees) < self.fees.execution(self.instruction_limit(kind)) {
            let Reject { code, message } = out_of_cycles(to);
            return refuse(self, code, message);
        }
        let context = self.open_context(to, from, origin);
        let message = Incoming { caller: from, method: &method, arg, cycles, ingress_bytes };
        self.execute_in_context(to, context, Entry::Export(export), kind, message, None);
    }

    fn deliver_response(&mut self, to: Principal, context: u64, callback: Callback, response: Response, refund: u128) {
        let Some(cc) = self.contexts.get_mut(&context) else { return };
        cc.outstanding -= 1;
        let caller = cc.caller;
        let alive = self.canisters.get(&to).is_some_and(|c| c.instance.is_some());
        if !alive {
            self.contexts.remove(&context);
            return;
        }
        // The call prepaid the largest response's transmission; the rest comes back, with the
        // cycles the callee did not accept.
        let response_bytes = match &response {
            Response::Reply(bytes) => bytes.len(),
            Response::Reject { message, .. } => message.len(),
        } as u64;
        let returned =
            self.fees.response_transmission_prepayment().saturating_sub(self.fees.xnet_response(response_bytes));
        self.canisters.get_mut(&to).unwrap().host_mut().cycles += returned + refund;
        let (entry, kind, arg, rejected) = match response {
            Response::Reply(bytes) => (callback.reply, MessageKind::ReplyCallback, bytes, None),
            Response::Reject { code, message } => {
                (callback.reject, MessageKind::RejectCallback, vec![], Some((code, message)))
            }
        };
        let message = Incoming { caller, method: "", arg, cycles: 0, ingress_bytes: None };
        let callback = Answer { reject: rejected, callback, response_bytes, refunded: refund };
        self.execute_in_context(
            to,
            context,
            Entry::Table { fun: entry.0, env: entry.1 },
            kind,
            message,
            Some(callback),
        );
    }

    /// Runs one message of call context `context` on `canister`, then settles the context:
    /// queues the calls it made, forwards a reply or reject, or closes it.
    ///
    /// Cycles as on the IC: a request (or timer) prepays the execution of its whole instruction
    /// limit before it runs, a callback was prepaid by the call that awaits it; the unused
    /// instructions are refunded after the message, trapped or not.
    fn execute_in_context(
        &mut self,
        canister: Principal,
        context: u64,
        entry: Entry,
        kind: MessageKind,
        incoming: Incoming<'_>,
        // For response callbacks: the response and the call's continuations.
        answer: Option<Answer>,
    ) {
        let limit = self.instruction_limit(kind);
        let fees = self.fees;
        let threshold = self.freezing_threshold(canister);
        // What this message's execution was prepaid with: by itself, or by the call awaiting it.
        let prepaid = match answer {
            None => fees.execution(limit),
            Some(_) => fees.execution(limits::UPDATE_INSTRUCTIONS),
        };
        if answer.is_none() {
            self.canisters.get_mut(&canister).unwrap().host_mut().cycles -= prepaid;
            self.contexts.get_mut(&context).unwrap().cycles_available = incoming.cycles;
        }
        let cc = &self.contexts[&context];
        let Incoming { caller, method, arg, ingress_bytes, .. } = incoming;
        let mut ctx = MessageContext::new(kind, caller, method, arg, limit);
        ctx.call_context_instructions = cc.instructions;
        ctx.may_reply = kind.may_reply() && !cc.replied && !matches!(cc.origin, Origin::System);
        ctx.cycles_available = cc.cycles_available;
        ctx.fees = fees;
        ctx.freezing_threshold = threshold;
        let cleanup = answer.as_ref().and_then(|a| a.callback.cleanup);
        if let Some(answer) = &answer {
            ctx.reject = answer.reject.clone();
            ctx.cycles_refunded = answer.refunded;
        }
        let exec = if self.injected_trap(canister) {
            Execution {
                trap: Some("injected trap (LocalReplica::trap_nth_message)".into()),
                instructions: 0,
                message: ctx,
            }
        } else {
            let linker = &self.linker;
            let c = self.canisters.get_mut(&canister).expect("canister exists");
            let inst = c.instance.as_mut().expect("installed");
            inst.execute(linker, &entry, ctx)
        };
        let label = match &entry {
            Entry::Export(_) => method.to_string(),
            Entry::Table { .. } => format!("{kind:?}"),
        };
        let Execution { trap, instructions, message } = exec;
        let mut record = MessageRecord::new(canister, kind, &label, instructions);
        record.limit = limit;
        record.ingress_bytes = ingress_bytes;
        record.response_bytes = answer.as_ref().map(|a| a.response_bytes);
        if trap.is_none() {
            record.request_bytes = message.performed.iter().map(|c| (c.method.len() + c.arg.len()) as u64).collect();
        }
        self.records.push(record);
        // The message keeps what its record says it cost; the rest of the prepayment comes back.
        let refund = prepaid.saturating_sub(fees.execution_used(limit, instructions));
        self.canisters.get_mut(&canister).unwrap().host_mut().cycles += refund;
        let cc = self.contexts.get_mut(&context).unwrap();
        cc.instructions += instructions;

        if let Some(trap) = trap {
            // A trapped callback runs its cleanup closure, whose changes do persist.
            if let Some((fun, env)) = cleanup {
                let mut ctx =
                    MessageContext::new(MessageKind::Cleanup, caller, "", vec![], limits::CLEANUP_INSTRUCTIONS);
                ctx.fees = fees;
                ctx.freezing_threshold = threshold;
                let inst = self.canisters.get_mut(&canister).unwrap().instance.as_mut().unwrap();
                let e = inst.execute(&self.linker, &Entry::Table { fun, env }, ctx);
                self.records.push(MessageRecord::new(canister, MessageKind::Cleanup, "cleanup", e.instructions));
                let host = self.canisters.get_mut(&canister).unwrap().host_mut();
                host.cycles = host.cycles.saturating_sub(fees.instructions(e.instructions));
            }
            self.settle(context, None, canister, Some(format!("Canister {canister} trapped: {trap}")));
            return;
        }
        // A replicated query's acceptance is discarded with the rest of its changes.
        if kind.persists() {
            cc.cycles_available = message.cycles_available;
        }
        // Calls made by a message that returned normally are sent (`call_perform` withdrew their
        // fees and prepayments).
        for call in message.performed {
            self.contexts.get_mut(&context).unwrap().outstanding += 1;
            self.queue.push_back(Message::Request(Request {
                to: call.callee,
                from: canister,
                method: call.method,
                arg: call.arg,
                origin: Origin::Canister { caller: canister, caller_context: context, callback: call.callback },
                cycles: call.cycles,
                ingress_bytes: None,
            }));
        }
        self.settle(context, message.response, canister, None);
    }

    /// After a message of `context`: forward its response, or close the context when nothing
    /// more can happen in it.
    fn settle(&mut self, context: u64, response: Option<Response>, canister: Principal, trap: Option<String>) {
        let cc = self.contexts.get_mut(&context).unwrap();
        if let Some(response) = response {
            cc.replied = true;
            let origin = cc.origin.clone();
            let refund = std::mem::take(&mut cc.cycles_available);
            self.respond(&origin, response, refund);
        }
        let cc = &self.contexts[&context];
        if cc.outstanding == 0 {
            let cc = self.contexts.remove(&context).unwrap();
            if !cc.replied {
                let message = trap.unwrap_or_else(|| format!("Canister {canister} did not produce a response"));
                self.respond(
                    &cc.origin,
                    Response::Reject { code: RejectCode::CanisterError as u32, message },
                    cc.cycles_available,
                );
            }
        }
    }

    /// Delivers `response` to whoever made the call, with the `refund` of its unaccepted cycles.
    fn respond(&mut self, origin: &Origin, response: Response, refund: u128) {
        match origin {
            Origin::Ingress(id) => {
                let result = match response {
                    Response::Reply(bytes) => Ok(bytes),
                    Response::Reject { code, message } => Err(Reject { code: RejectCode::from_u32(code), message }),
                };
                self.ingress_results.insert(*id, result);
            }
            Origin::Canister { caller, caller_context, callback } => {
                self.queue.push_back(Message::Response {
                    to: *caller,
                    context: *caller_context,
                    callback: *callback,
                    response,
                    refund,
                });
            }
            Origin::System => {}
        }
    }

    /// Every message executed so far, in order.
    pub fn message_log(&self) -> &[MessageRecord] {
        &self.records
    }
}

/// A request (or timer) as the message that executes it sees it.
struct Incoming<'a> {
    caller: Principal,
    method: &'a str,
    arg: Vec<u8>,
    /// Cycles the caller attached.
    cycles: u128,
    ingress_bytes: Option<u64>,
}

/// A response as the callback that executes it sees it.
struct Answer {
    reject: Option<(u32, String)>,
    callback: Callback,
    response_bytes: u64,
    refunded: u128,
}

/// What the IC answers when a canister cannot pay for a message (IC0207).
fn out_of_cycles(canister: Principal) -> Reject {
    reject(RejectCode::SysTransient, format!("Canister {canister} is out of cycles"))
}

/// What the canister may spend: its balance above its freezing threshold.
fn liquid(c: &Canister, fees: &Fees) -> u128 {
    c.host().cycles.saturating_sub(fees.freezing_threshold(memory_usage(c)))
}

fn memory_usage(c: &Canister) -> u64 {
    let stable = c.host().stable.bytes.len() as u64;
    stable + c.instance.as_ref().map_or(0, |i| i.heap_bytes() + i.module_bytes)
}

fn response_of(canister: Principal, exec: Execution) -> Result<Vec<u8>, Reject> {
    if let Some(t) = exec.trap {
        return Err(reject(RejectCode::CanisterError, format!("Canister {canister} trapped: {t}")));
    }
    match exec.message.response {
        Some(Response::Reply(bytes)) => Ok(bytes),
        Some(Response::Reject { code, message }) => Err(Reject { code: RejectCode::from_u32(code), message }),
        None => Err(reject(RejectCode::CanisterError, format!("Canister {canister} did not produce a response"))),
    }
}

fn clone_host(h: &Host) -> Host {
    let mut n = Host::new(h.canister_id, h.controllers.clone(), h.cycles);
    n.time_nanos = h.time_nanos;
    n.global_timer = h.global_timer;
    n.certified_data = h.certified_data.clone();
    n.stable = h.stable.clone();
    n.log = h.log.clone();
    n.status = h.status;
    n.env_vars = h.env_vars.clone();
    n
}
