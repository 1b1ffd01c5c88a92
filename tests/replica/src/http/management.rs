//! The management canister (`aaaaa-aa`) as users call it over HTTP: what a deploy needs
//! (create, status, settings, install, the chunk store for modules over 2 MiB, start, stop).
//! Every other method is rejected as one the local replica does not implement.

use candid::{CandidType, Decode, Encode, Nat, Principal};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterInstallMode, CanisterSettings, CanisterStatusType, ChunkHash, EnvironmentVariable,
    InstallChunkedCodeArgs, InstallCodeArgs, LogVisibility, MemoryMetrics, ProvisionalCreateCanisterWithCyclesArgs,
    QueryStats, SnapshotVisibility, UpdateSettingsArgs, UploadChunkArgs,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Front;
use crate::replica::{InstallMode, Reject, RejectCode, INITIAL_CYCLES};

/// The IC's chunk store: chunks of at most 1 MiB, at most 100 MiB in all (`wasm_chunk_store`).
const MAX_CHUNK_BYTES: usize = 1 << 20;
const MAX_CHUNKS: usize = 100;

/// Settings the replica reports and does not let anyone change (the IC's defaults).
const FREEZING_THRESHOLD_SECONDS: u64 = 2_592_000;
const RESERVED_CYCLES_LIMIT: u64 = 5_000_000_000_000;
const LOG_MEMORY_LIMIT: u64 = 4096;
const WASM_MEMORY_LIMIT: u64 = 3 << 30;

fn reject(code: RejectCode, message: impl Into<String>) -> Reject {
    Reject { code, message: message.into() }
}

fn decode<T: CandidType + for<'de> serde::Deserialize<'de>>(method: &str, arg: &[u8]) -> Result<T, Reject> {
    Decode!(arg, T).map_err(|e| reject(RejectCode::CanisterError, format!("Error decoding candid for {method}: {e}")))
}

fn encode<T: CandidType>(value: &T) -> Result<Vec<u8>, Reject> {
    Ok(Encode!(value).expect("a management reply encodes"))
}

/// `update_settings` arguments up to this size pay their ingress fee after executing, on the
/// argument and method name only, so that a frozen canister can be unfrozen
/// (`MAX_DELAYED_INGRESS_COST_PAYLOAD_SIZE` in the IC's cycles account manager).
const MAX_DELAYED_INGRESS_COST_PAYLOAD_SIZE: usize = 338;

/// The methods users may call over HTTP here; creation names no canister yet.
const INGRESS_METHODS: [&str; 10] = [
    "provisional_create_canister_with_cycles",
    "canister_status",
    "update_settings",
    "install_code",
    "upload_chunk",
    "clear_chunk_store",
    "stored_chunks",
    "install_chunked_code",
    "start_canister",
    "stop_canister",
];

/// The canister a management method's argument names (its effective canister id on the IC).
#[derive(CandidType, Deserialize)]
struct Target {
    canister_id: Option<Principal>,
    target_canister: Option<Principal>,
}

/// What the IC's ingress filter does for a message to the management canister, before anything
/// is certified: the method must be one users may call, its argument must name the canister,
/// which must exist and be controlled by the sender, and pay the ingress fee from above its
/// freezing threshold (`should_accept_ingress_message` and `ingress_induction_cost`). The
/// argument's canister is returned; an `Err(Ok(message))` is a 400 (the URL names another
/// canister), an `Err(Err(reject))` a non-replicated rejection.
pub fn admit(
    front: &mut Front,
    sender: Principal,
    ecid: Principal,
    method: &str,
    arg: &[u8],
    message_bytes: u64,
) -> Result<(), Result<String, Reject>> {
    if !INGRESS_METHODS.contains(&method) {
        return Err(Err(reject(
            RejectCode::CanisterReject,
            format!("The local replica does not take the management canister's {method} from users"),
        )));
    }
    if method == "provisional_create_canister_with_cycles" {
        return Ok(()); // free: there is no canister to pay yet
    }
    let target = Decode!(arg, Target)
        .ok()
        .and_then(|t| t.canister_id.or(t.target_canister))
        .ok_or_else(|| Err(reject(RejectCode::CanisterReject, format!("Failed to decode the argument of {method}"))))?;
    if target != ecid {
        return Err(Ok(format!("Specified CanisterId {target} does not match effective canister id in URL {ecid}")));
    }
    if !front.replica.canister_ids().contains(&target) {
        return Err(Err(reject(RejectCode::DestinationInvalid, format!("Canister {target} not found"))));
    }
    if !front.replica.controllers(target).contains(&sender) {
        return Err(Err(reject(
            RejectCode::CanisterError,
            format!("Only controllers of canister {target} can call ic00 method {method}"),
        )));
    }
    if pays_after_executing(method, arg) {
        return Ok(());
    }
    front.replica.charge_management_ingress(target, message_bytes).map_err(Err)
}

