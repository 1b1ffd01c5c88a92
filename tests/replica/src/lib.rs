//! A local Internet Computer replica for tests and benchmarks.
//!
//! The PocketIC server cannot be downloaded here, so this crate executes canister modules
//! in-process with wasmtime — the engine the IC runs — under the IC's rules: install-time
//! validation ([`validate`]), the IC's instruction cost table through fuel ([`costs`]), per-message
//! limits and payload sizes ([`limits`]), all-or-nothing messages with rollback on trap, stable
//! memory kept across upgrades, and every `await` on an inter-canister call ending the message
//! (the response runs as a new message with a fresh budget). See README.md for the full list
//! and the known differences from the IC.

pub mod canister;
pub mod certification;
pub mod compilation;
pub mod costs;
pub mod host;
pub mod http;
pub mod management;
pub mod module_prep;
pub mod replica;
pub mod report;
pub mod system_api;
pub mod validate;
// The IC's limits, fees and scheduling, in a crate of their own that the CLI shares.
pub use ic_cost_model::{fees, limits, subnet};

pub use candid::Principal;

/// The replica's one subnet, as `ic0.subnet_self_copy` names it. Without a delegation in a
/// certificate, clients (ic-agent, agent-js) take the subnet to be the self-authenticating id
/// of the root key, so that is its id.
pub fn subnet_id() -> Principal {
    Principal::self_authenticating(certification::root_key_der())
}
pub use fees::{Cycles, Fees};
pub use host::MessageKind;
pub use replica::{CanisterStatus, InstallMode, LocalReplica, Reject, RejectCode};
pub use report::{CallReport, MessageRecord};
