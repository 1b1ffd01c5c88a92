//! The `ic0` system API, as host functions over [`Host`]. Each call charges the IC's fixed
//! overhead plus one instruction per byte it copies, from the same fuel the wasm code burns.

use candid::Principal;
use wasmtime::{Caller, Linker};

use crate::costs::system_api as cost;
use crate::host::{Callback, Host, MessageKind, OutgoingCall, Response};
use crate::limits;

/// A trap raised by the system API or the replica's rules, with the IC's wording where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanisterTrap(pub String);

impl std::fmt::Display for CanisterTrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for CanisterTrap {}

type HostResult<T> = wasmtime::Result<T>;

fn trap<T>(message: impl Into<String>) -> HostResult<T> {
    Err(wasmtime::Error::new(CanisterTrap(message.into())))
}

pub fn instruction_limit_message(limit: u64) -> String {
    format!("Canister exceeded the limit of {limit} instructions for single message execution.")
}

/// Instructions this message has executed so far.
pub fn used(caller: &Caller<'_, Host>) -> u64 {
    let limit = caller.data().message.limit;
    limit.saturating_sub(caller.get_fuel().unwrap_or(0))
}

/// Subtracts `amount` (and anything the replica billed outside fuel) from the message's budget,
/// trapping as the IC does when the budget runs out.
fn charge(caller: &mut Caller<'_, Host>, amount: u64) -> HostResult<()> {
    let pending = std::mem::take(&mut caller.data_mut().message.pending_charge);
    caller.data_mut().message.extra_charged += pending;
    let total = amount + pending;
    let fuel = caller.get_fuel()?;
    if total > fuel {
        caller.set_fuel(0)?;
        let limit = caller.data().message.limit;
        return trap(instruction_limit_message(limit));
    }
    caller.set_fuel(fuel - total)?;
    Ok(())
}

/// The first charge of every system call: its overhead (the `call` itself is priced by fuel).
fn syscall(caller: &mut Caller<'_, Host>, overhead: u64) -> HostResult<()> {
    charge(caller, overhead)
}

fn read(caller: &mut Caller<'_, Host>, api: &str, ptr: u64, len: u64) -> HostResult<Vec<u8>> {
    let memory = caller.data().memory.expect("memory exported");
    let data = memory.data(&caller);
    let end = ptr.checked_add(len).filter(|&e| e <= data.len() as u64);
    match end {
        Some(end) => Ok(data[ptr as usize..end as usize].to_vec()),
        None => trap(format!("{api}: heap out of bounds (offset {ptr} + length {len} > {})", data.len())),
    }
}

fn write(caller: &mut Caller<'_, Host>, api: &str, ptr: u64, bytes: &[u8]) -> HostResult<()> {
    let memory = caller.data().memory.expect("memory exported");
    let data = memory.data_mut(&mut *caller);
    let end = ptr.checked_add(bytes.len() as u64).filter(|&e| e <= data.len() as u64);
    match end {
        Some(end) => {
            data[ptr as usize..end as usize].copy_from_slice(bytes);
            Ok(())
        }
        None => trap(format!("{api}: heap out of bounds")),
    }
}

/// The `*_copy(dst, offset, size)` pattern: copies `src[offset..offset+size]` to the heap.
fn copy_out(caller: &mut Caller<'_, Host>, api: &str, dst: u32, offset: u32, size: u32, src: &[u8]) -> HostResult<()> {
    syscall(caller, cost::DEFAULT + size as u64)?;
    let (offset, size) = (offset as usize, size as usize);
    if offset.checked_add(size).is_none_or(|end| end > src.len()) {
        return trap(format!("{api}: offset {offset} + size {size} exceeds the source length {}", src.len()));
    }
    write(caller, api, dst as u64, &src[offset..offset + size])
}

/// The 128-bit cycles calls cost their overhead alone (500), with no charge for the 16 bytes.
fn write_u128(caller: &mut Caller<'_, Host>, api: &str, dst: u32, value: u128) -> HostResult<()> {
    syscall(caller, cost::DEFAULT)?;
    write(caller, api, dst as u64, &value.to_le_bytes())
}

fn require(caller: &Caller<'_, Host>, api: &str, allowed: bool) -> HostResult<()> {
    if allowed {
        Ok(())
    } else {
        let mode = caller.data().message.kind.ic_mode_name();
        trap(format!("Canister violated contract: \"ic0_{api}\" cannot be executed in {mode} mode"))
    }
}

