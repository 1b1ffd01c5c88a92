//! Maintainers' tools for the inference canister. The upload logic is written once against
//! [`Transport`]: ic-agent implements it against a real network, the test harness against the
//! local replica (and PocketIC).

pub mod upload;

use std::future::Future;

/// How the tools reach the canister: candid-encoded arguments in, raw reply bytes out.
pub trait Transport {
    fn update(&self, method: &str, arg: Vec<u8>) -> impl Future<Output = Result<Vec<u8>, String>>;
    fn query(&self, method: &str, arg: Vec<u8>) -> impl Future<Output = Result<Vec<u8>, String>>;
}

/// Calls a candid method through a transport.
pub async fn call<T: Transport, A: candid::utils::ArgumentEncoder, R: for<'a> candid::utils::ArgumentDecoder<'a>>(
    transport: &T,
    method: &str,
    args: A,
    query: bool,
) -> Result<R, String> {
    let arg = candid::encode_args(args).map_err(|e| e.to_string())?;
    let reply = if query { transport.query(method, arg).await? } else { transport.update(method, arg).await? };
    candid::decode_args(&reply).map_err(|e| format!("{method}: reply did not decode: {e}"))
}
