//! [`Transport`] over ic-agent: the CLI's way to a real network or a local replica.

use candid::Principal;
use ic_agent::Agent;
use inference_client::Transport;

/// One canister through an agent (the agent holds the identity).
pub struct AgentTransport {
    pub agent: Agent,
    pub canister: Principal,
}

impl Transport for AgentTransport {
    async fn update(&self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        self.agent.update(&self.canister, method).with_arg(arg).call_and_wait().await.map_err(|e| e.to_string())
    }

    async fn query(&self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        self.agent.query(&self.canister, method).with_arg(arg).call().await.map_err(|e| e.to_string())
    }
}
