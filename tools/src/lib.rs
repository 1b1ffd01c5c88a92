//! Maintainers' tools for the inference canister. The upload logic is written once against
//! `inference-client`'s [`Transport`](inference_client::Transport): ic-agent implements it
//! against a real network ([`agent`]), the test harness against the local replica (and PocketIC).

pub mod agent;
pub mod audit;
pub mod capacity;
pub mod upload;
