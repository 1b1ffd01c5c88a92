//! What the IC charges in cycles, on an application subnet of a given size
//! (`CyclesAccountManagerConfig::application_subnet` in `rs/config/src/subnet_config.rs`, the
//! formulas of `rs/cycles_account_manager`). Every fee is set for a 13-node subnet and scales
//! linearly with the subnet's size: `fee × nodes / 13`, rounded down, each part on its own.

use crate::limits;

/// The subnet size the fees are set for.
pub const REFERENCE_SUBNET_SIZE: u128 = 13;
/// The application subnets the IC runs: 13 nodes by default, 34 for the larger ones.
pub const DEFAULT_SUBNET_SIZE: u32 = 13;
pub const LARGE_SUBNET_SIZE: u32 = 34;

pub const UPDATE_MESSAGE_EXECUTION_FEE: u128 = 5_000_000;
/// Cycles per ten instructions of a wasm32 canister.
pub const TEN_UPDATE_INSTRUCTIONS_EXECUTION_FEE: u128 = 10;
pub const XNET_CALL_FEE: u128 = 260_000;
pub const XNET_BYTE_TRANSMISSION_FEE: u128 = 1_000;
pub const INGRESS_MESSAGE_RECEPTION_FEE: u128 = 1_200_000;
pub const INGRESS_BYTE_RECEPTION_FEE: u128 = 2_000;
/// Storage, per GiB per second (the documented figure; see the README for the newer master's).
pub const GIB_STORAGE_PER_SECOND_FEE: u128 = 127_000;
pub const CANISTER_CREATION_FEE: u128 = 500_000_000_000;
/// One threshold ECDSA or Schnorr signature, or one vetKD key derivation.
pub const THRESHOLD_KEY_FEE: u128 = 10_000_000_000;
pub const HTTP_REQUEST_LINEAR_BASELINE_FEE: u128 = 3_000_000;
pub const HTTP_REQUEST_QUADRATIC_BASELINE_FEE: u128 = 60_000;
pub const HTTP_REQUEST_PER_BYTE_FEE: u128 = 400;
pub const HTTP_RESPONSE_PER_BYTE_FEE: u128 = 800;
/// A response may be this large, so a call prepays its transmission.
pub const MAX_RESPONSE_BYTES: u128 = 2 * 1024 * 1024;
/// The default freezing threshold: a canister keeps 30 days of its idle burn in reserve.
pub const FREEZING_THRESHOLD_SECONDS: u128 = 30 * 24 * 60 * 60;
const GIB: u128 = 1 << 30;

/// What an ed25519-signed ingress envelope carries besides its method name and argument: the
/// sender, its public key and signature, the canister id, nonce, expiry and the CBOR field names,
/// about 300 bytes (ic-agent's for a one-byte `echo` call: 299,
/// tests/replica/tests/replica/http_front.rs). The IC charges the whole envelope: calls through
/// the HTTP front pay on the real one, calls made through the Rust API on this estimate.
pub const INGRESS_ENVELOPE_BYTES: u64 = 300;

/// The bytes an ingress call of `method` with `arg` is charged for.
pub fn ingress_message_bytes(method: &str, arg: &[u8]) -> u64 {
    (method.len() + arg.len()) as u64 + INGRESS_ENVELOPE_BYTES
}

/// The fees of one subnet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Fees {
    subnet_size: u32,
}

impl Default for Fees {
    fn default() -> Self {
        Fees::new(DEFAULT_SUBNET_SIZE)
    }
}

impl Fees {
    pub fn new(subnet_size: u32) -> Fees {
        assert!(subnet_size > 0, "a subnet has nodes");
        Fees { subnet_size }
    }

    pub fn subnet_size(&self) -> u32 {
        self.subnet_size
    }

    fn scale(&self, cycles: u128) -> u128 {
        cycles * self.subnet_size as u128 / REFERENCE_SUBNET_SIZE
    }

    /// Instructions alone (what an unused prepayment refunds).
    pub fn instructions(&self, instructions: u64) -> u128 {
        self.scale(instructions as u128 * TEN_UPDATE_INSTRUCTIONS_EXECUTION_FEE / 10)
    }

    /// A message that may execute `instructions`: what it prepays before it runs.
    pub fn execution(&self, instructions: u64) -> u128 {
        self.scale(UPDATE_MESSAGE_EXECUTION_FEE + instructions as u128 * TEN_UPDATE_INSTRUCTIONS_EXECUTION_FEE / 10)
    }

    /// What a message with limit `limit` that used `used` instructions pays in the end: its
    /// prepayment less the refund of the instructions it left.
    pub fn execution_used(&self, limit: u64, used: u64) -> u128 {
        self.execution(limit) - self.instructions(limit.saturating_sub(used))
    }

    /// Inducting an ingress message of `bytes`, paid by the canister it is for.
    pub fn ingress(&self, bytes: u64) -> u128 {
        self.scale(INGRESS_MESSAGE_RECEPTION_FEE) + self.scale(INGRESS_BYTE_RECEPTION_FEE) * bytes as u128
    }

    /// Sending a request of `bytes` (method name and argument): the call fee and its bytes.
    pub fn xnet_request(&self, bytes: u64) -> u128 {
        self.scale(XNET_CALL_FEE) + self.scale(XNET_BYTE_TRANSMISSION_FEE * bytes as u128)
    }