/// Every `ic0` function the replica provides, with its (wasm32) signature.
pub fn signatures() -> std::collections::BTreeMap<String, crate::validate::Signature> {
    let engine = wasmtime::Engine::default();
    let mut linker = Linker::new(&engine);
    register(&mut linker).expect("system API registers");
    let mut store = wasmtime::Store::new(&engine, Host::new(Principal::anonymous(), vec![], 0));
    let types = |types: &mut dyn Iterator<Item = wasmtime::ValType>| -> Vec<wasmparser::ValType> {
        types
            .map(|t| match t {
                wasmtime::ValType::I32 => wasmparser::ValType::I32,
                wasmtime::ValType::I64 => wasmparser::ValType::I64,
                wasmtime::ValType::F32 => wasmparser::ValType::F32,
                wasmtime::ValType::F64 => wasmparser::ValType::F64,
                other => panic!("the system API takes no {other}"),
            })
            .collect()
    };
    let exports: Vec<(String, wasmtime::Extern)> =
        linker.iter(&mut store).map(|(_, name, ext)| (name.to_string(), ext)).collect();
    exports
        .into_iter()
        .filter_map(|(name, ext)| {
            let ty = ext.into_func()?.ty(&store);
            let signature = (types(&mut ty.params()), types(&mut ty.results()));
            Some((name, signature))
        })
        .collect()
}

/// Adds the `ic0` functions to `linker`.
pub fn register(l: &mut Linker<Host>) -> wasmtime::Result<()> {
    register_host(l)
}

