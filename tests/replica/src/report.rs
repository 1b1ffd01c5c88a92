//! What a call cost: every message it caused, with instructions, DTS rounds and cycles.

use candid::Principal;

use crate::host::MessageKind;
use crate::limits;

/// One executed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRecord {
    pub canister: Principal,
    pub kind: MessageKind,
    pub method: String,
    pub instructions: u64,
}

impl MessageRecord {
    pub fn new(canister: Principal, kind: MessageKind, method: &str, instructions: u64) -> Self {
        MessageRecord { canister, kind, method: method.to_string(), instructions }
    }

    /// Deterministic-time-slicing rounds this message spans: one per 2 B-instruction slice.
    pub fn rounds(&self) -> u64 {
        self.instructions.div_ceil(limits::SLICE_INSTRUCTIONS).max(1)
    }

    /// Cycles the IC charges for executing it (queries are free).
    pub fn cycles(&self) -> u128 {
        match self.kind {
            MessageKind::Query | MessageKind::InspectMessage => 0,
            _ => limits::CYCLES_PER_MESSAGE + limits::CYCLES_PER_INSTRUCTION * self.instructions as u128,
        }
    }
}

/// The cost of one call and everything it caused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallReport {
    pub messages: Vec<MessageRecord>,
}

impl CallReport {
    pub fn from_records(messages: Vec<MessageRecord>) -> Self {
        CallReport { messages }
    }
    /// The same report restricted to one canister's messages.
    pub fn of(&self, canister: Principal) -> CallReport {
        CallReport { messages: self.messages.iter().filter(|m| m.canister == canister).cloned().collect() }
    }
    pub fn instructions(&self) -> u64 {
        self.messages.iter().map(|m| m.instructions).sum()
    }
    pub fn message_count(&self) -> u64 {
        self.messages.len() as u64
    }
    pub fn max_instructions_per_message(&self) -> u64 {
        self.messages.iter().map(|m| m.instructions).max().unwrap_or(0)
    }
    pub fn rounds(&self) -> u64 {
        self.messages.iter().map(|m| m.rounds()).sum()
    }
    /// Execution cycles: 5 M per replicated message plus 1 per instruction.
    pub fn cycles(&self) -> u128 {
        self.messages.iter().map(|m| m.cycles()).sum()
    }
}
