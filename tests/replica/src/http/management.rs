//! The management canister (`aaaaa-aa`) as users call it over HTTP: what a deploy needs
//! (create, status, settings, install, the chunk store for modules over 2 MiB, start, stop).
//! Every other method is rejected as one the local replica does not implement.

use candid::{CandidType, Decode, Encode, Nat, Principal};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterInstallMode, CanisterSettings, CanisterStatusType, ChunkHash, EnvironmentVariable,
    InstallChunkedCodeArgs, InstallCodeArgs, LogVisibility, MemoryMetrics, ProvisionalCreateCanisterWithCyclesArgs,
    QueryStats, SnapshotVisibility, UpdateSettingsArgs, UploadChunkArgs,
};
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

/// Answers `method` sent by `sender` with effective canister id `ecid`, in a signed request of
/// `message_bytes`. As on the IC, the effective canister pays the ingress fee (creation, which
/// has no canister yet, is free).
pub fn call(
    front: &mut Front,
    sender: Principal,
    ecid: Principal,
    method: &str,
    arg: &[u8],
    message_bytes: u64,
) -> Result<Vec<u8>, Reject> {
    if method == "provisional_create_canister_with_cycles" {
        return execute(front, sender, ecid, method, arg);
    }
    // Only a controller gets a message to the management canister about a canister inducted
    // (and charged) at all.
    controller_only(front, ecid, sender)?;
    if method == "update_settings" && arg.len() <= MAX_DELAYED_INGRESS_COST_PAYLOAD_SIZE {
        let result = execute(front, sender, ecid, method, arg);
        // The delayed fee is taken as far as the balance goes (the IC ignores a shortfall).
        let delayed = (method.len() + arg.len()) as u64;
        if front.replica.charge_management_ingress(ecid, delayed).is_err() {
            let balance = front.replica.cycle_balance(ecid);
            let fee = front.replica.fees().ingress(delayed);
            front.replica.set_cycle_balance(ecid, balance.saturating_sub(fee));
        }
        return result;
    }
    front.replica.charge_management_ingress(ecid, message_bytes)?;
    execute(front, sender, ecid, method, arg)
}

