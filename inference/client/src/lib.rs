//! A typed client of the inference canister, written once against [`Transport`] (as
//! `icrc-ledger-client`'s `ICRC1Client<R: Runtime>` is for the ledger):
//!
//! ```ignore
//! let client = InferenceClient::new(transport);
//! let answer = client.classify(&request).await?;   // Result<Classification, InferenceError>
//! ```
//!
//! The outer `Result` is the call itself (rejected, or a reply that did not decode); the inner
//! one is the canister's typed answer. [`calls`] has the same endpoints as [`Call`] values
//! (method, encoded argument, reply type) for callers that submit a call now and decode its reply
//! later, such as the test harness. Method names appear here and in the canister, nowhere else.

#[cfg(feature = "verify")]
pub mod certified;
mod endpoints;
mod macros;
pub mod pool;
mod router;
pub mod text;
mod transport;

pub use endpoints::calls;
pub use inference_api as api;
pub use router::Router;
pub use transport::*;

#[doc(hidden)]
pub use candid as __candid;

use std::marker::PhantomData;

use candid::CandidType;
use serde::de::DeserializeOwned;

/// Whether a method is an update (goes through consensus, may change state) or a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Update,
    Query,
}

/// One call of an endpoint, ready to send: its method, mode and candid-encoded argument; `R` is
/// what its reply decodes to.
#[derive(Clone, Debug)]
pub struct Call<R> {
    pub method: &'static str,
    pub mode: Mode,
    pub arg: Vec<u8>,
    reply: PhantomData<fn() -> R>,
}

impl<R: CandidType + DeserializeOwned> Call<R> {
    /// A call of `method` with `arg` (the result of `candid::encode_args`).
    pub fn new(method: &'static str, mode: Mode, arg: Result<Vec<u8>, candid::Error>) -> Self {
        // Every argument type of the interface encodes; failing here is a bug in this crate.
        let arg = arg.unwrap_or_else(|e| panic!("{method}: arguments did not encode: {e}"));
        Call { method, mode, arg, reply: PhantomData }
    }

    /// Decodes the canister's reply to this call.
    pub fn decode(&self, reply: &[u8]) -> Result<R, CallError> {
        candid::decode_one(reply).map_err(|e| CallError::Decode { method: self.method, message: e.to_string() })
    }

    /// Sends the call through `transport` and decodes the reply.
    pub async fn send<T: Transport>(self, transport: &T) -> Result<R, CallError> {
        let reply = match self.mode {
            Mode::Update => transport.update(self.method, self.arg.clone()).await,
            Mode::Query => transport.query(self.method, self.arg.clone()).await,
        };
        let reply = reply.map_err(|message| CallError::Rejected { method: self.method, message })?;
        self.decode(&reply)
    }
}

/// A call that got no usable reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The transport or the IC rejected the call (unreachable, refused by `inspect_message`,
    /// the canister trapped, ...).
    #[error("{method}: {message}")]
    Rejected { method: &'static str, message: String },
    /// A reply came that is not what the interface says (a different canister or version).
    #[error("{method}: the reply did not decode: {message}")]
    Decode { method: &'static str, message: String },
}

/// The inference canister, reached through `T`.
pub struct InferenceClient<T> {
    transport: T,
}

impl<T: Transport> InferenceClient<T> {
    pub fn new(transport: T) -> Self {
        InferenceClient { transport }
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn into_transport(self) -> T {
        self.transport
    }
}

impl<T: Transport> InferenceClient<T> {
    /// Every model version the caller may see, following `list_models`' pages to the end.
    pub async fn all_models(&self) -> Result<Result<Vec<api::ModelInfo>, api::RegistryError>, CallError> {
        let (mut models, mut after) = (Vec::new(), None);
        loop {
            let page = match self.list_models(after.as_ref()).await? {
                Ok(page) => page,
                Err(refused) => return Ok(Err(refused)),
            };
            models.extend(page.models);
            match page.next {
                Some(cursor) => after = Some(cursor),
                None => return Ok(Ok(models)),
            }
        }
    }
}
