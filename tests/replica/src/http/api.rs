//! The IC's HTTP interface over the replica: `status`, `query`, `call` (v2 asynchronous, v3/v4
//! synchronous) and `read_state`, with the bodies, status codes, reject codes and error codes of
//! the IC's `http_endpoints` (rs/http_endpoints/public).

use candid::Principal;
use ic_transport_types::{EnvelopeContent, NodeSignature, QueryResponse, RejectResponse, ReplyResponse};
use serde::Serialize;

use super::envelope::{self, Checked};
use super::state::{self, Path, RequestStatus};
use super::{management, system_canisters, Front};
use crate::limits;
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

/// How long a finished call's status is kept after its expiry (the IC prunes it some time after;
/// by then the request cannot be sent again).
const KEEP_AFTER_EXPIRY_NANOS: u64 = 5 * 60 * 1_000_000_000;
/// The IC's limits on a read_state request (`MAXIMUM_NUMBER_OF_PATHS`, labels per path).
const MAX_PATHS: usize = 1000;
const MAX_LABELS_PER_PATH: usize = 127;

/// A finished call, kept so that clients can read its status and the same request sent again
/// is answered, not executed twice.
pub struct Finished {
    pub sender: Principal,
    /// The canister the call was addressed to (`aaaaa-aa` for the management canister).
    pub receiver: Principal,
    pub expiry: u64,
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
pub fn handle(front: &mut Front, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Reply {
    if method == "OPTIONS" {
        return Reply::text(204, ""); // a CORS preflight: the headers say it all
    }
    let endpoint = match route(method, path) {
        Ok(e) => e,
        Err(reply) => return reply,
    };
    if let Endpoint::Status = endpoint {
        return Reply::cbor(200, state::status_body());
    }
    if content_type.map(|c| c.split(';').next().unwrap_or("").trim()) != Some("application/cbor") {
        return Reply::text(400, "Unexpected content-type, expected application/cbor.");
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

/// The IC's error code for a reject: its cause where the message tells it, else the generic
/// code of its class. The first digit is always the reject code, as on the IC.
fn error_code(reject: &Reject) -> &'static str {
    let m = &reject.message;
    match reject.code {
        RejectCode::SysFatal => "IC0101",
        RejectCode::SysTransient if m.contains("out of cycles") => "IC0207",
        RejectCode::SysTransient => "IC0201",
        RejectCode::DestinationInvalid => "IC0301",
        RejectCode::CanisterReject if m.contains("does not take the management canister's") => "IC0408",
        RejectCode::CanisterReject if m.contains("Failed to decode") => "IC0409",
        RejectCode::CanisterReject => "IC0406",
        RejectCode::CanisterError if m.contains("trapped") => "IC0503",
        RejectCode::CanisterError if m.contains("has no update method") || m.contains("has no query method") => {
            "IC0536"
        }
        RejectCode::CanisterError if m.contains("has no code installed") => "IC0537",
        RejectCode::CanisterError if m.contains("is not running") => "IC0508",
        RejectCode::CanisterError if m.contains("Only controllers") || m.contains("Only the controllers") => "IC0512",
        RejectCode::CanisterError if m.contains("did not produce a response") => "IC0506",
        RejectCode::CanisterError => "IC0504",
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
            format!("Specified CanisterId {canister_id} does not match effective canister id in URL {ecid}"),
        );
    }
    let result = match system_canisters::query(canister_id, &method_name) {
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

/// Where an admitted call goes to execute.
enum Admitted {
    Management,
    SystemCanister,
    Queued(u64),
}

fn call(front: &mut Front, ecid: Principal, synchronous: bool, checked: Checked) -> Reply {
    let (request_id, message_bytes) = (checked.request_id, checked.message_bytes);
    let EnvelopeContent::Call { sender, canister_id, method_name, arg, ingress_expiry, .. } = checked.content else {
        return Reply::text(400, "The call endpoint takes requests of type call");
    };
    if message_bytes > limits::MAX_INGRESS_BYTES as u64 {
        return Reply::text(
            413,
            format!(
                "Request {request_id} is too large. Message byte size {message_bytes} is larger than the max allowed {}.",
                limits::MAX_INGRESS_BYTES
            ),
        );
    }
    let management = canister_id == Principal::management_canister();
    if !management && canister_id != ecid {
        return Reply::text(
            400,
            format!("Specified CanisterId {canister_id} does not match effective canister id in URL {ecid}"),
        );
    }
    let key: [u8; 32] = request_id.as_slice().try_into().expect("a sha256");
    if !front.finished.contains_key(&key) {
        // The ingress filter: a call refused here is answered without being certified.
        let admitted = if management {
            match management::admit(front, sender, ecid, &method_name, &arg, message_bytes) {
                Ok(()) => Ok(Admitted::Management),
                Err(Ok(bad_request)) => return Reply::text(400, bad_request),
                Err(Err(reject)) => Err(reject),
            }
        } else if system_canisters::is_system_canister(canister_id) {
            Ok(Admitted::SystemCanister)
        } else {
            front
                .replica
                .submit_signed_call(canister_id, sender, &method_name, arg.clone(), message_bytes)
                .map(Admitted::Queued)
        };
        let admitted = match admitted {
            Ok(a) => a,
            Err(reject) => return refused(synchronous, &reject),
        };
        *front.calls_by_method.entry((canister_id, method_name.clone())).or_default() += 1;
        std::thread::sleep(front.call_delay);
        let result = match admitted {
            Admitted::Management => management::execute(front, sender, ecid, &method_name, &arg),
            Admitted::SystemCanister => system_canisters::update(front, sender, canister_id, &method_name, &arg),
            Admitted::Queued(id) => front.replica.await_call(id).0,
        };
        let status = match result {
            Ok(reply) => RequestStatus::Replied(reply),
            Err(reject) => RequestStatus::Rejected {
                code: reject.code as u8,
                message: reject.message.clone(),
                error_code: error_code(&reject).to_string(),
            },
        };
        let now = front.replica.time_nanos();
        front.finished.retain(|_, f| f.expiry.saturating_add(KEEP_AFTER_EXPIRY_NANOS) > now);
        front.finished.insert(key, Finished { sender, receiver: canister_id, expiry: ingress_expiry, status });
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

/// A call refused before it executed: on v3/v4 a `non_replicated_rejection`, on v2 the bare
/// reject (both 200 CBOR, as the IC answers them).
fn refused(synchronous: bool, reject: &Reject) -> Reply {
    #[derive(Serialize)]
    #[serde(tag = "status", rename = "non_replicated_rejection")]
    struct NonReplicated {
        #[serde(flatten)]
        reject: RejectResponse,
    }
    let reject = transport_reject(reject);
    if synchronous {
        Reply::cbor(200, state::cbor(&NonReplicated { reject }))
    } else {
        Reply::cbor(200, state::cbor(&reject))
    }
}

fn read_state(front: &mut Front, ecid: Option<Principal>, checked: Checked) -> Reply {
    let EnvelopeContent::ReadState { sender, paths, .. } = checked.content else {
        return Reply::text(400, "The read_state endpoint takes requests of type read_state");
    };
    if paths.len() > MAX_PATHS {
        return Reply::text(400, format!("Too many paths requested: {} (at most {MAX_PATHS})", paths.len()));
    }
    if paths.iter().any(|p| p.len() > MAX_LABELS_PER_PATH) {
        return Reply::text(400, "Failed to parse requested paths: path is too long.");
    }
    let requested: Vec<Path> = paths.iter().map(|p| p.iter().map(|l| l.as_bytes().to_vec()).collect()).collect();
    let mut leaves = Vec::new();
    let (mut subnet, mut canister, mut request) = (false, false, None::<[u8; 32]>);
    for path in &requested {
        let labels: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
        match (ecid, labels.as_slice()) {
            (_, [b"time"]) => {}
            (_, [b"subnet"])
            | (_, [b"subnet", _])
            | (_, [b"subnet", _, b"public_key" | b"canister_ranges" | b"node"])
            | (_, [b"subnet", _, b"node", _])
            | (_, [b"subnet", _, b"node", _, b"public_key"]) => subnet = true,
            (None, [b"canister_ranges", _]) => subnet = true,
            (Some(ecid), [b"canister", id, b"controllers" | b"module_hash"]) => {
                if let Err(reply) = same_canister(id, ecid) {
                    return reply;
                }
                canister = true;
            }
            (Some(ecid), [b"canister", id, b"metadata", name]) => {
                if let Err(reply) = same_canister(id, ecid) {
                    return reply;
                }
                let Ok(name) = std::str::from_utf8(name) else {
                    return Reply::text(400, "Could not parse the custom section name.");
                };
                let private = front.replica.all_metadata(ecid).get(name).is_some_and(|m| !m.public);
                if private && !front.replica.controllers(ecid).contains(&sender) {
                    return Reply::text(
                        403,
                        format!("Custom section {name:.100} can only be requested by the controllers of the canister."),
                    );
                }
                canister = true;
            }
            (Some(_), [b"request_status", id])
            | (
                Some(_),
                [b"request_status", id, b"status" | b"reply" | b"reject_code" | b"reject_message" | b"error_code"],
            ) => {
                let Ok(id) = <[u8; 32]>::try_from(*id) else {
                    return Reply::text(400, "Invalid request id in paths: a request id is 32 bytes.");
                };
                if request.is_some_and(|r| r != id) {
                    return Reply::text(400, "More than one non-unique request ID exists in request_status paths.");
                }
                request = Some(id);
                if let Some(finished) = front.finished.get(&id) {
                    if finished.sender != sender {
                        return Reply::text(403, "The user tries to access Request ID not signed by the caller.");
                    }
                    if checked.targets.as_ref().is_some_and(|t| !t.contains(&finished.receiver)) {
                        return Reply::text(
                            403,
                            "The user tries to access request IDs for canisters not belonging to sender delegation targets.",
                        );
                    }
                }
            }
            _ => return Reply::text(404, "Invalid path requested."),
        }
    }
    if subnet {
        leaves.extend(state::subnet_leaves());
    }
    if let (true, Some(id)) = (canister, ecid) {
        let controllers = front.replica.controllers(id);
        let mut metadata = front.replica.all_metadata(id);
        metadata.retain(|_, m| m.public || controllers.contains(&sender));
        leaves.extend(state::canister_leaves(id, front.replica.module_hash(id), &controllers, &metadata));
    }
    if let Some(finished) = request.and_then(|id| front.finished.get(&id).map(|f| (id, f))) {
        leaves.extend(finished.1.status.leaves(&finished.0));
    }
    #[derive(Serialize)]
    struct ReadState {
        #[serde(with = "serde_bytes")]
        certificate: Vec<u8>,
    }
    let certificate = state::certificate(&leaves, &requested, front.replica.time_nanos());
    Reply::cbor(200, state::cbor(&ReadState { certificate }))
}

/// A canister path's id must be the effective canister id of the URL.
fn same_canister(id: &[u8], ecid: Principal) -> Result<(), Reply> {
    match Principal::try_from_slice(id) {
        Ok(id) if id == ecid => Ok(()),
        Ok(id) => Err(Reply::text(
            400,
            format!("Effective principal id in URL {ecid} does not match requested principal id: {id}."),
        )),
        Err(_) => Err(Reply::text(400, "Could not parse the principal id in a read_state path.")),
    }
}
