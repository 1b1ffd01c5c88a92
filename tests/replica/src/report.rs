//! What a call cost: every message it caused, with instructions, DTS rounds and cycles.
//!
//! A record keeps what the IC prices (instructions, the message's limit, ingress, request and
//! response bytes), so the same call can be priced on a subnet of any size ([`Fees`]).

use candid::Principal;

use crate::fees::{Cycles, Fees};
use crate::host::MessageKind;
use crate::limits;

/// One executed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRecord {
    pub canister: Principal,
    pub kind: MessageKind,
    pub method: String,
    pub instructions: u64,
    /// The instructions it could have executed (what it prepaid for).
    pub limit: u64,
    /// The ingress message it executes, when it is the first message of an ingress call: bytes
    /// the canister paid to receive.
    pub ingress_bytes: Option<u64>,
    /// Requests (method name and argument) of the calls it made.
    pub request_bytes: Vec<u64>,
    /// For a response callback: the response it received (reply data or reject message).
    pub response_bytes: Option<u64>,
}

impl MessageRecord {
    pub fn new(canister: Principal, kind: MessageKind, method: &str, instructions: u64) -> Self {
        MessageRecord {
            canister,
            kind,
            method: method.to_string(),
            instructions,
            limit: instructions,
            ingress_bytes: None,
            request_bytes: vec![],
            response_bytes: None,
        }
    }

    /// Deterministic-time-slicing rounds this message spans: one per 2 B-instruction slice.
    pub fn rounds(&self) -> u64 {
        self.instructions.div_ceil(limits::SLICE_INSTRUCTIONS).max(1)
    }

    /// What the IC charges for it on a subnet with `fees`. Non-replicated queries are free; an
    /// install is one message (its fixed fee is on the compilation record, its other parts pay
    /// their instructions); a cleanup callback runs on its call's prepayment.
    pub fn cycles_at(&self, fees: &Fees) -> Cycles {
        let execution = match self.kind {
            MessageKind::Query | MessageKind::InspectMessage => 0,
            MessageKind::Start
            | MessageKind::Init
            | MessageKind::PreUpgrade
            | MessageKind::PostUpgrade
            | MessageKind::Cleanup => fees.instructions(self.instructions),
            MessageKind::Compilation => fees.execution(self.instructions),
            _ => fees.execution_used(self.limit, self.instructions),
        };
        Cycles {
            execution,
            ingress: self.ingress_bytes.map_or(0, |b| fees.ingress(b)),
            xnet: self.request_bytes.iter().map(|&b| fees.xnet_request(b)).sum::<u128>()
                + self.response_bytes.map_or(0, |b| fees.xnet_response(b)),
        }
    }

    /// What it costs on a 13-node subnet.
    pub fn cycles(&self) -> Cycles {
        self.cycles_at(&Fees::default())
    }
}

/// The cost of one call and everything it caused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallReport {
    pub messages: Vec<MessageRecord>,
    /// The fees of the subnet it ran on.
    pub fees: Fees,
}

impl CallReport {
    pub fn from_records(messages: Vec<MessageRecord>, fees: Fees) -> Self {
        CallReport { messages, fees }
    }
    /// The same report restricted to one canister's messages.
    pub fn of(&self, canister: Principal) -> CallReport {
        CallReport {
            messages: self.messages.iter().filter(|m| m.canister == canister).cloned().collect(),
            fees: self.fees,
        }
    }
    pub fn instructions(&self) -> u64 {
        self.messages.iter().map(|m| m.instructions).sum()
    }
    pub fn message_count(&self) -> u64 {
        self.messages.iter().filter(|m| m.kind != MessageKind::Compilation).count() as u64
    }
    pub fn max_instructions_per_message(&self) -> u64 {
        self.messages.iter().map(|m| m.instructions).max().unwrap_or(0)
    }
    pub fn rounds(&self) -> u64 {
        self.messages.iter().map(|m| m.rounds()).sum()
    }
    /// Cycles by kind on the subnet the call ran on.
    pub fn cycles_by_kind(&self) -> Cycles {
        self.cycles_at(&self.fees)
    }
    /// Cycles by kind, had the call run on a subnet with `fees`.
    pub fn cycles_at(&self, fees: &Fees) -> Cycles {
        self.messages.iter().map(|m| m.cycles_at(fees)).sum()
    }
    /// Every cycle the call cost: execution, ingress and inter-canister traffic.
    pub fn cycles(&self) -> u128 {
        self.cycles_by_kind().total()
    }
}