fn register_host(l: &mut Linker<Host>) -> wasmtime::Result<()> {
    // --- message arguments and caller ---
    l.func_wrap("ic0", "msg_arg_data_size", |mut c: Caller<'_, Host>| -> HostResult<u32> {
        syscall(&mut c, cost::DEFAULT)?;
        Ok(c.data().message.arg.len() as u32)
    })?;
    l.func_wrap("ic0", "msg_arg_data_copy", |mut c: Caller<'_, Host>, dst: u32, off: u32, size: u32| {
        let arg = c.data().message.arg.clone();
        copy_out(&mut c, "ic0.msg_arg_data_copy", dst, off, size, &arg)
    })?;
    l.func_wrap("ic0", "msg_caller_size", |mut c: Caller<'_, Host>| -> HostResult<u32> {
        syscall(&mut c, cost::DEFAULT)?;
        Ok(c.data().message.caller.as_slice().len() as u32)
    })?;
    l.func_wrap("ic0", "msg_caller_copy", |mut c: Caller<'_, Host>, dst: u32, off: u32, size: u32| {
        let caller = c.data().message.caller;
        copy_out(&mut c, "ic0.msg_caller_copy", dst, off, size, caller.as_slice())
    })?;
    l.func_wrap("ic0", "msg_reject_code", |mut c: Caller<'_, Host>| -> HostResult<u32> {
        syscall(&mut c, cost::DEFAULT)?;
        Ok(c.data().message.reject.as_ref().map_or(0, |r| r.0))
    })?;
    l.func_wrap("ic0", "msg_reject_msg_size", |mut c: Caller<'_, Host>| -> HostResult<u32> {
        syscall(&mut c, cost::DEFAULT)?;
        match &c.data().message.reject {
            Some((_, m)) => Ok(m.len() as u32),
            None => trap("ic0.msg_reject_msg_size: not in a reject callback"),
        }
    })?;
    l.func_wrap("ic0", "msg_reject_msg_copy", |mut c: Caller<'_, Host>, dst: u32, off: u32, size: u32| {
        let msg = c.data().message.reject.as_ref().map(|r| r.1.clone().into_bytes()).unwrap_or_default();
        copy_out(&mut c, "ic0.msg_reject_msg_copy", dst, off, size, &msg)
    })?;
    l.func_wrap("ic0", "msg_method_name_size", |mut c: Caller<'_, Host>| -> HostResult<u32> {
        syscall(&mut c, cost::DEFAULT)?;
        Ok(c.data().message.method.len() as u32)
    })?;
    l.func_wrap("ic0", "msg_method_name_copy", |mut c: Caller<'_, Host>, dst: u32, off: u32, size: u32| {
        let name = c.data().message.method.clone();
        copy_out(&mut c, "ic0.msg_method_name_copy", dst, off, size, name.as_bytes())
    })?;
    l.func_wrap("ic0", "accept_message", |mut c: Caller<'_, Host>| {
        syscall(&mut c, cost::DEFAULT)?;
        require(&c, "accept_message", c.data().message.kind == MessageKind::InspectMessage)?;
        if c.data().message.accepted {
            return trap("ic0.accept_message: the message was already accepted");
        }
        c.data_mut().message.accepted = true;
        Ok(())
    })?;

    // --- replies ---
    l.func_wrap("ic0", "msg_reply_data_append", |mut c: Caller<'_, Host>, src: u32, size: u32| {
        syscall(&mut c, cost::DEFAULT + cost::BYTE_TRANSMISSION * size as u64)?;
        require(&c, "msg_reply_data_append", c.data().message.may_reply)?;
        let bytes = read(&mut c, "ic0.msg_reply_data_append", src as u64, size as u64)?;
        let limit = if c.data().message.kind == MessageKind::Query {
            limits::MAX_QUERY_REPLY_BYTES
        } else {
            limits::MAX_REPLY_BYTES
        };
        let total = c.data().message.reply_buffer.len() + bytes.len();
        if total > limit {
            return trap(format!(
                "ic0.msg_reply_data_append: application payload size ({total}) cannot be larger than {limit}."
            ));
        }
        c.data_mut().message.reply_buffer.extend_from_slice(&bytes);
        Ok(())
    })?;
    l.func_wrap("ic0", "msg_reply", |mut c: Caller<'_, Host>| {
        syscall(&mut c, cost::DEFAULT)?;
        require(&c, "msg_reply", c.data().message.may_reply)?;
        let m = &mut c.data_mut().message;
        m.response = Some(Response::Reply(std::mem::take(&mut m.reply_buffer)));
        m.may_reply = false;
        Ok(())
    })?;
    l.func_wrap("ic0", "msg_reject", |mut c: Caller<'_, Host>, src: u32, size: u32| {
        syscall(&mut c, cost::DEFAULT + cost::BYTE_TRANSMISSION * size as u64)?;
        require(&c, "msg_reject", c.data().message.may_reply)?;
        let bytes = read(&mut c, "ic0.msg_reject", src as u64, size as u64)?;
        let m = &mut c.data_mut().message;
        m.response = Some(Response::Reject { code: 4, message: String::from_utf8_lossy(&bytes).into_owned() });
        m.may_reply = false;
        Ok(())
    })?;

    // --- cycles ---
    l.func_wrap("ic0", "msg_cycles_available128", |mut c: Caller<'_, Host>, dst: u32| {
        require(&c, "msg_cycles_available128", c.data().message.kind.receives_cycles())?;
        let v = c.data().message.cycles_available;
        write_u128(&mut c, "ic0.msg_cycles_available128", dst, v)
    })?;
    l.func_wrap("ic0", "msg_cycles_refunded128", |mut c: Caller<'_, Host>, dst: u32| {
        let kind = c.data().message.kind;
        require(
            &c,
            "msg_cycles_refunded128",
            matches!(kind, MessageKind::ReplyCallback | MessageKind::RejectCallback),
        )?;
        let v = c.data().message.cycles_refunded;
        write_u128(&mut c, "ic0.msg_cycles_refunded128", dst, v)
    })?;
    l.func_wrap("ic0", "msg_cycles_accept128", |mut c: Caller<'_, Host>, hi: u64, lo: u64, dst: u32| {
        require(&c, "msg_cycles_accept128", c.data().message.kind.receives_cycles())?;
        let max = ((hi as u128) << 64) | lo as u128;
        let m = &mut c.data_mut().message;
        let take = max.min(m.cycles_available);
        m.cycles_available -= take;
        m.cycles_accepted += take;
        c.data_mut().cycles += take;
        write_u128(&mut c, "ic0.msg_cycles_accept128", dst, take)
    })?;
    l.func_wrap("ic0", "canister_cycle_balance128", |mut c: Caller<'_, Host>, dst: u32| {
        let v = c.data().cycles;
        write_u128(&mut c, "ic0.canister_cycle_balance128", dst, v)
    })?;
    l.func_wrap("ic0", "canister_liquid_cycle_balance128", |mut c: Caller<'_, Host>, dst: u32| {
        // What the canister may spend: its balance above the freezing threshold.
        let v = c.data().cycles.saturating_sub(c.data().message.freezing_threshold);
        write_u128(&mut c, "ic0.canister_liquid_cycle_balance128", dst, v)
    })?;
    // The 64-bit forms wasm32 modules may still import: the same, for amounts below 2^64.
    l.func_wrap("ic0", "msg_cycles_available", |mut c: Caller<'_, Host>| -> HostResult<u64> {
        syscall(&mut c, cost::DEFAULT)?;
        require(&c, "msg_cycles_available", c.data().message.kind.receives_cycles())?;
        fit_64("ic0.msg_cycles_available", c.data().message.cycles_available)
    })?;
    l.func_wrap("ic0", "msg_cycles_refunded", |mut c: Caller<'_, Host>| -> HostResult<u64> {
        syscall(&mut c, cost::DEFAULT)?;
        let kind = c.data().message.kind;
        require(&c, "msg_cycles_refunded", matches!(kind, MessageKind::ReplyCallback | MessageKind::RejectCallback))?;
        fit_64("ic0.msg_cycles_refunded", c.data().message.cycles_refunded)
    })?;
    l.func_wrap("ic0", "msg_cycles_accept", |mut c: Caller<'_, Host>, max: u64| -> HostResult<u64> {
        syscall(&mut c, cost::DEFAULT)?;
        require(&c, "msg_cycles_accept", c.data().message.kind.receives_cycles())?;
        let m = &mut c.data_mut().message;
        let take = (max as u128).min(m.cycles_available);
        m.cycles_available -= take;
        m.cycles_accepted += take;
        c.data_mut().cycles += take;
        Ok(take as u64)
    })?;
    l.func_wrap("ic0", "canister_cycle_balance", |mut c: Caller<'_, Host>| -> HostResult<u64> {
        syscall(&mut c, cost::DEFAULT)?;
        fit_64("ic0.canister_cycle_balance", c.data().cycles)
    })?;
    l.func_wrap("ic0", "call_cycles_add", |mut c: Caller<'_, Host>, amount: u64| {
        syscall(&mut c, cost::DEFAULT)?;
        add_cycles_to_call(&mut c, "call_cycles_add", amount as u128)
    })?;
    // Only the cycles minting canister mints cycles.
    l.func_wrap("ic0", "mint_cycles128", |_c: Caller<'_, Host>, _hi: u64, _lo: u64, _dst: u32| -> HostResult<()> {
        trap("ic0.mint_cycles128 cannot be executed on non Cycles Minting Canister")
    })?;
    l.func_wrap("ic0", "msg_deadline", |mut c: Caller<'_, Host>| -> HostResult<u64> {
        syscall(&mut c, cost::DEFAULT)?;
        Ok(0)
    })?;

    // --- this canister ---
    l.func_wrap("ic0", "canister_self_size", |mut c: Caller<'_, Host>| -> HostResult<u32> {
        syscall(&mut c, cost::DEFAULT)?;
        Ok(c.data().canister_id.as_slice().len() as u32)
    })?;
    l.func_wrap("ic0", "canister_self_copy", |mut c: Caller<'_, Host>, dst: u32, off: u32, size: u32| {
        let id = c.data().canister_id;
        copy_out(&mut c, "ic0.canister_self_copy", dst, off, size, id.as_slice())
    })?;
    l.func_wrap("ic0", "canister_status", |mut c: Caller<'_, Host>| -> HostResult<u32> {
        syscall(&mut c, cost::DEFAULT)?;
        Ok(c.data().status)
    })?;
    l.func_wrap("ic0", "canister_version", |mut c: Caller<'_, Host>| -> HostResult<u64> {
        syscall(&mut c, cost::DEFAULT)?;
        Ok(0)
    })?;
    l.func_wrap("ic0", "is_controller", |mut c: Caller<'_, Host>, src: u32, size: u32| -> HostResult<u32> {
        syscall(&mut c, cost::IS_CONTROLLER + size as u64)?;
        let bytes = read(&mut c, "ic0.is_controller", src as u64, size as u64)?;
        let Ok(p) = Principal::try_from_slice(&bytes) else {
            return trap("ic0.is_controller: invalid principal");
        };
        Ok(c.data().controllers.contains(&p) as u32)
    })?;
    l.func_wrap("ic0", "in_replicated_execution", |mut c: Caller<'_, Host>| -> HostResult<u32> {
        syscall(&mut c, cost::DEFAULT)?;
        Ok(!matches!(c.data().message.kind, MessageKind::Query | MessageKind::InspectMessage) as u32)
    })?;
    l.func_wrap("ic0", "subnet_self_size", |mut c: Caller<'_, Host>| -> HostResult<u32> {
        syscall(&mut c, cost::DEFAULT)?;
        Ok(crate::subnet_id().as_slice().len() as u32)
    })?;
    l.func_wrap("ic0", "subnet_self_copy", |mut c: Caller<'_, Host>, dst: u32, off: u32, size: u32| {
        copy_out(&mut c, "ic0.subnet_self_copy", dst, off, size, crate::subnet_id().as_slice())
    })?;
    l.func_wrap("ic0", "cycles_burn128", |mut c: Caller<'_, Host>, hi: u64, lo: u64, dst: u32| {
        require(&c, "cycles_burn128", c.data().message.kind.persists())?;
        let wanted = ((hi as u128) << 64) | lo as u128;
        let liquid = c.data().cycles.saturating_sub(c.data().message.freezing_threshold);
        let burned = wanted.min(liquid);
        c.data_mut().cycles -= burned;
        write_u128(&mut c, "ic0.cycles_burn128", dst, burned)
    })?;

    // --- environment variables (canister settings; none unless a controller sets them) ---
    l.func_wrap("ic0", "env_var_count", |mut c: Caller<'_, Host>| -> HostResult<u32> {
        syscall(&mut c, cost::DEFAULT)?;
        Ok(c.data().env_vars.len() as u32)
    })?;
    l.func_wrap("ic0", "env_var_name_size", |mut c: Caller<'_, Host>, index: u32| -> HostResult<u32> {
        syscall(&mut c, cost::DEFAULT)?;
        Ok(env_var_name(&c, "ic0.env_var_name_size", index)?.len() as u32)
    })?;
    l.func_wrap("ic0", "env_var_name_copy", |mut c: Caller<'_, Host>, index: u32, dst: u32, off: u32, size: u32| {
        let name = env_var_name(&c, "ic0.env_var_name_copy", index)?;
        copy_out(&mut c, "ic0.env_var_name_copy", dst, off, size, name.as_bytes())
    })?;
    l.func_wrap("ic0", "env_var_name_exists", |mut c: Caller<'_, Host>, src: u32, size: u32| -> HostResult<u32> {
        syscall(&mut c, cost::DEFAULT + size as u64)?;
        let name = read(&mut c, "ic0.env_var_name_exists", src as u64, size as u64)?;
        Ok(c.data().env_vars.contains_key(&String::from_utf8_lossy(&name).into_owned()) as u32)
    })?;
    l.func_wrap("ic0", "env_var_value_size", |mut c: Caller<'_, Host>, src: u32, size: u32| -> HostResult<u32> {
        syscall(&mut c, cost::DEFAULT + size as u64)?;
        Ok(env_var_value(&mut c, "ic0.env_var_value_size", src, size)?.len() as u32)
    })?;
    #[allow(clippy::too_many_arguments)]
    l.func_wrap(
        "ic0",
        "env_var_value_copy",
        |mut c: Caller<'_, Host>, src: u32, size: u32, dst: u32, off: u32, len: u32| {
            charge(&mut c, size as u64)?;
            let value = env_var_value(&mut c, "ic0.env_var_value_copy", src, size)?;
            copy_out(&mut c, "ic0.env_var_value_copy", dst, off, len, value.as_bytes())
        },
    )?;
    l.func_wrap("ic0", "certified_data_set", |mut c: Caller<'_, Host>, src: u32, size: u32| {
        syscall(&mut c, cost::DEFAULT + size as u64)?;
        use MessageKind::*;
        let kind = c.data().message.kind;
        let allowed =
            matches!(kind, Init | PreUpgrade | PostUpgrade | Update | ReplyCallback | RejectCallback | GlobalTimer);
        require(&c, "certified_data_set", allowed)?;
        if size > 32 {
            return trap("ic0.certified_data_set: certified data is at most 32 bytes");
        }
        let bytes = read(&mut c, "ic0.certified_data_set", src as u64, size as u64)?;
        c.data_mut().certified_data = bytes;
        Ok(())
    })?;
    // A non-replicated query has a certificate of the canister's certified data; nothing else
    // does.
    l.func_wrap("ic0", "data_certificate_present", |mut c: Caller<'_, Host>| -> HostResult<u32> {
        syscall(&mut c, cost::DEFAULT)?;
        Ok(c.data().message.certified_state.is_some() as u32)
    })?;
    l.func_wrap("ic0", "data_certificate_size", |mut c: Caller<'_, Host>| -> HostResult<u32> {
        syscall(&mut c, cost::DEFAULT)?;
        require(&c, "data_certificate_size", c.data().message.kind == MessageKind::Query)?;
        Ok(c.data().message.certified_state.as_ref().map_or(0, |s| s.certificate().len() as u32))
    })?;
    l.func_wrap("ic0", "data_certificate_copy", |mut c: Caller<'_, Host>, dst: u32, off: u32, size: u32| {
        require(&c, "data_certificate_copy", c.data().message.kind == MessageKind::Query)?;
        let certificate =
            c.data().message.certified_state.as_ref().map(|s| s.certificate().to_vec()).unwrap_or_default();
        copy_out(&mut c, "ic0.data_certificate_copy", dst, off, size, &certificate)
    })?;
    // The root key, in the modes the IC allows it (not queries, not inspect_message).
    l.func_wrap("ic0", "root_key_size", |mut c: Caller<'_, Host>| -> HostResult<u32> {
        syscall(&mut c, cost::DEFAULT)?;
        require(&c, "root_key_size", root_key_allowed(c.data().message.kind))?;
        Ok(crate::certification::root_key_der().len() as u32)
    })?;
    l.func_wrap("ic0", "root_key_copy", |mut c: Caller<'_, Host>, dst: u32, off: u32, size: u32| {
        require(&c, "root_key_copy", root_key_allowed(c.data().message.kind))?;
        copy_out(&mut c, "ic0.root_key_copy", dst, off, size, crate::certification::root_key_der())
    })?;

    // --- time, timers, counters, logs ---
    l.func_wrap("ic0", "time", |mut c: Caller<'_, Host>| -> HostResult<u64> {
        syscall(&mut c, cost::DEFAULT)?;
        Ok(c.data().time_nanos)
    })?;
    l.func_wrap("ic0", "global_timer_set", |mut c: Caller<'_, Host>, t: u64| -> HostResult<u64> {
        syscall(&mut c, cost::DEFAULT)?;
        Ok(std::mem::replace(&mut c.data_mut().global_timer, t))
    })?;
    l.func_wrap("ic0", "performance_counter", |mut c: Caller<'_, Host>, kind: u32| -> HostResult<u64> {
        syscall(&mut c, cost::PERFORMANCE_COUNTER)?;
        let this_message = used(&c);
        match kind {
            0 => Ok(this_message),
            1 => Ok(c.data().message.call_context_instructions + this_message),
            _ => trap(format!("ic0.performance_counter: unknown counter type {kind}")),
        }
    })?;
    l.func_wrap("ic0", "debug_print", |mut c: Caller<'_, Host>, src: u32, size: u32| {
        syscall(&mut c, cost::DEBUG_PRINT + cost::DEBUG_PRINT_PER_BYTE * size as u64)?;
        let bytes = read(&mut c, "ic0.debug_print", src as u64, size as u64)?;
        let line = String::from_utf8_lossy(&bytes).into_owned();
        if std::env::var_os("IC_REPLICA_LOG").is_some() {
            eprintln!("[{}] {line}", c.data().canister_id);
        }
        c.data_mut().log.push(line);
        Ok(())
    })?;
    l.func_wrap("ic0", "trap", |mut c: Caller<'_, Host>, src: u32, size: u32| -> HostResult<()> {
        let logged = (size as u64).min(cost::LOG_CAPACITY_BYTES);
        syscall(&mut c, cost::DEFAULT + size as u64 + (2 + cost::BYTE_TRANSMISSION) * logged)?;
        let bytes = read(&mut c, "ic0.trap", src as u64, size as u64)?;
        trap(format!("Canister called `ic0.trap` with message: '{}'", String::from_utf8_lossy(&bytes)))
    })?;

    // --- inter-canister calls ---
    #[allow(clippy::too_many_arguments)]
    l.func_wrap(
        "ic0",
        "call_new",
        |mut c: Caller<'_, Host>,
         callee_src: u32,
         callee_size: u32,
         name_src: u32,
         name_size: u32,
         reply_fun: u32,
         reply_env: u32,
         reject_fun: u32,
         reject_env: u32| {
            syscall(&mut c, cost::CALL_NEW + callee_size as u64 + name_size as u64)?;
            require(&c, "call_new", c.data().message.kind.may_call())?;
            let callee = read(&mut c, "ic0.call_new", callee_src as u64, callee_size as u64)?;
            let name = read(&mut c, "ic0.call_new", name_src as u64, name_size as u64)?;
            let Ok(callee) = Principal::try_from_slice(&callee) else {
                return trap("ic0.call_new: invalid callee principal");
            };
            c.data_mut().message.building = Some(OutgoingCall {
                callee,
                method: String::from_utf8_lossy(&name).into_owned(),
                arg: Vec::new(),
                callback: Callback { reply: (reply_fun, reply_env), reject: (reject_fun, reject_env), cleanup: None },
                cycles: 0,
            });
            Ok(())
        },
    )?;
    l.func_wrap("ic0", "call_on_cleanup", |mut c: Caller<'_, Host>, fun: u32, env: u32| {
        syscall(&mut c, cost::DEFAULT)?;
        match c.data_mut().message.building.as_mut() {
            Some(call) => {
                call.callback.cleanup = Some((fun, env));
                Ok(())
            }
            None => trap("ic0.call_on_cleanup: no call is being built"),
        }
    })?;
    l.func_wrap("ic0", "call_data_append", |mut c: Caller<'_, Host>, src: u32, size: u32| {
        syscall(&mut c, cost::DEFAULT + cost::BYTE_TRANSMISSION * size as u64)?;
        let bytes = read(&mut c, "ic0.call_data_append", src as u64, size as u64)?;
        match c.data_mut().message.building.as_mut() {
            // The IC traps as soon as method name and argument outgrow a same-subnet request.
            Some(call) if call.method.len() + call.arg.len() + bytes.len() > limits::MAX_REQUEST_BYTES => {
                trap(format!(
                    "ic0.call_data_append: a request's method name and argument may not exceed {} bytes",
                    limits::MAX_REQUEST_BYTES
                ))
            }
            Some(call) => {
                call.arg.extend_from_slice(&bytes);
                Ok(())
            }
            None => trap("ic0.call_data_append: no call is being built"),
        }
    })?;
    l.func_wrap("ic0", "call_with_best_effort_response", |mut c: Caller<'_, Host>, _timeout: u32| {
        syscall(&mut c, cost::DEFAULT)
    })?;
    l.func_wrap("ic0", "call_cycles_add128", |mut c: Caller<'_, Host>, hi: u64, lo: u64| {
        syscall(&mut c, cost::DEFAULT)?;
        add_cycles_to_call(&mut c, "call_cycles_add128", ((hi as u128) << 64) | lo as u128)
    })?;
    l.func_wrap("ic0", "cost_call", |mut c: Caller<'_, Host>, method_name_size: u64, payload_size: u64, dst: u32| {
        let fee = c.data().message.fees.call_prepayment(method_name_size.saturating_add(payload_size));
        write_u128(&mut c, "ic0.cost_call", dst, fee)
    })?;
    l.func_wrap("ic0", "cost_create_canister", |mut c: Caller<'_, Host>, dst: u32| {
        let fee = c.data().message.fees.canister_creation();
        write_u128(&mut c, "ic0.cost_create_canister", dst, fee)
    })?;
    l.func_wrap(
        "ic0",
        "cost_http_request",
        |mut c: Caller<'_, Host>, request_size: u64, max_response: u64, dst: u32| {
            let fee = c.data().message.fees.http_request(request_size, max_response);
            write_u128(&mut c, "ic0.cost_http_request", dst, fee)
        },
    )?;
    // Threshold keys: the curve or algorithm must exist (1 if not) and the key must be one the
    // subnet holds (2 if not: this replica holds none); the fee is written only on 0.
    let threshold_keys: [(&'static str, KnownCurve); 3] = [
        ("cost_sign_with_ecdsa", |curve| curve == 0),
        ("cost_sign_with_schnorr", |algorithm| algorithm <= 1),
        ("cost_vetkd_derive_key", |curve| curve == 0),
    ];
    for (name, known) in threshold_keys {
        l.func_wrap("ic0", name, move |mut c: Caller<'_, Host>, src: u32, size: u32, curve: u32, _dst: u32| {
            threshold_key_cost(&mut c, name, src, size, known(curve))
        })?;
    }
    l.func_wrap("ic0", "call_perform", |mut c: Caller<'_, Host>| -> HostResult<u32> {
        syscall(&mut c, cost::CALL_PERFORM)?;
        let Some(call) = c.data_mut().message.building.take() else {
            return trap("ic0.call_perform: no call is being built");
        };
        // The call prepays its fees, the largest response and its callback's execution, from
        // the balance above the freezing threshold; short of it, the call is refused with
        // SYS_TRANSIENT and its attached cycles come back.
        let prepayment = c.data().message.fees.call_prepayment((call.method.len() + call.arg.len()) as u64);
        let liquid = c.data().cycles.saturating_sub(c.data().message.freezing_threshold);
        if liquid < prepayment {
            c.data_mut().cycles += call.cycles;
            return Ok(2);
        }
        c.data_mut().cycles -= prepayment;
        c.data_mut().message.performed.push(call);
        Ok(0)
    })?;

    // --- stable memory (64-bit API) ---
    // Wasm-native stable memory replaces `stable64_size` by a bare `memory.size`, which the IC
    // does not meter: it costs its `call` only.
    l.func_wrap("ic0", "stable64_size", |c: Caller<'_, Host>| -> HostResult<u64> { Ok(c.data().stable.pages()) })?;
    l.func_wrap("ic0", "stable64_grow", |mut c: Caller<'_, Host>, pages: u64| -> HostResult<u64> {
        syscall(&mut c, cost::STABLE_GROW)?;
        Ok(stable_grow(&mut c, pages, limits::MAX_STABLE_BYTES / limits::WASM_PAGE))
    })?;
    l.func_wrap("ic0", "stable64_write", |mut c: Caller<'_, Host>, offset: u64, src: u64, size: u64| {
        stable_write(&mut c, "ic0.stable64_write", offset, src, size)
    })?;
    l.func_wrap("ic0", "stable64_read", |mut c: Caller<'_, Host>, dst: u64, offset: u64, size: u64| {
        stable_read(&mut c, "ic0.stable64_read", dst, offset, size)
    })?;

    // --- stable memory (32-bit API: the same memory, addressed up to 4 GiB) ---
    l.func_wrap("ic0", "stable_size", |c: Caller<'_, Host>| -> HostResult<u32> {
        require_32_bit_stable(&c, "ic0.stable_size")?;
        Ok(c.data().stable.pages() as u32)
    })?;
    l.func_wrap("ic0", "stable_grow", |mut c: Caller<'_, Host>, pages: u32| -> HostResult<i32> {
        syscall(&mut c, cost::STABLE_GROW)?;
        require_32_bit_stable(&c, "ic0.stable_grow")?;
        Ok(stable_grow(&mut c, pages as u64, MAX_32_BIT_STABLE_PAGES) as i64 as i32)
    })?;
    l.func_wrap("ic0", "stable_write", |mut c: Caller<'_, Host>, offset: u32, src: u32, size: u32| {
        require_32_bit_stable(&c, "ic0.stable_write")?;
        stable_write(&mut c, "ic0.stable_write", offset as u64, src as u64, size as u64)
    })?;
    l.func_wrap("ic0", "stable_read", |mut c: Caller<'_, Host>, dst: u32, offset: u32, size: u32| {
        require_32_bit_stable(&c, "ic0.stable_read")?;
        stable_read(&mut c, "ic0.stable_read", dst as u64, offset as u64, size as u64)
    })?;
    Ok(())
}

