//! The state tree as `read_state` serves it, the status endpoint's body, and the node key that
//! signs query replies.
//!
//! The replica stands for a one-node subnet without a delegation: clients then take the subnet
//! id to be the self-authenticating id of the root key ([`crate::subnet_id`]) and look the node's
//! key up under `/subnet/<id>/node/<node>/public_key`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use candid::Principal;
use ic_certification::{AsHashTree, NestedTree};
use serde::Serialize;

/// A path in the state tree, label by label.
pub type Path = Vec<Vec<u8>>;

/// The one node's ed25519 key, from a fixed seed (it signs nothing a test could not forge).
fn node_key() -> &'static ic_ed25519::PrivateKey {
    static KEY: OnceLock<ic_ed25519::PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| ic_ed25519::PrivateKey::generate_from_seed(b"ic-replica node"))
}

/// The node's public key, DER-encoded (RFC 8410) as the state tree holds it.
pub fn node_public_key_der() -> Vec<u8> {
    node_key().public_key().serialize_rfc8410_der()
}

/// The node's id: the self-authenticating id of its key, as on the IC.
pub fn node_id() -> Principal {
    Principal::self_authenticating(node_public_key_der())
}

/// Signs a query reply's signable bytes as the node.
pub fn node_sign(message: &[u8]) -> Vec<u8> {
    node_key().sign_message(message).to_vec()
}

/// The canister id ranges the subnet holds: all of them, so the system canisters' ids that
/// icp-cli asks about route here too.
fn canister_ranges() -> Vec<(Principal, Principal)> {
    vec![(Principal::from_slice(&[0; 10]), Principal::from_slice(&[0xff; 10]))]
}

/// `GET /api/v2/status`: the root key (which lets clients fetch it, as for any local network)
/// and the replica's health.
pub fn status_body() -> Vec<u8> {
    #[derive(Serialize)]
    struct Status {
        #[serde(with = "serde_bytes")]
        root_key: Vec<u8>,
        replica_health_status: &'static str,
        impl_version: &'static str,
        ic_api_version: &'static str,
    }
    let status = Status {
        root_key: crate::certification::root_key_der().to_vec(),
        replica_health_status: "healthy",
        impl_version: concat!("ic-replica ", env!("CARGO_PKG_VERSION")),
        ic_api_version: "0.18.0",
    };
    cbor(&status)
}

/// CBOR with the self-describing tag, as the IC sends every body.
pub fn cbor<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = serde_cbor::Serializer::new(Vec::new());
    out.self_describe().expect("writing to a Vec");
    value.serialize(&mut out).expect("encodes");
    out.into_inner()
}

/// The leaves of the subnet's part of the tree: its key, its node's key and its ranges, under
/// `/subnet/<id>` and `/canister_ranges/<id>`.
pub fn subnet_leaves() -> Vec<(Path, Vec<u8>)> {
    let subnet = crate::subnet_id().as_slice().to_vec();
    let ranges: Vec<(serde_bytes::ByteBuf, serde_bytes::ByteBuf)> = canister_ranges()
        .into_iter()
        .map(|(low, high)| (low.as_slice().to_vec().into(), high.as_slice().to_vec().into()))
        .collect();
    let ranges = serde_cbor::to_vec(&ranges).expect("encodes");
    let low = canister_ranges()[0].0.as_slice().to_vec();
    vec![
        (path(&[b"subnet", &subnet, b"public_key"]), crate::certification::root_key_der().to_vec()),
        (path(&[b"subnet", &subnet, b"canister_ranges"]), ranges.clone()),
        (path(&[b"subnet", &subnet, b"node", node_id().as_slice(), b"public_key"]), node_public_key_der()),
        (path(&[b"canister_ranges", &subnet, &low]), ranges),
    ]
}

pub fn path(labels: &[&[u8]]) -> Path {
    labels.iter().map(|l| l.to_vec()).collect()
}

/// A certificate of `leaves` that lie under one of `requested` (and of `/time`), signed by the
/// root key. The tree is whole, not pruned, so a path it lacks is provably absent.
pub fn certificate(leaves: &[(Path, Vec<u8>)], requested: &[Path], time_nanos: u64) -> Vec<u8> {
    let mut tree: NestedTree<Vec<u8>, Vec<u8>> = NestedTree::default();
    tree.insert(&[b"time".to_vec()], crate::certification::leb128(time_nanos));
    for (leaf_path, value) in leaves {
        if requested.iter().any(|r| leaf_path.starts_with(r)) {
            tree.insert(leaf_path, value.clone());
        }
    }
    crate::certification::certify(tree.as_hash_tree())
}

/// What `/request_status/<id>` holds for one call.
#[derive(Clone, Debug)]
pub enum RequestStatus {
    Replied(Vec<u8>),
    Rejected { code: u8, message: String, error_code: String },
}

impl RequestStatus {
    pub fn leaves(&self, request_id: &[u8]) -> Vec<(Path, Vec<u8>)> {
        let at = |field: &[u8]| path(&[b"request_status", request_id, field]);
        match self {
            RequestStatus::Replied(reply) => {
                vec![(at(b"status"), b"replied".to_vec()), (at(b"reply"), reply.clone())]
            }
            RequestStatus::Rejected { code, message, error_code } => vec![
                (at(b"status"), b"rejected".to_vec()),
                (at(b"reject_code"), crate::certification::leb128(*code as u64)),
                (at(b"reject_message"), message.as_bytes().to_vec()),
                (at(b"error_code"), error_code.as_bytes().to_vec()),
            ],
        }
    }
}

/// `/canister/<id>/{module_hash, controllers, metadata/<name>}`, the metadata a reader may
/// see: public sections for anyone, private ones for controllers only.
pub fn canister_leaves(
    canister: Principal,
    module_hash: Option<[u8; 32]>,
    controllers: &[Principal],
    metadata: &BTreeMap<String, crate::canister::Metadata>,
) -> Vec<(Path, Vec<u8>)> {
    let id = canister.as_slice();
    let mut leaves = Vec::new();
    if let Some(hash) = module_hash {
        leaves.push((path(&[b"canister", id, b"module_hash"]), hash.to_vec()));
    }
    let controllers: Vec<serde_bytes::ByteBuf> = controllers.iter().map(|c| c.as_slice().to_vec().into()).collect();
    leaves.push((path(&[b"canister", id, b"controllers"]), cbor(&controllers)));
    for (name, section) in metadata {
        leaves.push((path(&[b"canister", id, b"metadata", name.as_bytes()]), section.bytes.clone()));
    }
    leaves
}
