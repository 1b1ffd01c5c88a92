//! The state one canister's running code sees through `ic0`: the message being executed, its
//! stable memory, and the canister's settings. Lives in the wasmtime `Store`.

use std::collections::BTreeMap;

use candid::Principal;
use wasmtime::{Memory, ResourceLimiter};

use crate::costs::MEMORY_GROW_COST;
use crate::limits;

/// What kind of message is executing: decides which system calls are allowed, which limits
/// apply and whether state persists.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Start,
    Init,
    PreUpgrade,
    PostUpgrade,
    Update,
    /// A query method called by a canister: replicated, but its changes are discarded.
    ReplicatedQuery,
    Query,
    InspectMessage,
    ReplyCallback,
    RejectCallback,
    Cleanup,
    GlobalTimer,
    /// Not a message: the instructions an install or upgrade is charged for compiling its
    /// module, before any of its code runs (reported as a record of its own).
    Compilation,
}

impl MessageKind {
    pub fn persists(self) -> bool {
        !matches!(self, MessageKind::Query | MessageKind::ReplicatedQuery | MessageKind::InspectMessage)
    }
    pub fn is_install(self) -> bool {
        matches!(
            self,
            MessageKind::Compilation
                | MessageKind::Start
                | MessageKind::Init
                | MessageKind::PreUpgrade
                | MessageKind::PostUpgrade
        )
    }
    /// Whether `wasm_memory_limit` is enforced (updates before their first await, init,
    /// post_upgrade), as documented on the IC's canister settings page.
    pub fn enforces_wasm_memory_limit(self) -> bool {
        matches!(self, MessageKind::Update | MessageKind::Init | MessageKind::PostUpgrade)
    }
    pub fn stable_page_limit(self) -> u64 {
        match self {
            k if k.is_install() => limits::STABLE_PAGES_PER_INSTALL,
            MessageKind::Query | MessageKind::InspectMessage => limits::STABLE_PAGES_PER_QUERY,
            _ => limits::STABLE_PAGES_PER_UPDATE,
        }
    }
    pub fn may_reply(self) -> bool {
        matches!(
            self,
            MessageKind::Update
                | MessageKind::ReplicatedQuery
                | MessageKind::Query
                | MessageKind::ReplyCallback
                | MessageKind::RejectCallback
        )
    }
    /// The IC's name for the mode a system call was refused in ("… cannot be executed in
    /// non replicated query mode").
    pub fn ic_mode_name(self) -> &'static str {
        match self {
            MessageKind::Start | MessageKind::Compilation => "start",
            MessageKind::Init | MessageKind::PostUpgrade => "init",
            MessageKind::PreUpgrade => "pre upgrade",
            MessageKind::Update => "update",
            MessageKind::ReplicatedQuery => "replicated query",
            MessageKind::Query => "non replicated query",
            MessageKind::InspectMessage => "inspect message",
            MessageKind::ReplyCallback => "reply callback",
            MessageKind::RejectCallback => "reject callback",
            MessageKind::Cleanup => "cleanup",
            MessageKind::GlobalTimer => "global timer",
        }
    }
    /// Whether a message of this kind may see and accept cycles sent with its call.
    pub fn receives_cycles(self) -> bool {
        matches!(
            self,
            MessageKind::Update
                | MessageKind::ReplicatedQuery
                | MessageKind::ReplyCallback
                | MessageKind::RejectCallback
        )
    }
    pub fn may_call(self) -> bool {
        matches!(
            self,
            MessageKind::Update | MessageKind::ReplyCallback | MessageKind::RejectCallback | MessageKind::GlobalTimer
        )
    }
}

/// An outgoing call as the canister builds it with `call_new` .. `call_perform`.
#[derive(Clone, Debug)]
pub struct OutgoingCall {
    pub callee: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    pub callback: Callback,
    pub cycles: u128,
}

/// Table indices and environments of a call's continuations.
#[derive(Copy, Clone, Debug)]
pub struct Callback {
    pub reply: (u32, u32),
    pub reject: (u32, u32),
    pub cleanup: Option<(u32, u32)>,
}

/// A reply or a reject, as the receiver of a response sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Reply(Vec<u8>),
    Reject { code: u32, message: String },
}

/// One message's view of the world.
#[derive(Clone, Debug)]
pub struct MessageContext {
    pub kind: MessageKind,
    pub caller: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    /// Set for reject callbacks.
    pub reject: Option<(u32, String)>,
    /// Whether the call context is still waiting for its reply.
    pub may_reply: bool,
    pub reply_buffer: Vec<u8>,
    pub response: Option<Response>,
    pub accepted: bool,
    pub building: Option<OutgoingCall>,
    pub performed: Vec<OutgoingCall>,
    /// Instruction limit of this message.
    pub limit: u64,
    /// Instructions the call context had executed before this message.
    pub call_context_instructions: u64,
    /// Instructions charged by the replica rather than by fuel (the part of `memory.grow`'s cost
    /// above 255), not yet subtracted from fuel.
    pub pending_charge: u64,
    /// Total charged outside fuel so far in this message.
    pub extra_charged: u64,
    pub cycles_available: u128,
    pub cycles_accepted: u128,
    pub cycles_refunded: u128,
    /// The subnet's fees, for `call_perform`'s prepayment and the `cost_*` calls.
    pub fees: crate::fees::Fees,
    /// The balance the canister must keep (its freezing threshold) when this message started.
    pub freezing_threshold: u128,
    /// What a non-replicated query's data certificate certifies (made when the canister asks).
    pub certified_state: Option<crate::certification::CertifiedState>,
}