fn fit_64(api: &str, amount: u128) -> HostResult<u64> {
    u64::try_from(amount).or_else(|_| trap(format!("{api}: the amount does not fit in 64 bits")))
}

/// Moves `amount` from the balance (above the freezing threshold only) to the call being built.
fn add_cycles_to_call(c: &mut Caller<'_, Host>, api: &str, amount: u128) -> HostResult<()> {
    require(c, api, c.data().message.kind.may_call())?;
    if c.data().message.building.is_none() {
        return trap(format!("ic0.{api}: no call is being built"));
    }
    if c.data().cycles.saturating_sub(c.data().message.freezing_threshold) < amount {
        return trap(format!(
            "ic0.{api}: the canister cannot attach more cycles than it has above its freezing threshold"
        ));
    }
    c.data_mut().cycles -= amount;
    c.data_mut().message.building.as_mut().expect("checked above").cycles += amount;
    Ok(())
}

fn root_key_allowed(kind: MessageKind) -> bool {
    !matches!(kind, MessageKind::Query | MessageKind::InspectMessage | MessageKind::Start)
}

/// Whether a threshold-key call's curve or algorithm number exists.
type KnownCurve = fn(u32) -> bool;

fn threshold_key_cost(c: &mut Caller<'_, Host>, api: &str, src: u32, size: u32, known_curve: bool) -> HostResult<u32> {
    syscall(c, cost::DEFAULT + size as u64)?;
    read(c, &format!("ic0.{api}"), src as u64, size as u64)?;
    if !known_curve {
        return Ok(1);
    }
    Ok(2)
}

