//! The inference canister's candid interface, as Rust types.
//!
//! Every type an endpoint takes or returns lives here, with the errors of each family of
//! endpoints: [`RegistryError`] (uploads and versions), [`InferenceError`] (running a model),
//! [`JobError`] (polling), [`RoleError`] and [`ConfigError`] (administration), [`AuditError`]
//! (the audit log). Each error says
//! what went wrong in its variant and fields; its `Display` is a sentence for people, never a
//! Debug dump. `inference/inference.did` is generated from the canister that uses these types.
//!
//! This crate has no IC or tract dependency, so the typed client, the maintainers' tool,
//! agency canisters and the engine share it.

mod admin;
mod audit;
mod errors;
mod inference;
mod jobs;
mod registry;
#[cfg(feature = "storable")]
mod storable;
mod text;

pub use admin::*;
pub use audit::*;
pub use errors::*;
pub use inference::*;
pub use jobs::*;
pub use registry::*;
pub use text::*;

pub use candid::Principal;