impl MessageContext {
    pub fn new(kind: MessageKind, caller: Principal, method: &str, arg: Vec<u8>, limit: u64) -> Self {
        MessageContext {
            kind,
            caller,
            method: method.to_string(),
            arg,
            reject: None,
            may_reply: kind.may_reply(),
            reply_buffer: Vec::new(),
            response: None,
            accepted: false,
            building: None,
            performed: Vec::new(),
            limit,
            call_context_instructions: 0,
            pending_charge: 0,
            extra_charged: 0,
            cycles_available: 0,
            cycles_accepted: 0,
            cycles_refunded: 0,
            fees: crate::fees::Fees::default(),
            freezing_threshold: 0,
            certified_state: None,
        }
    }
}

/// Stable memory with an undo journal so a trapped message leaves no trace, and per-message
/// page accounting as the IC does it (4 KiB pages).
#[derive(Default, Clone)]
pub struct StableMemory {
    pub bytes: Vec<u8>,
    /// Original contents of every 4 KiB page written in this message, and the size before it.
    journal: BTreeMap<u64, Vec<u8>>,
    size_before: Option<usize>,
    accessed: std::collections::BTreeSet<u64>,
}

impl StableMemory {
    pub fn pages(&self) -> u64 {
        self.bytes.len() as u64 / limits::WASM_PAGE
    }
    pub fn begin_message(&mut self) {
        self.journal.clear();
        self.accessed.clear();
        self.size_before = Some(self.bytes.len());
    }
    pub fn commit(&mut self) {
        self.journal.clear();
        self.size_before = None;
    }
    pub fn rollback(&mut self) {
        if let Some(size) = self.size_before.take() {
            for (page, original) in std::mem::take(&mut self.journal) {
                let start = (page * limits::OS_PAGE) as usize;
                if start < size {
                    self.bytes[start..start + original.len()].copy_from_slice(&original);
                }
            }
            self.bytes.truncate(size);
        }
    }
    /// Records access to `[offset, offset+len)`; returns (newly accessed pages, newly dirtied
    /// pages) — the latter only when `write`.
    pub fn touch(&mut self, offset: u64, len: u64, write: bool) -> (u64, u64) {
        if len == 0 {
            return (0, 0);
        }
        let (first, last) = (offset / limits::OS_PAGE, (offset + len - 1) / limits::OS_PAGE);
        let (mut accessed, mut dirtied) = (0, 0);
        for page in first..=last {
            if self.accessed.insert(page) {
                accessed += 1;
            }
            if write && !self.journal.contains_key(&page) {
                let start = (page * limits::OS_PAGE) as usize;
                let end = (start + limits::OS_PAGE as usize).min(self.bytes.len());
                self.journal.insert(page, self.bytes[start..end].to_vec());
                dirtied += 1;
            }
        }
        (accessed, dirtied)
    }
    pub fn accessed_pages(&self) -> u64 {
        self.accessed.len() as u64
    }
}

/// The store data of one canister instance.
pub struct Host {
    pub canister_id: Principal,
    pub controllers: Vec<Principal>,
    pub cycles: u128,
    pub time_nanos: u64,
    pub global_timer: u64,
    pub certified_data: Vec<u8>,
    pub stable: StableMemory,
    pub message: MessageContext,
    pub memory: Option<Memory>,
    pub running: bool,
    pub log: Vec<String>,
    pub status: u32,
    /// The canister's environment variables (a setting controllers change), by name.
    pub env_vars: BTreeMap<String, String>,
}

impl Host {
    pub fn new(canister_id: Principal, controllers: Vec<Principal>, cycles: u128) -> Host {
        Host {
            canister_id,
            controllers,
            cycles,
            time_nanos: 0,
            global_timer: 0,
            certified_data: Vec::new(),
            stable: StableMemory::default(),
            message: MessageContext::new(MessageKind::Query, Principal::anonymous(), "", vec![], 0),
            memory: None,
            running: false,
            log: Vec::new(),
            status: 1,
            env_vars: BTreeMap::new(),
        }
    }
}

impl ResourceLimiter for Host {
    fn memory_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if !self.running {
            return Ok(true); // instantiation or a restore by the replica itself
        }
        // fuel charged 255 of memory.grow's 300; the rest is billed at the next system call.
        self.message.pending_charge += MEMORY_GROW_COST - u8::MAX as u64;
        let limit = if self.message.kind.enforces_wasm_memory_limit() {
            limits::WASM_MEMORY_LIMIT
        } else {
            limits::WASM32_MAX_HEAP
        };
        Ok(desired as u64 <= limit && desired >= current)
    }
    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}
