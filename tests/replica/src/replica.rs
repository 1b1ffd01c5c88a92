//! The local replica: canisters, call contexts and the message queue, driven the way PocketIC
//! drives a subnet — nothing happens until a call, a tick or a time advance asks for it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use candid::Principal;
use wasmtime::Linker;

use crate::canister::{load_module, shared_cache, Entry, Execution, Instantiated, ModuleCache};
use crate::host::{Callback, Host, MessageContext, MessageKind, Response};
use crate::limits;
use crate::report::{CallReport, MessageRecord};

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
/// ingress fee) or from another canister.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    Ingress,
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
}

enum Message {
    Request { to: Principal, from: Principal, method: String, arg: Vec<u8>, origin: Origin, cycles: u128 },
    Response { to: Principal, context: u64, callback: Callback, response: Response, from: Principal },
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
        }
    }

    /// For tests of what happens past the limit: sets the instructions an update message may
    /// execute below the IC's 40 B, so a small model stands in for one too big for 40 B (never
    /// above 40 B; pass the IC's limit to restore it).
    pub fn set_update_instruction_limit(&mut self, limit: u64) {
        self.update_instruction_limit = limit.min(limits::UPDATE_INSTRUCTIONS);
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

    pub fn controllers(&self, canister: Principal) -> Vec<Principal> {
        self.canisters.get(&canister).map(|c| c.host().controllers.clone()).unwrap_or_default()
    }

    pub fn set_controllers(
        &mut self,
        canister: Principal,
        sender: Principal,
        controllers: Vec<Principal>,
    ) -> Result<(), Reject> {
        let c = self.canister_mut(canister)?;
        if !c.host().controllers.contains(&sender) {
            return Err(reject(
                RejectCode::CanisterError,
                format!("Only controllers of canister {canister} can change its settings"),
            ));
        }
        c.host_mut().controllers = controllers;
        Ok(())
    }

    pub fn cycle_balance(&self, canister: Principal) -> u128 {
        self.canisters.get(&canister).map_or(0, |c| c.host().cycles)
    }

    pub fn add_cycles(&mut self, canister: Principal, amount: u128) {
        if let Some(c) = self.canisters.get_mut(&canister) {
            c.host_mut().cycles += amount;
        }
    }

    pub fn stable_memory(&self, canister: Principal) -> Vec<u8> {
        self.canisters.get(&canister).map(|c| c.host().stable.bytes.clone()).unwrap_or_default()
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
        let (module, hash) = load_module(&self.cache, wasm).map_err(|e| reject(RejectCode::CanisterError, e))?;
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
        let mut records = Vec::new();
        let mut budget = limits::INSTALL_INSTRUCTIONS;
        let mut run = |inst: &mut Instantiated,
                       linker: &Linker<Host>,
                       kind: MessageKind,
                       export: &str,
                       arg: Vec<u8>|
         -> Result<(), String> {
            if !inst.has_export(export) {
                return Ok(());
            }
            let ctx = MessageContext::new(kind, sender, export, arg, budget);
            let exec = inst.execute(linker, &Entry::Export(export.to_string()), ctx);
            budget -= exec.instructions;
            records.push(MessageRecord::new(canister, kind, export, exec.instructions));
            match exec.trap {
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
        match result {
            Ok(fresh) => {
                c.instance = Some(fresh);
                c.idle_host = None;
                Ok(CallReport::from_records(records))
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

    pub fn advance_time(&mut self, by: Duration) {
        self.time_nanos += by.as_nanos() as u64;
        for c in self.canisters.values_mut() {
            c.host_mut().time_nanos = self.time_nanos;
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
            let context = self.open_context(id, id, Origin::System);
            self.execute_in_context(
                id,
                context,
                Entry::Export("canister_global_timer".into()),
                MessageKind::GlobalTimer,
                id,
                "canister_global_timer",
                vec![],
                None,
                0,
            );
        }
        for _ in 0..self.queue.len() {
            let Some(message) = self.queue.pop_front() else { break };
            self.deliver(message);
        }
        CallReport::from_records(self.records[start..].to_vec())
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
        (result, CallReport::from_records(self.records[start..].to_vec()))
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
        (result, CallReport::from_records(self.records[start..].to_vec()))
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
        (result, CallReport::from_records(self.records[start..].to_vec()))
    }

    fn submit(&mut self, canister: Principal, sender: Principal, method: &str, arg: Vec<u8>) -> Result<u64, Reject> {
        self.enqueue_request(canister, sender, method, arg, Delivery::Ingress)
    }

    fn enqueue_request(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
        delivery: Delivery,
    ) -> Result<u64, Reject> {
        if delivery == Delivery::InterCanister {
            if !self.canisters.contains_key(&sender) {
                return Err(reject(RejectCode::DestinationInvalid, format!("{sender} is not a canister here")));
            }
            if arg.len() > limits::MAX_REQUEST_BYTES {
                return Err(reject(
                    RejectCode::CanisterError,
                    format!("Request of {} bytes exceeds the limit of {}", arg.len(), limits::MAX_REQUEST_BYTES),
                ));
            }
        } else if arg.len() > limits::MAX_INGRESS_BYTES {
            return Err(reject(
                RejectCode::SysFatal,
                format!(
                    "Request payload of {} bytes exceeds the ingress limit of {} bytes",
                    arg.len(),
                    limits::MAX_INGRESS_BYTES
                ),
            ));
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
            return Err(reject(RejectCode::DestinationInvalid, format!("Canister {canister} has no code installed")));
        };
        if !inst.has_export(&format!("canister_update {method}")) {
            return Err(reject(
                RejectCode::DestinationInvalid,
                format!("Canister {canister} has no update method '{method}'"),
            ));
        }
        if delivery == Delivery::Ingress && inst.has_export("canister_inspect_message") {
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
        if delivery == Delivery::Ingress {
            let fee = limits::CYCLES_INGRESS_RECEPTION + limits::CYCLES_INGRESS_PER_BYTE * arg.len() as u128;
            c.host_mut().cycles = c.host().cycles.saturating_sub(fee);
        }
        let id = self.fresh_id();
        self.queue.push_back(Message::Request {
            to: canister,
            from: sender,
            method: method.to_string(),
            arg,
            origin: Origin::Ingress(id),
            cycles: 0,
        });
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
                Err(reject(RejectCode::DestinationInvalid, format!("Canister {canister} has no code installed"))),
                CallReport::default(),
            );
        };
        let export = format!("canister_query {method}");
        if !inst.has_export(&export) {
            return (
                Err(reject(
                    RejectCode::DestinationInvalid,
                    format!("Canister {canister} has no query method '{method}'"),
                )),
                CallReport::default(),
            );
        }
        let ctx = MessageContext::new(MessageKind::Query, sender, method, arg, limits::QUERY_INSTRUCTIONS);
        let exec = inst.execute(linker, &Entry::Export(export.clone()), ctx);
        let record = MessageRecord::new(canister, MessageKind::Query, method, exec.instructions);
        let report = CallReport::from_records(vec![record]);
        (response_of(canister, exec), report)
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn open_context(&mut self, canister: Principal, caller: Principal, origin: Origin) -> u64 {
        let id = self.fresh_id();
        self.contexts
            .insert(id, CallContext { canister, caller, origin, replied: false, outstanding: 0, instructions: 0 });
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
            Message::Request { to, from, method, arg, origin, cycles } => {
                self.deliver_request(to, from, method, arg, origin, cycles)
            }
            Message::Response { to, context, callback, response, from } => {
                self.deliver_response(to, context, callback, response, from)
            }
        }
    }

    fn deliver_request(
        &mut self,
        to: Principal,
        from: Principal,
        method: String,
        arg: Vec<u8>,
        origin: Origin,
        cycles: u128,
    ) {
        let refuse = |r: &mut LocalReplica, code, msg: String| {
            r.respond(&origin, Response::Reject { code: code as u32, message: msg }, to)
        };
        if to == Principal::management_canister() {
            let response = self.management.call(from, &method, &arg);
            return self.respond(&origin, response, to);
        }
        let Some(c) = self.canisters.get(&to) else {
            return refuse(self, RejectCode::DestinationInvalid, format!("Canister {to} not found"));
        };
        if c.status != CanisterStatus::Running {
            return refuse(self, RejectCode::CanisterError, format!("Canister {to} is not running"));
        }
        let Some(inst) = c.instance.as_ref() else {
            return refuse(self, RejectCode::DestinationInvalid, format!("Canister {to} has no code installed"));
        };
        let (export, kind) = if inst.has_export(&format!("canister_update {method}")) {
            (format!("canister_update {method}"), MessageKind::Update)
        } else if inst.has_export(&format!("canister_query {method}")) {
            (format!("canister_query {method}"), MessageKind::ReplicatedQuery)
        } else {
            return refuse(
                self,
                RejectCode::DestinationInvalid,
                format!("Canister {to} has no update method '{method}'"),
            );
        };
        let context = self.open_context(to, from, origin);
        self.execute_in_context(to, context, Entry::Export(export), kind, from, &method, arg, None, cycles);
    }

    fn deliver_response(
        &mut self,
        to: Principal,
        context: u64,
        callback: Callback,
        response: Response,
        from: Principal,
    ) {
        let Some(cc) = self.contexts.get_mut(&context) else { return };
        cc.outstanding -= 1;
        let caller = cc.caller;
        let alive = self.canisters.get(&to).is_some_and(|c| c.instance.is_some());
        if !alive {
            self.contexts.remove(&context);
            return;
        }
        let (entry, kind, arg, rejected) = match response {
            Response::Reply(bytes) => (callback.reply, MessageKind::ReplyCallback, bytes, None),
            Response::Reject { code, message } => {
                (callback.reject, MessageKind::RejectCallback, vec![], Some((code, message)))
            }
        };
        let _ = from;
        self.execute_in_context(
            to,
            context,
            Entry::Table { fun: entry.0, env: entry.1 },
            kind,
            caller,
            "",
            arg,
            Some((rejected, callback)),
            0,
        );
    }

    /// Runs one message of call context `context` on `canister`, then settles the context:
    /// queues the calls it made, forwards a reply or reject, or closes it.
    #[allow(clippy::too_many_arguments)]
    fn execute_in_context(
        &mut self,
        canister: Principal,
        context: u64,
        entry: Entry,
        kind: MessageKind,
        caller: Principal,
        method: &str,
        arg: Vec<u8>,
        // For response callbacks: the reject (if it is one) and the call's continuations.
        response: Option<(Option<(u32, String)>, Callback)>,
        cycles: u128,
    ) {
        let cc = &self.contexts[&context];
        let mut ctx = MessageContext::new(kind, caller, method, arg, self.update_instruction_limit);
        ctx.call_context_instructions = cc.instructions;
        ctx.may_reply = kind.may_reply() && !cc.replied && !matches!(cc.origin, Origin::System);
        ctx.cycles_available = cycles;
        let cleanup = response.as_ref().and_then(|(_, cb)| cb.cleanup);
        if let Some((Some(reject), _)) = response {
            ctx.reject = Some(reject);
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
        let mut charged = limits::CYCLES_PER_MESSAGE + limits::CYCLES_PER_INSTRUCTION * exec.instructions as u128;
        let label = match &entry {
            Entry::Export(_) => method.to_string(),
            Entry::Table { .. } => format!("{kind:?}"),
        };
        self.records.push(MessageRecord::new(canister, kind, &label, exec.instructions));
        let Execution { trap, instructions, message } = exec;
        self.contexts.get_mut(&context).unwrap().instructions += instructions;

        if let Some(trap) = trap {
            // A trapped callback runs its cleanup closure, whose changes do persist.
            if let Some((fun, env)) = cleanup {
                let ctx = MessageContext::new(MessageKind::Cleanup, caller, "", vec![], limits::CLEANUP_INSTRUCTIONS);
                let inst = self.canisters.get_mut(&canister).unwrap().instance.as_mut().unwrap();
                let e = inst.execute(&self.linker, &Entry::Table { fun, env }, ctx);
                self.records.push(MessageRecord::new(canister, MessageKind::Cleanup, "cleanup", e.instructions));
                charged += limits::CYCLES_PER_INSTRUCTION * e.instructions as u128;
            }
            self.charge(canister, charged + cycles);
            self.settle(context, None, canister, Some(format!("Canister {canister} trapped: {trap}")));
            return;
        }
        // Calls made by a message that returned normally are sent.
        for call in message.performed {
            charged += limits::CYCLES_XNET_CALL + limits::CYCLES_XNET_PER_BYTE * call.arg.len() as u128;
            self.contexts.get_mut(&context).unwrap().outstanding += 1;
            self.queue.push_back(Message::Request {
                to: call.callee,
                from: canister,
                method: call.method,
                arg: call.arg,
                origin: Origin::Canister { caller: canister, caller_context: context, callback: call.callback },
                cycles: call.cycles,
            });
        }
        // Cycles offered and not accepted go back with the response (not modelled further).
        self.charge(canister, charged);
        self.settle(context, message.response, canister, None);
    }

    fn charge(&mut self, canister: Principal, cycles: u128) {
        if let Some(c) = self.canisters.get_mut(&canister) {
            let h = c.host_mut();
            h.cycles = h.cycles.saturating_sub(cycles);
        }
    }

    /// After a message of `context`: forward its response, or close the context when nothing
    /// more can happen in it.
    fn settle(&mut self, context: u64, response: Option<Response>, canister: Principal, trap: Option<String>) {
        let cc = self.contexts.get_mut(&context).unwrap();
        if let Some(response) = response {
            cc.replied = true;
            let origin = cc.origin.clone();
            self.respond(&origin, response, canister);
        }
        let cc = &self.contexts[&context];
        if cc.outstanding == 0 {
            let cc = self.contexts.remove(&context).unwrap();
            if !cc.replied {
                let message = trap.unwrap_or_else(|| format!("Canister {canister} did not produce a response"));
                self.respond(
                    &cc.origin,
                    Response::Reject { code: RejectCode::CanisterError as u32, message },
                    canister,
                );
            }
        }
    }

    fn respond(&mut self, origin: &Origin, response: Response, from: Principal) {
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
                    from,
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
    n
}
