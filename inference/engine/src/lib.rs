//! The inference canister's engine, as plain Rust.
//!
//! Nothing here calls the IC: the canister shell (`inference-canister`) owns the system API and
//! hands the engine what it needs, so every part builds and is tested natively at full speed.
//!
//! - [`stable`]: the stable-memory layout (one `MemoryManager`, named memories, a versioned
//!   header); [`registry`]: chunked uploads, versions, activation; [`access`]: roles;
//!   [`jobs`]: the polling jobs' records and results; [`audit`]: the audit log.
//! - [`model`]: ONNX inspection and plan building ([`model::load`]); [`executor`]: resumable,
//!   deterministic runs.
//! - What `model::load` adds to tract, by layer (as tract itself is laid out):
//!   [`onnx`]: the parser's extra operators and rewrites of the raw ONNX graph;
//!   [`passes`]: the ordered passes over tract's typed model (how to add one: there);
//!   [`ops`]: the tract operators those passes wire in; [`kernels`]: their loops (simd128,
//!   scalar, reference), checked at run time by the self-test.
//! - [`platform`]: which tract kernels this build selects (wasm simd128 inside the canister).
//! - [`selftest`]: every kernel family against its reference ([`kernels::check_all`]), then a
//!   small fixed graph run through tract's optimiser and kernels, with a digest of its output
//!   bits, to prove the kernel registry works in every message.

pub mod access;
pub mod audit;
pub mod executor;
pub mod jobs;
pub mod kernels;
pub mod model;
pub mod onnx;
pub mod ops;
pub mod passes;
pub mod platform;
pub mod quota;
pub mod registry;
pub mod selftest;
pub mod stable;
pub mod text;
pub mod types;
pub mod upload_progress;

pub use inference_api::candid_storable;
pub use tract_onnx;
