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
pub mod compilation;
pub mod costs;
pub mod fees;
pub mod host;
pub mod limits;
pub mod management;
pub mod module_prep;
pub mod replica;
pub mod report;
pub mod system_api;
pub mod validate;

pub use candid::Principal;

/// The replica's one subnet, as `ic0.subnet_self_copy` names it: a self-authenticating-style
/// id (28 bytes of sha224, then 2), fixed so runs are reproducible.
pub fn subnet_id() -> Principal {
    use sha2::{Digest, Sha224};
    let mut bytes = Sha224::digest(b"ic-replica subnet").to_vec();
    bytes.push(2);
    Principal::from_slice(&bytes)
}
pub use fees::{Cycles, Fees};
pub use host::MessageKind;
pub use replica::{CanisterStatus, InstallMode, LocalReplica, Reject, RejectCode};
pub use report::{CallReport, MessageRecord};