fn env_var_name(c: &Caller<'_, Host>, api: &str, index: u32) -> HostResult<String> {
    match c.data().env_vars.keys().nth(index as usize) {
        Some(name) => Ok(name.clone()),
        None => trap(format!("{api}: environment variable index {index} is out of bounds")),
    }
}

fn env_var_value(c: &mut Caller<'_, Host>, api: &str, src: u32, size: u32) -> HostResult<String> {
    let name = read(c, api, src as u64, size as u64)?;
    let name = String::from_utf8_lossy(&name).into_owned();
    match c.data().env_vars.get(&name) {
        Some(value) => Ok(value.clone()),
        None => trap(format!("{api}: environment variable `{name}` does not exist")),
    }
}

/// 4 GiB of 64 KiB pages: all the 32-bit stable API can address.
const MAX_32_BIT_STABLE_PAGES: u64 = 1 << 16;

fn require_32_bit_stable(c: &Caller<'_, Host>, api: &str) -> HostResult<()> {
    if c.data().stable.pages() > MAX_32_BIT_STABLE_PAGES {
        return trap(format!("{api}: 32 bit stable memory api used on a memory larger than 4GB"));
    }
    Ok(())
}

/// Grows stable memory by `pages` if it stays within `max_pages`; the old size, or -1 (as u64).
fn stable_grow(c: &mut Caller<'_, Host>, pages: u64, max_pages: u64) -> u64 {
    let old = c.data().stable.pages();
    match old.checked_add(pages).filter(|&new| new <= max_pages) {
        Some(new) => {
            c.data_mut().stable.bytes.resize((new * limits::WASM_PAGE) as usize, 0);
            old
        }
        None => u64::MAX,
    }
}

