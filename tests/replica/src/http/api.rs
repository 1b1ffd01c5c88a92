//! The IC's HTTP interface over the replica: `status`, `query`, `call` (v2 asynchronous, v3/v4
//! synchronous) and `read_state`, with the bodies and status codes clients expect.

use std::collections::HashMap;

use candid::Principal;
use ic_transport_types::{EnvelopeContent, NodeSignature, QueryResponse, RejectResponse, ReplyResponse};
use serde::Serialize;

use super::envelope::{self, Checked};
use super::state::{self, Path, RequestStatus};
use super::Front;
use crate::replica::{Reject, RejectCode};

/// An HTTP response: status code, content type and body.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    fn cbor(status: u16, body: Vec<u8>) -> Reply {
        Reply { status, content_type: "application/cbor", body }
    }
    pub(super) fn text(status: u16, message: impl Into<String>) -> Reply {
        Reply { status, content_type: "text/plain", body: message.into().into_bytes() }
    }
}

/// A finished call, kept so that clients can read its status and the same request sent again
/// is answered, not executed twice.
pub struct Finished {
    pub sender: Principal,
    pub status: RequestStatus,
}

/// Which endpoint a request asked for.
enum Endpoint {
    Status,
    Query { ecid: Principal },
    Call { ecid: Principal, synchronous: bool },
    ReadState { ecid: Option<Principal> },
}

fn route(method: &str, path: &str) -> Result<Endpoint, Reply> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let id = |text: &str| {
        Principal::from_text(text).map_err(|e| Reply::text(400, format!("Invalid principal {text} in the URL: {e}")))
    };
    match (method, parts.as_slice()) {
        ("GET", ["api", "v2", "status"]) => Ok(Endpoint::Status),
        ("POST", ["api", "v2" | "v3", "canister", ecid, "query"]) => Ok(Endpoint::Query { ecid: id(ecid)? }),
        ("POST", ["api", version @ ("v2" | "v3" | "v4"), "canister", ecid, "call"]) => {
            Ok(Endpoint::Call { ecid: id(ecid)?, synchronous: *version != "v2" })
        }
        ("POST", ["api", "v2" | "v3", "canister", ecid, "read_state"]) => {
            Ok(Endpoint::ReadState { ecid: Some(id(ecid)?) })
        }
        ("POST", ["api", "v2" | "v3", "subnet", subnet, "read_state"]) => {
            if id(subnet)? != crate::subnet_id() {
                return Err(Reply::text(404, format!("Subnet {subnet} is not this replica's")));
            }
            Ok(Endpoint::ReadState { ecid: None })
        }
        _ => Err(Reply::text(404, format!("{method} {path}: no such endpoint"))),
    }
}

/// Answers one HTTP request.
pub fn handle(front: &mut Front, method: &str, path: &str, body: &[u8]) -> Reply {
    let endpoint = match route(method, path) {
        Ok(e) => e,
        Err(reply) => return reply,
    };
    if let Endpoint::Status = endpoint {
        return Reply::cbor(200, state::status_body());
    }
    let now = front.replica.time_nanos();
    let checked = match envelope::check(body, now) {
        Ok(c) => c,
        Err(message) => return Reply::text(400, message),
    };
    match endpoint {
        Endpoint::Status => unreachable!("answered above"),
        Endpoint::Query { ecid } => query(front, ecid, checked),
        Endpoint::Call { ecid, synchronous } => call(front, ecid, synchronous, checked),
        Endpoint::ReadState { ecid } => read_state(front, ecid, checked),
    }
}

/// The IC's error code for a reject, as its messages' causes map to them.
fn error_code(reject: &Reject) -> &'static str {
    let m = &reject.message;
    match reject.code {
        RejectCode::CanisterReject => "IC0406",
        _ if m.contains("trapped") => "IC0503",
        _ if m.contains("not found") => "IC0301",
        _ if m.contains("has no update method") || m.contains("has no query method") => "IC0536",
        _ if m.contains("has no code installed") => "IC0537",
        _ if m.contains("is not running") => "IC0508",
        _ if m.contains("out of cycles") => "IC0207",
        _ if m.contains("Only controllers") || m.contains("Only the controllers") => "IC0512",
        _ if m.contains("did not produce a response") => "IC0506",
        _ => "IC0504",
    }
}

fn transport_reject(reject: &Reject) -> RejectResponse {
    RejectResponse {
        reject_code: ic_transport_types::RejectCode::try_from(reject.code as u64).expect("a spec reject code"),
        reject_message: reject.message.clone(),
        error_code: Some(error_code(reject).to_string()),
    }
}

fn query(front: &mut Front, ecid: Principal, checked: Checked) -> Reply {
    let EnvelopeContent::Query { sender, canister_id, method_name, arg, .. } = checked.content else {
        return Reply::text(400, "The query endpoint takes requests of type query");
    };
    if canister_id != ecid {
        return Reply::text(
            400,
            format!("Effective canister id {ecid} does not match the query's canister {canister_id}"),
        );
    }
    let result = match super::system_canisters::query(front, canister_id, &method_name, &arg) {
        Some(result) => result,
        None => front.replica.query_call(canister_id, sender, &method_name, arg).0,
    };
    let mut response = match result {
        Ok(arg) => QueryResponse::Replied { reply: ReplyResponse { arg }, signatures: vec![] },
        Err(reject) => QueryResponse::Rejected { reject: transport_reject(&reject), signatures: vec![] },
    };
    // Every reply is signed by the node: clients verify query signatures by default.
    let timestamp = front.replica.time_nanos();
    let signature = NodeSignature {
        timestamp,
        signature: state::node_sign(&response.signable(checked.request_id, timestamp)),
        identity: state::node_id(),
    };
    match &mut response {
        QueryResponse::Replied { signatures, .. } | QueryResponse::Rejected { signatures, .. } => {
            signatures.push(signature)
        }
    }
    Reply::cbor(200, state::cbor(&response))
}