/// A small `update_settings` pays its ingress fee after it executes, so that a frozen canister
/// can be unfrozen.
fn pays_after_executing(method: &str, arg: &[u8]) -> bool {
    method == "update_settings" && arg.len() <= MAX_DELAYED_INGRESS_COST_PAYLOAD_SIZE
}

/// Executes an admitted message to the management canister (see [`admit`]).
pub fn execute(
    front: &mut Front,
    sender: Principal,
    ecid: Principal,
    method: &str,
    arg: &[u8],
) -> Result<Vec<u8>, Reject> {
    let result = execute_method(front, sender, method, arg);
    if pays_after_executing(method, arg) {
        // The delayed fee, on the argument and method name, as far as the balance goes (the IC
        // ignores a shortfall here).
        let delayed = (method.len() + arg.len()) as u64;
        if front.replica.charge_management_ingress(ecid, delayed).is_err() {
            let fee = front.replica.fees().ingress(delayed);
            let balance = front.replica.cycle_balance(ecid);
            front.replica.set_cycle_balance(ecid, balance.saturating_sub(fee));
        }
    }
    result
}

fn execute_method(front: &mut Front, sender: Principal, method: &str, arg: &[u8]) -> Result<Vec<u8>, Reject> {
    // `admit` checked that the argument's canister is `ecid`.
    match method {
        "provisional_create_canister_with_cycles" => {
            let args: ProvisionalCreateCanisterWithCyclesArgs = decode(method, arg)?;
            if args.specified_id.is_some() {
                return Err(reject(
                    RejectCode::CanisterError,
                    "The local replica does not create canisters at a specified id",
                ));
            }
            let settings = args.settings.unwrap_or_default();
            check_settings(&settings)?;
            let controllers = settings.controllers.unwrap_or_else(|| vec![sender]);
            let cycles = match args.amount {
                Some(n) => u128::try_from(n.0).map_err(|_| reject(RejectCode::CanisterError, "amount too large"))?,
                None => INITIAL_CYCLES,
            };
            let env = settings.environment_variables.map(env_map).unwrap_or_default();
            let id = front.replica.create_canister_with(controllers, cycles, env);
            encode(&CanisterIdRecord { canister_id: id })
        }
        "canister_status" => {
            let canister = decode::<CanisterIdRecord>(method, arg)?.canister_id;
            encode(&status(front, canister))
        }
        "update_settings" => {
            let args: UpdateSettingsArgs = decode(method, arg)?;
            let canister = args.canister_id;
            check_settings(&args.settings)?;
            if let Some(vars) = args.settings.environment_variables {
                front.replica.set_env_vars(canister, sender, env_map(vars))?;
            }
            if let Some(controllers) = args.settings.controllers {
                front.replica.set_controllers(canister, sender, controllers)?;
            }
            encode(&())
        }
        "install_code" => {
            let args: InstallCodeArgs = decode(method, arg)?;
            let canister = args.canister_id;
            install(front, canister, sender, args.mode, &args.wasm_module, args.arg)
        }
        "upload_chunk" => {
            let args: UploadChunkArgs = decode(method, arg)?;
            let canister = args.canister_id;
            if args.chunk.len() > MAX_CHUNK_BYTES {
                return Err(reject(
                    RejectCode::CanisterError,
                    format!("Wasm chunk size {} exceeds the maximum chunk size of {MAX_CHUNK_BYTES}", args.chunk.len()),
                ));
            }
            let store = front.chunk_stores.entry(canister).or_default();
            let hash: [u8; 32] = Sha256::digest(&args.chunk).into();
            if store.len() >= MAX_CHUNKS && !store.contains_key(&hash) {
                return Err(reject(RejectCode::CanisterError, "Wasm chunk store is full (100 chunks)"));
            }
            store.insert(hash, args.chunk);
            encode(&ChunkHash { hash: hash.to_vec() })
        }
        "clear_chunk_store" => {
            let canister = decode::<CanisterIdRecord>(method, arg)?.canister_id;
            front.chunk_stores.remove(&canister);
            encode(&())
        }
        "stored_chunks" => {
            let canister = decode::<CanisterIdRecord>(method, arg)?.canister_id;
            let store = front.chunk_stores.get(&canister);
            let hashes: Vec<ChunkHash> =
                store.into_iter().flat_map(|s| s.keys()).map(|h| ChunkHash { hash: h.to_vec() }).collect();
            encode(&hashes)
        }
        "install_chunked_code" => {
            let args: InstallChunkedCodeArgs = decode(method, arg)?;
            let canister = args.target_canister;
            let store_canister = args.store_canister.unwrap_or(canister);
            // `admit` checked the target; chunks kept elsewhere need that canister's controller too.
            if store_canister != canister {
                controller_only(front, store_canister, sender)?;
            }
            let store = front.chunk_stores.get(&store_canister);
            let mut wasm = Vec::new();
            for chunk in &args.chunk_hashes_list {
                let bytes = <[u8; 32]>::try_from(chunk.hash.as_slice())
                    .ok()
                    .and_then(|h| store.and_then(|s| s.get(&h)))
                    .ok_or_else(|| {
                        reject(
                            RejectCode::CanisterError,
                            format!("Chunk {} is not in the chunk store", hex::encode(&chunk.hash)),
                        )
                    })?;
                wasm.extend_from_slice(bytes);
            }
            if Sha256::digest(&wasm).as_slice() != args.wasm_module_hash.as_slice() {
                return Err(reject(
                    RejectCode::CanisterError,
                    "The wasm module hash does not match the chunks' sha256",
                ));
            }
            install(front, canister, sender, args.mode, &wasm, args.arg)
        }
        "start_canister" => {
            let canister = decode::<CanisterIdRecord>(method, arg)?.canister_id;
            front.replica.start_canister(canister, sender)?;
            encode(&())
        }
        "stop_canister" => {
            let canister = decode::<CanisterIdRecord>(method, arg)?.canister_id;
            front.replica.stop_canister(canister, sender)?;
            encode(&())
        }
        _ => unreachable!("admit lets only INGRESS_METHODS through"),
    }
}

