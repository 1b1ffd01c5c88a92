//! The IC's limits for application subnets (`../shared/docs/ic-platform.md` §1, §4).

/// Instructions one update, response callback, timer or heartbeat message may execute.
pub const UPDATE_INSTRUCTIONS: u64 = 40_000_000_000;
/// Instructions one query (or composite query) may execute; queries are never sliced.
pub const QUERY_INSTRUCTIONS: u64 = 5_000_000_000;
/// Instructions `canister_inspect_message` may execute.
pub const INSPECT_INSTRUCTIONS: u64 = 200_000_000;
/// Instructions for a whole install or upgrade (pre_upgrade, start and init/post_upgrade).
pub const INSTALL_INSTRUCTIONS: u64 = 300_000_000_000;
/// Instructions in one deterministic-time-slicing slice: one slice per round.
pub const SLICE_INSTRUCTIONS: u64 = 2_000_000_000;
/// Instructions a cleanup callback may execute. UNCONFIRMED on the IC; we take the stricter
/// query budget.
pub const CLEANUP_INSTRUCTIONS: u64 = QUERY_INSTRUCTIONS;

/// Ingress message payload.
pub const MAX_INGRESS_BYTES: usize = 2 * 1024 * 1024;
/// Inter-canister request payload between canisters on the same subnet.
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// Reply payload of a replicated message (update, callback).
pub const MAX_REPLY_BYTES: usize = 2 * 1024 * 1024;
/// Reply payload of a non-replicated query.
pub const MAX_QUERY_REPLY_BYTES: usize = 3 * 1024 * 1024;

/// Module size (uncompressed), code section, functions, globals, instructions per function.
pub const WASM_MAX_SIZE: usize = 100 * 1024 * 1024;
pub const MAX_CODE_SECTION_BYTES: usize = 10 * 1024 * 1024;
pub const MAX_FUNCTIONS: usize = 50_000;
pub const MAX_GLOBALS: usize = 1_000;
pub const MAX_INSTRUCTIONS_PER_FUNCTION: usize = 1_000_000;
pub const MAX_EXPORTED_METHODS: usize = 1_000;
pub const MAX_METHOD_NAME_BYTES: usize = 20_000;

/// Wasm page and the OS page the IC tracks stable-memory access by.
pub const WASM_PAGE: u64 = 64 * 1024;
pub const OS_PAGE: u64 = 4 * 1024;
/// Stable memory per canister.
pub const MAX_STABLE_BYTES: u64 = 500 * 1024 * 1024 * 1024;
/// Stable-memory pages (4 KiB) one message may access: 2 GiB for replicated messages, 1 GiB for
/// queries, 8 GiB for install and upgrade.
pub const STABLE_PAGES_PER_UPDATE: u64 = (2u64 << 30) / OS_PAGE;
pub const STABLE_PAGES_PER_QUERY: u64 = (1u64 << 30) / OS_PAGE;
pub const STABLE_PAGES_PER_INSTALL: u64 = (8u64 << 30) / OS_PAGE;
/// The default `wasm_memory_limit` (3 GiB), enforced where the IC enforces it.
pub const WASM_MEMORY_LIMIT: u64 = 3 << 30;
/// The wasm32 heap's hard limit.
pub const WASM32_MAX_HEAP: u64 = 4 << 30;