fn call(front: &mut Front, ecid: Principal, synchronous: bool, checked: Checked) -> Reply {
    let (request_id, message_bytes) = (checked.request_id, checked.message_bytes);
    let EnvelopeContent::Call { sender, canister_id, method_name, arg, .. } = checked.content else {
        return Reply::text(400, "The call endpoint takes requests of type call");
    };
    let key: [u8; 32] = request_id.as_slice().try_into().expect("a sha256");
    if !front.finished.contains_key(&key) {
        *front.calls_by_method.entry(method_name.clone()).or_default() += 1;
        std::thread::sleep(front.call_delay);
        let result = if canister_id == Principal::management_canister() {
            super::management::call(front, sender, ecid, &method_name, &arg, message_bytes)
        } else if canister_id != ecid {
            return Reply::text(
                400,
                format!("Effective canister id {ecid} does not match the call's canister {canister_id}"),
            );
        } else if let Some(result) = super::system_canisters::update(front, sender, canister_id, &method_name, &arg) {
            result
        } else {
            // Refused before it executes (inspect_message, an unknown method, no cycles for the
            // ingress fee): the IC answers this without certifying anything.
            let id = match front.replica.submit_signed_call(canister_id, sender, &method_name, arg, message_bytes) {
                Ok(id) => id,
                Err(reject) if synchronous => {
                    #[derive(Serialize)]
                    #[serde(tag = "status", rename = "non_replicated_rejection")]
                    struct NonReplicated {
                        #[serde(flatten)]
                        reject: RejectResponse,
                    }
                    return Reply::cbor(200, state::cbor(&NonReplicated { reject: transport_reject(&reject) }));
                }
                Err(reject) => return Reply::text(400, reject.message),
            };
            front.replica.await_call(id).0
        };
        let status = match result {
            Ok(reply) => RequestStatus::Replied(reply),
            Err(reject) => RequestStatus::Rejected {
                code: reject.code as u8,
                message: reject.message.clone(),
                error_code: error_code(&reject).to_string(),
            },
        };
        front.finished.insert(key, Finished { sender, status });
    }
    if !synchronous {
        return Reply::cbor(202, vec![]);
    }
    let leaves = front.finished[&key].status.leaves(&key);
    let requested = vec![state::path(&[b"request_status", &key])];
    #[derive(Serialize)]
    struct Certified {
        status: &'static str,
        #[serde(with = "serde_bytes")]
        certificate: Vec<u8>,
    }
    let certificate = state::certificate(&leaves, &requested, front.replica.time_nanos());
    Reply::cbor(200, state::cbor(&Certified { status: "replied", certificate }))
}

fn read_state(front: &mut Front, ecid: Option<Principal>, checked: Checked) -> Reply {
    let EnvelopeContent::ReadState { sender, paths, .. } = checked.content else {
        return Reply::text(400, "The read_state endpoint takes requests of type read_state");
    };
    let requested: Vec<Path> = paths.iter().map(|p| p.iter().map(|l| l.as_bytes().to_vec()).collect()).collect();
    let mut leaves = Vec::new();
    let mut canisters: HashMap<Principal, ()> = HashMap::new();
    for path in &requested {
        let first = path.first().map(Vec::as_slice);
        match first {
            Some(b"time") => {}
            Some(b"subnet") | Some(b"canister_ranges") => {
                if leaves.iter().all(|(p, _): &(Path, Vec<u8>)| p[0] != b"subnet") {
                    leaves.extend(state::subnet_leaves());
                }
            }
            Some(b"request_status") if ecid.is_some() && path.len() >= 2 => {
                let Ok(key) = <[u8; 32]>::try_from(path[1].as_slice()) else { continue };
                if let Some(finished) = front.finished.get(&key) {
                    if finished.sender != sender {
                        return Reply::text(403, format!("Request {} was not sent by {sender}", hex::encode(key)));
                    }
                    leaves.extend(finished.status.leaves(&key));
                }
            }
            Some(b"canister") if path.len() >= 2 => {
                let Ok(canister) = Principal::try_from_slice(&path[1]) else {
                    return Reply::text(400, "Invalid canister id in a read_state path");
                };
                if Some(canister) != ecid {
                    return Reply::text(
                        400,
                        format!("Effective canister id in the URL does not match the path's canister {canister}"),
                    );
                }
                if canisters.insert(canister, ()).is_some() {
                    continue;
                }
                let controllers = front.replica.controllers(canister);
                let mut metadata = front.replica.all_metadata(canister);
                if path.get(2).map(Vec::as_slice) == Some(b"metadata") {
                    if let Some(name) = path.get(3) {
                        let name = String::from_utf8_lossy(name).to_string();
                        let private = metadata.get(&name).is_some_and(|m| !m.public);
                        if private && !controllers.contains(&sender) {
                            return Reply::text(
                                403,
                                format!(
                                    "Custom section {name} can only be requested by the controllers of the canister"
                                ),
                            );
                        }
                    }
                }
                metadata.retain(|_, m| m.public || controllers.contains(&sender));
                let hash = front.replica.module_hash(canister);
                leaves.extend(state::canister_leaves(canister, hash, &controllers, &metadata));
            }
            _ => return Reply::text(400, "This read_state path is not served by the local replica"),
        }
    }
    #[derive(Serialize)]
    struct ReadState {
        #[serde(with = "serde_bytes")]
        certificate: Vec<u8>,
    }
    let certificate = state::certificate(&leaves, &requested, front.replica.time_nanos());
    Reply::cbor(200, state::cbor(&ReadState { certificate }))
}
