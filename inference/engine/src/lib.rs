//! The inference canister's engine, as plain Rust.
//!
//! Nothing here calls the IC: the canister shell (`inference-canister`) owns the system API and
//! hands the engine what it needs, so every part builds and is tested natively at full speed.
//!
//! - [`stable`]: the stable-memory layout (one `MemoryManager`, named memories, a versioned
//!   header); [`registry`]: chunked uploads, versions, activation; [`access`]: roles;
//!   [`jobs`]: the polling jobs' records and results.
//! - [`model`]: ONNX inspection and plan building; [`ops`]: operators we add to tract-onnx; [`executor`]: resumable, deterministic runs.
//! - [`platform`]: which tract kernels this build selects (wasm simd128 inside the canister).
//! - [`selftest`]: a small fixed graph run through tract's optimiser and kernels, with a digest
//!   of its output bits, to prove the kernel registry works in every message.

pub mod access;
pub mod executor;
pub mod jobs;
pub mod model;
pub mod ops;
pub mod platform;
pub mod registry;
pub mod selftest;
pub mod stable;
pub mod types;

pub use inference_api::candid_storable;
pub use tract_onnx;
