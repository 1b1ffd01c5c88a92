//! An HTTP request's CBOR envelope, checked as the IC's boundary checks it before anything
//! executes: the expiry window, the request id, the sender's signature and its delegations.

use candid::Principal;
use ic_transport_types::{Envelope, EnvelopeContent, RequestId};

/// How far ahead of the replica's clock an expiry may lie: the IC's 5 minutes plus its 30 s
/// of permitted drift (`MAX_INGRESS_TTL`, `PERMITTED_DRIFT_AT_VALIDATOR`).
const MAX_EXPIRY_AHEAD_NANOS: u64 = (5 * 60 + 30) * 1_000_000_000;
/// Delegation chains the IC accepts (`MAXIMUM_NUMBER_OF_DELEGATIONS`), and targets per
/// delegation (`MAXIMUM_NUMBER_OF_TARGETS_PER_DELEGATION`).
const MAX_DELEGATIONS: usize = 20;
const MAX_TARGETS_PER_DELEGATION: usize = 1000;
/// The longest nonce the IC accepts (its `NonceTooBigError` above 32 bytes).
const MAX_NONCE_BYTES: usize = 32;
/// The DER prefix of an ed25519 public key (RFC 8410), before its 32 raw bytes.
const ED25519_DER_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
/// The object identifiers that name secp256k1 and P-256 in a DER public key.
const SECP256K1_OID: [u8; 7] = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];
const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// A request that passed the checks: what it asks for, who signed it, and its id.
#[derive(Debug)]
pub struct Checked {
    pub content: EnvelopeContent,
    pub request_id: RequestId,
    /// The canisters the sender's delegations allow, if they restrict them (their intersection).
    pub targets: Option<Vec<Principal>>,
    /// The signed request's size: what the IC's ingress limit and fee count.
    pub message_bytes: u64,
}

/// Decodes `body` and checks it at time `now_nanos`; the error is the IC's 400 message.
pub fn check(body: &[u8], now_nanos: u64) -> Result<Checked, String> {
    let envelope: Envelope = serde_cbor::from_slice(body).map_err(|e| format!("Could not parse body as CBOR: {e}"))?;
    let content = envelope.content.into_owned();
    let expiry = content.ingress_expiry();
    // The IC's window: not expired, and not further ahead than the TTL and the drift
    // (`validate_ingress_expiry`).
    let earliest = now_nanos;
    let latest = now_nanos + MAX_EXPIRY_AHEAD_NANOS;
    if expiry < earliest || expiry > latest {
        return Err(format!(
            "Invalid request expiry: Specified ingress_expiry not within expected range: Minimum allowed \
             expiry: {earliest}, Maximum allowed expiry: {latest}, Provided expiry: {expiry}"
        ));
    }
    let nonce = match &content {
        EnvelopeContent::Call { nonce, .. } | EnvelopeContent::Query { nonce, .. } => nonce.as_deref(),
        EnvelopeContent::ReadState { .. } => None,
    };
    if nonce.is_some_and(|n| n.len() > MAX_NONCE_BYTES) {
        return Err(format!(
            "Nonce in request is too big: got {} bytes, max allowed {MAX_NONCE_BYTES}",
            nonce.unwrap().len()
        ));
    }
    let request_id = content.to_request_id();
    let mut targets: Option<Vec<Principal>> = None;
    let sender = *content.sender();
    match (envelope.sender_pubkey, envelope.sender_sig) {
        (None, None) if sender == Principal::anonymous() => {}
        (None, None) => return Err(format!("Missing signature from sender {sender}")),
        (Some(public_key), Some(signature)) => {
            if sender != Principal::self_authenticating(&public_key) {
                return Err(format!("Sender {sender} is not the principal of the sender's public key"));
            }
            let delegations = envelope.sender_delegation.unwrap_or_default();
            if delegations.len() > MAX_DELEGATIONS {
                return Err(format!("Invalid delegation: more than {MAX_DELEGATIONS} delegations"));
            }
            let mut seen = vec![public_key.clone()];
            let mut key = public_key;
            for signed in delegations {
                verify(&key, &signed.delegation.signable(), &signed.signature)
                    .map_err(|e| format!("Invalid delegation: {e}"))?;
                let delegation = signed.delegation;
                if delegation.expiration < now_nanos {
                    return Err(format!("Invalid delegation: expired at {}", delegation.expiration));
                }
                if let Some(allowed) = &delegation.targets {
                    if allowed.len() > MAX_TARGETS_PER_DELEGATION {
                        return Err(format!(
                            "Invalid delegation: more than {MAX_TARGETS_PER_DELEGATION} targets in one delegation"
                        ));
                    }
                    if let Some(canister) = target_canister(&content) {
                        if !allowed.contains(&canister) {
                            return Err(format!("Invalid delegation: canister {canister} is not one of its targets"));
                        }
                    }
                    targets = Some(match targets.take() {
                        None => allowed.clone(),
                        Some(before) => before.into_iter().filter(|t| allowed.contains(t)).collect(),
                    });
                }
                if seen.contains(&delegation.pubkey) {
                    return Err("Invalid delegation: the chain delegates to a key twice (a cycle)".into());
                }
                seen.push(delegation.pubkey.clone());
                key = delegation.pubkey;
            }
            verify(&key, &request_id.signable(), &signature).map_err(|e| format!("Invalid signature: {e}"))?;
        }
        _ => return Err("A sender signature needs both sender_pubkey and sender_sig".into()),
    }
    Ok(Checked { content, request_id, targets, message_bytes: body.len() as u64 })
}

fn target_canister(content: &EnvelopeContent) -> Option<Principal> {
    match content {
        EnvelopeContent::Call { canister_id, .. } | EnvelopeContent::Query { canister_id, .. } => Some(*canister_id),
        EnvelopeContent::ReadState { .. } => None,
    }
}

/// Verifies `signature` over `message` with a DER public key of a kind the IC accepts from
/// users: ed25519, or ECDSA on secp256k1 or P-256 (SHA-256, 64-byte r‖s). Canister signatures
/// and WebAuthn are not supported here.
fn verify(der: &[u8], message: &[u8], signature: &[u8]) -> Result<(), String> {
    if der.len() == 44 && der.starts_with(&ED25519_DER_PREFIX) {
        let key = ic_ed25519::PublicKey::deserialize_rfc8410_der(der).map_err(|e| format!("{e:?}"))?;
        return key.verify_signature(message, signature).map_err(|e| format!("ed25519: {e:?}"));
    }
    let contains = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
    if contains(&SECP256K1_OID) {
        use k256::ecdsa::signature::Verifier;
        use k256::pkcs8::DecodePublicKey;
        let key = k256::ecdsa::VerifyingKey::from_public_key_der(der).map_err(|e| format!("secp256k1 key: {e}"))?;
        let signature = k256::ecdsa::Signature::from_slice(signature).map_err(|e| format!("secp256k1: {e}"))?;
        return key.verify(message, &signature).map_err(|e| format!("secp256k1: {e}"));
    }
    if contains(&P256_OID) {
        use p256::ecdsa::signature::Verifier;
        use p256::pkcs8::DecodePublicKey;
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(der).map_err(|e| format!("P-256 key: {e}"))?;
        let signature = p256::ecdsa::Signature::from_slice(signature).map_err(|e| format!("P-256: {e}"))?;
        return key.verify(message, &signature).map_err(|e| format!("P-256: {e}"));
    }
    Err("the sender's public key is not an ed25519, secp256k1 or P-256 key (canister signatures and \
         WebAuthn are not supported by the local replica)"
        .into())
}
