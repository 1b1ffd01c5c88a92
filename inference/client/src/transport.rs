//! How a client reaches the canister: candid-encoded arguments in, raw reply bytes out.

use std::future::Future;

/// A way to call one canister as one principal. Implemented by the maintainers' tool over
/// ic-agent, by the test harness over the local replica or PocketIC, and (feature `cdk`) by
/// [`CdkTransport`] for inter-canister calls.
pub trait Transport {
    fn update(&self, method: &str, arg: Vec<u8>) -> impl Future<Output = Result<Vec<u8>, String>>;
    fn query(&self, method: &str, arg: Vec<u8>) -> impl Future<Output = Result<Vec<u8>, String>>;
}

impl<T: Transport> Transport for &T {
    fn update(&self, method: &str, arg: Vec<u8>) -> impl Future<Output = Result<Vec<u8>, String>> {
        (**self).update(method, arg)
    }
    fn query(&self, method: &str, arg: Vec<u8>) -> impl Future<Output = Result<Vec<u8>, String>> {
        (**self).query(method, arg)
    }
}

/// Inter-canister calls from a canister, with unbounded wait: an inference may take many
/// messages, and a bounded wait could time out with the job still running.
#[cfg(feature = "cdk")]
pub struct CdkTransport {
    pub canister: candid::Principal,
}

#[cfg(feature = "cdk")]
impl Transport for CdkTransport {
    async fn update(&self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        let call = ic_cdk::call::Call::unbounded_wait(self.canister, method).with_raw_args(&arg);
        call.await.map(|reply| reply.into_bytes()).map_err(|e| e.to_string())
    }

    /// Canisters call query methods as updates (a replicated call of a query method).
    async fn query(&self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        self.update(method, arg).await
    }
}
