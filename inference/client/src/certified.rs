//! Checks a certified reply (`audit_head`, `certified_models`, `certified_model`) the way
//! ic-agent checks a certificate: the BLS signature over the state tree's root by the IC's root
//! key (through a subnet delegation when there is one, whose canister ranges must hold the
//! canister), the canister's certified data equal to the witness's root hash, and the reply's
//! values equal to the witness's leaves. The certificate's time comes back for the caller to
//! judge how fresh the answer is (a local replica's clock is not the wall clock).

use candid::Principal;
use ic_certification::{Certificate, HashTree, LookupResult};
use inference_api::{
    model_leaf, AuditHead, Certified, CertifiedModel, CertifiedModels, CERTIFIED_AUDIT_HEAD, CERTIFIED_MODELS,
};
use thiserror::Error;

/// What a signature covers: this domain separator, then the state tree's root hash.
const STATE_ROOT_DOMAIN: &[u8] = b"\x0Dic-state-root";
/// A DER-wrapped BLS12-381 G2 key: a 37-byte prefix, then the 96-byte key.
const DER_PREFIX_BYTES: usize = 37;
const KEY_BYTES: usize = 96;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the reply carries no certificate (it was not a query answered by a replica, or it was an update)")]
    NotCertified,
    #[error("the certificate or witness does not decode: {0}")]
    Malformed(String),
    #[error("the certificate's signature does not verify with the root key")]
    BadSignature,
    #[error("the certificate's subnet does not hold canister {0}")]
    NotAuthorized(Principal),
    #[error("the certificate does not certify the witness: its certified data is another hash")]
    WitnessNotCertified,
    #[error("the reply says {0}, which the certified tree does not")]
    Mismatch(String),
}

/// Verifies `certified` for `canister` under the root key (DER, as `ic0.root_key_copy` and
/// `/api/v2/status` give it); answers the witness, now trusted, and the certificate's time.
pub fn verify(certified: &Certified, canister: Principal, root_key_der: &[u8]) -> Result<(HashTree, u64), VerifyError> {
    let certificate: Certificate = cbor(&certified.certificate)?;
    verify_signature(&certificate, canister, root_key_der)?;
    let witness: HashTree = cbor(&certified.witness)?;
    let data_path: [&[u8]; 3] = [b"canister", canister.as_slice(), b"certified_data"];
    let data = found(certificate.tree.lookup_path(data_path)).ok_or(VerifyError::WitnessNotCertified)?;
    if data != witness.digest() {
        return Err(VerifyError::WitnessNotCertified);
    }
    let time = found(certificate.tree.lookup_path([b"time"])).ok_or(VerifyError::Malformed("no /time".into()))?;
    Ok((witness, leb128(time)?))
}

/// `audit_head`'s head hash is the certified one. (Its `next_index` is bound through the head
/// entry, which holds its own index: an export's last entry must be entry `next_index − 1`.)
pub fn verify_head(head: &AuditHead, canister: Principal, root_key_der: &[u8]) -> Result<u64, VerifyError> {
    let (witness, time) = verify(head.certified.as_ref().ok_or(VerifyError::NotCertified)?, canister, root_key_der)?;
    let leaf = found(witness.lookup_path([CERTIFIED_AUDIT_HEAD]));
    if leaf != Some(&head.head_sha256[..]) {
        return Err(VerifyError::Mismatch("the log's head hash".into()));
    }
    Ok(time)
}

/// Every model `certified_models` lists is certified with its version and sha256, and it lists
/// every certified model.
pub fn verify_models(reply: &CertifiedModels, canister: Principal, root_key_der: &[u8]) -> Result<u64, VerifyError> {
    let (witness, time) = verify(reply.certified.as_ref().ok_or(VerifyError::NotCertified)?, canister, root_key_der)?;
    for m in &reply.models {
        let leaf = found(witness.lookup_path([CERTIFIED_MODELS, m.name.as_bytes()]));
        if leaf != Some(&model_leaf(m.version, &m.sha256)[..]) {
            return Err(VerifyError::Mismatch(format!("{} v{} is active", m.name, m.version)));
        }
    }
    let certified =
        witness.list_paths().iter().filter(|p| p.first().map(|l| l.as_bytes()) == Some(CERTIFIED_MODELS)).count();
    if certified != reply.models.len() {
        return Err(VerifyError::Mismatch(format!("{} models are active, not {certified}", reply.models.len())));
    }
    Ok(time)
}