fn controller_only(front: &Front, canister: Principal, sender: Principal) -> Result<(), Reject> {
    if !front.replica.canister_ids().contains(&canister) {
        return Err(reject(RejectCode::DestinationInvalid, format!("Canister {canister} not found")));
    }
    if !front.replica.controllers(canister).contains(&sender) {
        return Err(reject(
            RejectCode::CanisterError,
            format!("Only the controllers of the canister {canister} can control it."),
        ));
    }
    Ok(())
}

fn install(
    front: &mut Front,
    canister: Principal,
    sender: Principal,
    mode: CanisterInstallMode,
    wasm: &[u8],
    arg: Vec<u8>,
) -> Result<Vec<u8>, Reject> {
    let mode = match mode {
        CanisterInstallMode::Install => InstallMode::Install,
        CanisterInstallMode::Reinstall => InstallMode::Reinstall,
        CanisterInstallMode::Upgrade(flags) => {
            let flags = flags.unwrap_or_default();
            if flags.skip_pre_upgrade == Some(true)
                || flags.wasm_memory_persistence.is_some_and(|p| p != Default::default())
            {
                return Err(reject(
                    RejectCode::CanisterError,
                    "The local replica does not implement skip_pre_upgrade or keeping the Wasm memory",
                ));
            }
            InstallMode::Upgrade
        }
    };
    front.replica.install_code(canister, wasm, arg, mode, sender)?;
    encode(&())
}

/// Refuses the settings the replica does not implement, unless they ask for what it has.
fn check_settings(settings: &CanisterSettings) -> Result<(), Reject> {
    let fixed = [
        ("compute_allocation", &settings.compute_allocation, 0),
        ("memory_allocation", &settings.memory_allocation, 0),
        ("freezing_threshold", &settings.freezing_threshold, FREEZING_THRESHOLD_SECONDS),
        ("reserved_cycles_limit", &settings.reserved_cycles_limit, RESERVED_CYCLES_LIMIT),
        ("log_memory_limit", &settings.log_memory_limit, LOG_MEMORY_LIMIT),
        ("wasm_memory_limit", &settings.wasm_memory_limit, WASM_MEMORY_LIMIT),
        ("wasm_memory_threshold", &settings.wasm_memory_threshold, 0),
    ];
    for (name, value, only) in fixed {
        if value.as_ref().is_some_and(|v| v.0 != only.into()) {
            return Err(reject(
                RejectCode::CanisterError,
                format!("The local replica does not implement setting {name} (only its default, {only})"),
            ));
        }
    }
    if settings.log_visibility.as_ref().is_some_and(|v| *v != LogVisibility::Controllers)
        || settings.snapshot_visibility.as_ref().is_some_and(|v| *v != SnapshotVisibility::Controllers)
    {
        return Err(reject(
            RejectCode::CanisterError,
            "The local replica does not implement log or snapshot visibility",
        ));
    }
    Ok(())
}