    /// Receiving a response of `bytes` (reply data or reject message).
    pub fn xnet_response(&self, bytes: u64) -> u128 {
        self.scale(XNET_BYTE_TRANSMISSION_FEE * bytes as u128)
    }

    /// What a call prepays for a response as large as one may be.
    pub fn response_transmission_prepayment(&self) -> u128 {
        self.xnet_response(MAX_RESPONSE_BYTES as u64)
    }

    /// Everything `call_perform` withdraws for a request of `bytes`, besides cycles attached:
    /// the request's fees, the largest response's transmission and its callback's execution.
    /// `ic0.cost_call` answers this figure.
    pub fn call_prepayment(&self, bytes: u64) -> u128 {
        self.xnet_request(bytes) + self.response_transmission_prepayment() + self.execution(limits::UPDATE_INSTRUCTIONS)
    }

    /// Keeping `bytes` of memory for `seconds`.
    pub fn storage(&self, bytes: u64, seconds: u64) -> u128 {
        self.scale(bytes as u128 * GIB_STORAGE_PER_SECOND_FEE * seconds as u128 / GIB)
    }

    /// Keeping `bytes` of memory for `nanos` nanoseconds (what a clock advance costs).
    pub fn storage_nanos(&self, bytes: u64, nanos: u64) -> u128 {
        self.scale(bytes as u128 * GIB_STORAGE_PER_SECOND_FEE * nanos as u128 / (GIB * 1_000_000_000))
    }

    /// The balance a canister of `memory_bytes` must keep: below it, it is frozen.
    pub fn freezing_threshold(&self, memory_bytes: u64) -> u128 {
        self.storage(memory_bytes, FREEZING_THRESHOLD_SECONDS as u64)
    }

    pub fn canister_creation(&self) -> u128 {
        self.scale(CANISTER_CREATION_FEE)
    }

    /// A threshold signature or key derivation, priced on a key subnet of this size.
    pub fn threshold_key(&self) -> u128 {
        self.scale(THRESHOLD_KEY_FEE)
    }

    /// An HTTPS outcall: paid by every node, so multiplied by the size rather than scaled.
    pub fn http_request(&self, request_bytes: u64, max_response_bytes: u64) -> u128 {
        let n = self.subnet_size as u128;
        (HTTP_REQUEST_LINEAR_BASELINE_FEE
            + HTTP_REQUEST_QUADRATIC_BASELINE_FEE * n
            + HTTP_REQUEST_PER_BYTE_FEE * request_bytes as u128
            + HTTP_RESPONSE_PER_BYTE_FEE * max_response_bytes as u128)
            * n
    }
}

/// Cycles one call (or message) cost, by what they paid for.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Cycles {
    /// Executing messages: the fixed fee per message and the instructions.
    pub execution: u128,
    /// Receiving ingress messages.
    pub ingress: u128,
    /// Requests sent to and responses received from other canisters.
    pub xnet: u128,
}

impl Cycles {
    pub fn total(&self) -> u128 {
        self.execution + self.ingress + self.xnet
    }
}

impl std::ops::Add for Cycles {
    type Output = Cycles;
    fn add(self, o: Cycles) -> Cycles {
        Cycles { execution: self.execution + o.execution, ingress: self.ingress + o.ingress, xnet: self.xnet + o.xnet }
    }
}

impl std::iter::Sum for Cycles {
    fn sum<I: Iterator<Item = Cycles>>(iter: I) -> Cycles {
        iter.fold(Cycles::default(), |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirteen_node_figures() {
        let f = Fees::default();
        assert_eq!(f.execution(1_000_000_000), 1_005_000_000);
        assert_eq!(f.execution(limits::UPDATE_INSTRUCTIONS), 40_005_000_000);
        assert_eq!(f.execution_used(limits::UPDATE_INSTRUCTIONS, 7), 5_000_007);
        assert_eq!(f.ingress(100), 1_200_000 + 200_000);
        assert_eq!(f.xnet_request(100), 260_000 + 100_000);
        assert_eq!(f.response_transmission_prepayment(), 2_097_152_000);
        // ic0.cost_call on a 13-node subnet: 42,102,412,000 + 1,000 per byte.
        assert_eq!(f.call_prepayment(0), 42_102_412_000);
        assert_eq!(f.call_prepayment(10), 42_102_422_000);
        // 1 GiB for 30 days: 329,184,000,000.
        assert_eq!(f.storage(1 << 30, 30 * 86_400), 329_184_000_000);
        assert_eq!(f.canister_creation(), 500_000_000_000);
        assert_eq!(f.http_request(0, 2_000_000), 20_849_140_000);
    }

    #[test]
    fn thirty_four_node_figures_scale_and_round_down() {
        let f = Fees::new(LARGE_SUBNET_SIZE);
        assert_eq!(f.execution(0), 13_076_923);
        assert_eq!(f.instructions(1_000_000_000), 2_615_384_615);
        assert_eq!(f.execution(limits::UPDATE_INSTRUCTIONS), 104_628_461_538);
        assert_eq!(f.xnet_request(0), 680_000);
        assert_eq!(f.response_transmission_prepayment(), 5_484_859_076);
        assert_eq!(f.ingress(0), 3_138_461);
        assert_eq!(f.ingress(1), 3_138_461 + 5_230);
        assert_eq!(f.canister_creation(), 1_307_692_307_692);
        assert_eq!(f.threshold_key(), 26_153_846_153);
        assert_eq!(f.storage(1 << 30, 86_400), 28_698_092_307);
    }
}