fn stable_write(c: &mut Caller<'_, Host>, api: &str, offset: u64, src: u64, size: u64) -> HostResult<()> {
    syscall(c, cost::STABLE_READ_WRITE + size)?;
    let bytes = read(c, api, src, size)?;
    if offset.checked_add(size).is_none_or(|end| end > c.data().stable.bytes.len() as u64) {
        return trap(format!("{api}: stable memory out of bounds"));
    }
    let (_, dirtied) = c.data_mut().stable.touch(offset, size, true);
    charge(c, cost::STABLE_DIRTY_PAGE * dirtied)?;
    check_stable_pages(c)?;
    c.data_mut().stable.bytes[offset as usize..(offset + size) as usize].copy_from_slice(&bytes);
    Ok(())
}

fn stable_read(c: &mut Caller<'_, Host>, api: &str, dst: u64, offset: u64, size: u64) -> HostResult<()> {
    syscall(c, cost::STABLE_READ_WRITE + size)?;
    if offset.checked_add(size).is_none_or(|end| end > c.data().stable.bytes.len() as u64) {
        return trap(format!("{api}: stable memory out of bounds"));
    }
    c.data_mut().stable.touch(offset, size, false);
    check_stable_pages(c)?;
    let bytes = c.data().stable.bytes[offset as usize..(offset + size) as usize].to_vec();
    write(c, api, dst, &bytes)
}

fn check_stable_pages(c: &Caller<'_, Host>) -> HostResult<()> {
    if c.data().stable.accessed_pages() > c.data().message.kind.stable_page_limit() {
        return trap(
            "Exceeded the limit for the number of accessed pages in the stable memory in a single message execution",
        );
    }
    Ok(())
}