/// `certified_model(name)`'s answer is the certified one: the version and sha256 it gives, or
/// (when it gives none) a proof that no model of that name is active.
pub fn verify_model(
    reply: &CertifiedModel,
    name: &str,
    canister: Principal,
    root_key_der: &[u8],
) -> Result<u64, VerifyError> {
    let (witness, time) = verify(reply.certified.as_ref().ok_or(VerifyError::NotCertified)?, canister, root_key_der)?;
    let lookup = witness.lookup_path([CERTIFIED_MODELS, name.as_bytes()]);
    match (&reply.model, lookup) {
        (Some(m), LookupResult::Found(leaf)) if m.name == name && leaf == model_leaf(m.version, &m.sha256) => Ok(time),
        (None, LookupResult::Absent) => Ok(time),
        (Some(m), _) => Err(VerifyError::Mismatch(format!("{name} v{} is active", m.version))),
        (None, _) => Err(VerifyError::Mismatch(format!("no model named {name} is active"))),
    }
}

fn cbor<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, VerifyError> {
    serde_cbor::from_slice(bytes).map_err(|e| VerifyError::Malformed(e.to_string()))
}

fn found(result: LookupResult<'_>) -> Option<&[u8]> {
    match result {
        LookupResult::Found(value) => Some(value),
        _ => None,
    }
}

/// Checks the signature, through the delegation when there is one (as ic-agent does: the
/// delegating certificate is signed by the root key, and its subnet's canister ranges must hold
/// the canister).
fn verify_signature(certificate: &Certificate, canister: Principal, root_key_der: &[u8]) -> Result<(), VerifyError> {
    let key_der = match &certificate.delegation {
        None => root_key_der.to_vec(),
        Some(delegation) => {
            let parent: Certificate = cbor(&delegation.certificate)?;
            if parent.delegation.is_some() {
                return Err(VerifyError::Malformed("a delegation with a delegation".into()));
            }
            verify_signature(&parent, canister, root_key_der)?;
            let subnet = delegation.subnet_id.as_slice();
            if !subnet_holds(&parent.tree, subnet, canister)? {
                return Err(VerifyError::NotAuthorized(canister));
            }
            let key_path: [&[u8]; 3] = [b"subnet", subnet, b"public_key"];
            found(parent.tree.lookup_path(key_path))
                .ok_or(VerifyError::Malformed("the delegation has no subnet key".into()))?
                .to_vec()
        }
    };
    if key_der.len() != DER_PREFIX_BYTES + KEY_BYTES {
        return Err(VerifyError::Malformed("a root key of the wrong length".into()));
    }
    let message = [STATE_ROOT_DOMAIN, &certificate.tree.digest()].concat();
    ic_verify_bls_signature::verify_bls_signature(&certificate.signature, &message, &key_der[DER_PREFIX_BYTES..])
        .map_err(|_| VerifyError::BadSignature)
}

/// Whether the delegating tree's canister ranges for `subnet` hold `canister`: the sharded
/// `/canister_ranges/<subnet>/<shard>` of today's IC, or `/subnet/<subnet>/canister_ranges`.
fn subnet_holds(tree: &HashTree, subnet: &[u8], canister: Principal) -> Result<bool, VerifyError> {
    let mut lists: Vec<&[u8]> = Vec::new();
    let legacy: [&[u8]; 3] = [b"subnet", subnet, b"canister_ranges"];
    lists.extend(found(tree.lookup_path(legacy)));
    for path in tree.list_paths() {
        if path.len() == 3 && path[0].as_bytes() == b"canister_ranges" && path[1].as_bytes() == subnet {
            lists.extend(found(tree.lookup_path([path[0].as_bytes(), path[1].as_bytes(), path[2].as_bytes()])));
        }
    }
    for list in lists {
        let ranges: Vec<(Principal, Principal)> = cbor(list)?;
        if ranges.iter().any(|(low, high)| low <= &canister && &canister <= high) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn leb128(bytes: &[u8]) -> Result<u64, VerifyError> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(VerifyError::Malformed("a time that is not LEB128".into()))
}