fn env_map(vars: Vec<EnvironmentVariable>) -> std::collections::BTreeMap<String, String> {
    vars.into_iter().map(|v| (v.name, v.value)).collect()
}

/// `canister_status`'s reply as the IC gives it now (ic-management-canister-types 0.9 and later,
/// which icp-cli 1.5 decodes with): 0.8's record and the settings `status_visibility` and
/// `minimum_incoming_canister_call_cycles`. Older clients ignore the two extra fields.
#[derive(CandidType)]
struct StatusReply {
    status: CanisterStatusType,
    ready_for_migration: bool,
    version: u64,
    settings: DefiniteSettings,
    module_hash: Option<Vec<u8>>,
    memory_size: Nat,
    memory_metrics: MemoryMetrics,
    cycles: Nat,
    reserved_cycles: Nat,
    idle_cycles_burned_per_day: Nat,
    query_stats: QueryStats,
}

#[derive(CandidType)]
struct DefiniteSettings {
    controllers: Vec<Principal>,
    compute_allocation: Nat,
    memory_allocation: Nat,
    freezing_threshold: Nat,
    reserved_cycles_limit: Nat,
    minimum_incoming_canister_call_cycles: Nat,
    log_visibility: LogVisibility,
    log_memory_limit: Nat,
    snapshot_visibility: SnapshotVisibility,
    /// The same variant as log visibility (`controllers`, `public`, `allowed_viewers`).
    status_visibility: LogVisibility,
    wasm_memory_limit: Nat,
    wasm_memory_threshold: Nat,
    environment_variables: Vec<EnvironmentVariable>,
}

fn status(front: &Front, canister: Principal) -> StatusReply {
    let r = &front.replica;
    let status = match r.canister_status(canister) {
        Some(crate::CanisterStatus::Running) | None => CanisterStatusType::Running,
        Some(crate::CanisterStatus::Stopping) => CanisterStatusType::Stopping,
        Some(crate::CanisterStatus::Stopped) => CanisterStatusType::Stopped,
    };
    let memory = r.memory_usage(canister);
    let chunks: u64 = front.chunk_stores.get(&canister).map_or(0, |s| s.values().map(|c| c.len() as u64).sum());
    let module = memory - r.heap_bytes(canister) - r.stable_bytes(canister);
    let fees = r.fees();
    StatusReply {
        status,
        ready_for_migration: false,
        // The replica does not count canister versions.
        version: 0,
        settings: DefiniteSettings {
            controllers: r.controllers(canister),
            compute_allocation: 0u64.into(),
            memory_allocation: 0u64.into(),
            freezing_threshold: FREEZING_THRESHOLD_SECONDS.into(),
            reserved_cycles_limit: RESERVED_CYCLES_LIMIT.into(),
            minimum_incoming_canister_call_cycles: 0u64.into(),
            log_visibility: LogVisibility::Controllers,
            log_memory_limit: LOG_MEMORY_LIMIT.into(),
            snapshot_visibility: SnapshotVisibility::Controllers,
            status_visibility: LogVisibility::Controllers,
            wasm_memory_limit: WASM_MEMORY_LIMIT.into(),
            wasm_memory_threshold: 0u64.into(),
            environment_variables: r
                .env_vars(canister)
                .into_iter()
                .map(|(name, value)| EnvironmentVariable { name, value })
                .collect(),
        },
        module_hash: r.module_hash(canister).map(|h| h.to_vec()),
        memory_size: memory.into(),
        memory_metrics: MemoryMetrics {
            wasm_memory_size: r.heap_bytes(canister).into(),
            stable_memory_size: r.stable_bytes(canister).into(),
            global_memory_size: 0u64.into(),
            wasm_binary_size: module.into(),
            custom_sections_size: 0u64.into(),
            canister_history_size: 0u64.into(),
            wasm_chunk_store_size: chunks.into(),
            snapshots_size: 0u64.into(),
            log_memory_store_size: 0u64.into(),
        },
        cycles: r.cycle_balance(canister).into(),
        reserved_cycles: 0u64.into(),
        idle_cycles_burned_per_day: fees.storage_nanos(memory, 86_400_000_000_000).into(),
        query_stats: QueryStats {
            num_calls_total: 0u64.into(),
            num_instructions_total: 0u64.into(),
            request_payload_bytes_total: 0u64.into(),
            response_payload_bytes_total: 0u64.into(),
        },
    }
}
