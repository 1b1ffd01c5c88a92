//! Certified data as the IC certifies it: a state tree (`ic-certification`'s hash tree) holding
//! each canister's certified data and the time, its root hash signed with a BLS12-381 root key
//! (`ic-verify-bls-signature`, the library ic-agent verifies with), encoded as CBOR the way the
//! IC encodes certificates. So a canister's data certificate verifies with the same client code
//! that verifies mainnet's, given this replica's root key instead of mainnet's.

use std::sync::OnceLock;

use candid::Principal;
use ic_certification::{fork, labeled, leaf, Certificate, HashTree};
use ic_verify_bls_signature::PrivateKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// How the IC wraps a BLS12-381 G2 public key in DER: the algorithm and curve object
/// identifiers, then a 96-byte bit string.
const DER_PREFIX: [u8; 37] = [
    0x30, 0x81, 0x82, 0x30, 0x1d, 0x06, 0x0d, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03, 0x01, 0x02,
    0x01, 0x06, 0x0c, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03, 0x02, 0x01, 0x03, 0x61, 0x00,
];
/// What the root key signs: this domain separator, then the state tree's root hash.
const STATE_ROOT_DOMAIN: &[u8] = b"\x0Dic-state-root";

/// The replica's root key. It comes from a fixed seed, so certificates are the same in every
/// run; the secret is public knowledge, so it certifies nothing beyond this replica.
fn secret() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut seed: [u8; 32] = Sha256::digest(b"ic-replica root key").into();
        seed[0] &= 0x3f; // below the group order, so every seed byte string is a key
        PrivateKey::deserialize(&seed).expect("a scalar below the group order")
    })
}

/// The root public key, DER-encoded as `ic0.root_key_copy` and a local network's `/api/v2/status`
/// give it (ic-agent's `set_root_key` takes this form).
pub fn root_key_der() -> &'static [u8] {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| [DER_PREFIX.as_slice(), &secret().public_key().serialize()].concat())
}

/// The part of the state tree a canister's data certificate covers: its certified data under
/// `/canister/<id>/certified_data`, and `/time` (nanoseconds, LEB128), as the IC's tree has them.
pub fn canister_tree(canister: Principal, certified_data: &[u8], time_nanos: u64) -> HashTree {
    fork(
        labeled("canister", labeled(canister.as_slice(), labeled("certified_data", leaf(certified_data.to_vec())))),
        labeled("time", leaf(leb128(time_nanos))),
    )
}

/// What a query's data certificate covers: a canister's certified data at a time. The
/// certificate is signed the first time the canister asks for it, and only then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifiedState {
    pub canister: Principal,
    pub certified_data: Vec<u8>,
    pub time_nanos: u64,
    certificate: OnceLock<Vec<u8>>,
}

impl CertifiedState {
    pub fn new(canister: Principal, certified_data: Vec<u8>, time_nanos: u64) -> Self {
        CertifiedState { canister, certified_data, time_nanos, certificate: OnceLock::new() }
    }

    /// The data certificate, as `ic0.data_certificate_copy` gives it.
    pub fn certificate(&self) -> &[u8] {
        self.certificate.get_or_init(|| certify(canister_tree(self.canister, &self.certified_data, self.time_nanos)))
    }
}

/// A certificate of `tree`, signed by the root key, as CBOR with the self-describing tag.
pub fn certify(tree: HashTree) -> Vec<u8> {
    let message = [STATE_ROOT_DOMAIN, &tree.digest()].concat();
    let signature = secret().sign(&message).serialize().to_vec();
    let certificate = Certificate { tree, signature, delegation: None };
    let mut out = serde_cbor::Serializer::new(Vec::new());
    out.self_describe().expect("writing to a Vec");
    certificate.serialize(&mut out).expect("a certificate encodes");
    out.into_inner()
}

pub(crate) fn leb128(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_as_the_spec_encodes_it() {
        assert_eq!(leb128(0), [0]);
        assert_eq!(leb128(127), [127]);
        assert_eq!(leb128(128), [0x80, 1]);
        assert_eq!(leb128(624_485), [0xe5, 0x8e, 0x26]);
    }

    #[test]
    fn the_root_key_verifies_its_own_signature_and_nothing_else() {
        let key = &root_key_der()[DER_PREFIX.len()..];
        let tree = canister_tree(Principal::anonymous(), b"data", 1);
        let certificate: Certificate = serde_cbor::from_slice(&certify(tree.clone())).unwrap();
        let message = [STATE_ROOT_DOMAIN, &tree.digest()].concat();
        assert_eq!(ic_verify_bls_signature::verify_bls_signature(&certificate.signature, &message, key), Ok(()));
        let other = canister_tree(Principal::anonymous(), b"date", 1);
        let message = [STATE_ROOT_DOMAIN, &other.digest()].concat();
        assert!(ic_verify_bls_signature::verify_bls_signature(&certificate.signature, &message, key).is_err());
    }
}