fn execute(front: &mut Front, sender: Principal, ecid: Principal, method: &str, arg: &[u8]) -> Result<Vec<u8>, Reject> {
    // Except for creation, a method names its canister, which must be the effective one.
    let target = |canister: Principal| -> Result<Principal, Reject> {
        if canister != ecid {
            return Err(reject(
                RejectCode::CanisterReject,
                format!("The effective canister id {ecid} does not match the argument's canister {canister}"),
            ));
        }
        Ok(canister)
    };
    match method {
        "provisional_create_canister_with_cycles" => {
            let args: ProvisionalCreateCanisterWithCyclesArgs = decode(method, arg)?;
            if args.specified_id.is_some() {
                return Err(reject(
                    RejectCode::CanisterReject,
                    "The local replica does not create canisters at a specified id",
                ));
            }
            let settings = args.settings.unwrap_or_default();
            check_settings(&settings)?;
            let controllers = settings.controllers.unwrap_or_else(|| vec![sender]);
            let cycles = match args.amount {
                Some(n) => u128::try_from(n.0).map_err(|_| reject(RejectCode::CanisterReject, "amount too large"))?,
                None => INITIAL_CYCLES,
            };
            let id = front.replica.create_canister_with(controllers, cycles);
            if let Some(vars) = settings.environment_variables {
                front.replica.set_env_vars(id, front.replica.controllers(id)[0], env_map(vars))?;
            }
            encode(&CanisterIdRecord { canister_id: id })
        }
        "canister_status" => {
            let canister = target(decode::<CanisterIdRecord>(method, arg)?.canister_id)?;
            controller_only(front, canister, sender)?;
            encode(&status(front, canister))
        }
        "update_settings" => {
            let args: UpdateSettingsArgs = decode(method, arg)?;
            let canister = target(args.canister_id)?;
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
            let canister = target(args.canister_id)?;
            install(front, canister, sender, args.mode, &args.wasm_module, args.arg)
        }
        "upload_chunk" => {
            let args: UploadChunkArgs = decode(method, arg)?;
            let canister = target(args.canister_id)?;
            controller_only(front, canister, sender)?;
            if args.chunk.len() > MAX_CHUNK_BYTES {
                return Err(reject(
                    RejectCode::CanisterReject,
                    format!("Wasm chunk size {} exceeds the maximum chunk size of {MAX_CHUNK_BYTES}", args.chunk.len()),
                ));
            }
            let store = front.chunk_stores.entry(canister).or_default();
            let hash: [u8; 32] = Sha256::digest(&args.chunk).into();
            if store.len() >= MAX_CHUNKS && !store.contains_key(&hash) {
                return Err(reject(RejectCode::CanisterReject, "Wasm chunk store is full (100 chunks)"));
            }
            store.insert(hash, args.chunk);
            encode(&ChunkHash { hash: hash.to_vec() })
        }
        "clear_chunk_store" => {
            let canister = target(decode::<CanisterIdRecord>(method, arg)?.canister_id)?;
            controller_only(front, canister, sender)?;
            front.chunk_stores.remove(&canister);
            encode(&())
        }
        "stored_chunks" => {
            let canister = target(decode::<CanisterIdRecord>(method, arg)?.canister_id)?;
            controller_only(front, canister, sender)?;
            let store = front.chunk_stores.get(&canister);
            let hashes: Vec<ChunkHash> =
                store.into_iter().flat_map(|s| s.keys()).map(|h| ChunkHash { hash: h.to_vec() }).collect();
            encode(&hashes)
        }
        "install_chunked_code" => {
            let args: InstallChunkedCodeArgs = decode(method, arg)?;
            let canister = target(args.target_canister)?;
            let store_canister = args.store_canister.unwrap_or(canister);
            controller_only(front, store_canister, sender)?;
            let store = front.chunk_stores.get(&store_canister);
            let mut wasm = Vec::new();
            for chunk in &args.chunk_hashes_list {
                let bytes = <[u8; 32]>::try_from(chunk.hash.as_slice())
                    .ok()
                    .and_then(|h| store.and_then(|s| s.get(&h)))
                    .ok_or_else(|| {
                        reject(
                            RejectCode::CanisterReject,
                            format!("Chunk {} is not in the chunk store", hex::encode(&chunk.hash)),
                        )
                    })?;
                wasm.extend_from_slice(bytes);
            }
            if Sha256::digest(&wasm).as_slice() != args.wasm_module_hash.as_slice() {
                return Err(reject(
                    RejectCode::CanisterReject,
                    "The wasm module hash does not match the chunks' sha256",
                ));
            }
            install(front, canister, sender, args.mode, &wasm, args.arg)
        }
        "start_canister" => {
            let canister = target(decode::<CanisterIdRecord>(method, arg)?.canister_id)?;
            front.replica.start_canister(canister, sender)?;
            encode(&())
        }
        "stop_canister" => {
            let canister = target(decode::<CanisterIdRecord>(method, arg)?.canister_id)?;
            front.replica.stop_canister(canister, sender)?;
            encode(&())
        }
        _ => Err(reject(
            RejectCode::DestinationInvalid,
            format!("The local replica does not implement the management canister's {method} over HTTP"),
        )),
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
                    RejectCode::CanisterReject,
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
                RejectCode::CanisterReject,
                format!("The local replica does not implement setting {name} (only its default, {only})"),
            ));
        }
    }
    if settings.log_visibility.as_ref().is_some_and(|v| *v != LogVisibility::Controllers)
        || settings.snapshot_visibility.as_ref().is_some_and(|v| *v != SnapshotVisibility::Controllers)
    {
        return Err(reject(
            RejectCode::CanisterReject,
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
