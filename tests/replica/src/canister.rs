//! One installed canister: its compiled module, its live instance, and message execution with
//! the IC's all-or-nothing semantics (a trap restores heap, globals and stable memory).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Global, Instance, Linker, Module, Ref, Store, Trap, Val};

use crate::host::{Host, MessageContext};
use crate::module_prep::{self, GLOBAL_EXPORT_PREFIX, MEMORY_EXPORT, TABLE_EXPORT};
use crate::system_api::{instruction_limit_message, CanisterTrap};

/// What a message runs: an exported function, or a closure from the table (callbacks).
#[derive(Clone, Debug)]
pub enum Entry {
    Export(String),
    Table { fun: u32, env: u32 },
}

/// How a message ended.
#[derive(Debug)]
pub struct Execution {
    pub trap: Option<String>,
    pub instructions: u64,
    pub message: MessageContext,
}

/// Compiles modules once per wasm hash, in memory and on disk, so a test suite does not
/// recompile a 10 MiB canister per test.
pub struct ModuleCache {
    engine: Engine,
    dir: Option<PathBuf>,
    compiled: Mutex<std::collections::HashMap<[u8; 32], Module>>,
    /// How many modules this cache compiled itself (not loaded from memory or a file).
    compilations: AtomicUsize,
}

impl ModuleCache {
    pub fn new(engine: Engine) -> Self {
        let dir = std::env::var_os("IC_REPLICA_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ic-replica-cache")));
        ModuleCache::in_dir(engine, dir)
    }

    /// A cache whose compiled files live in `dir` (none: memory only).
    pub fn in_dir(engine: Engine, dir: Option<PathBuf>) -> Self {
        ModuleCache { engine, dir, compiled: Mutex::new(Default::default()), compilations: AtomicUsize::new(0) }
    }

    /// How many modules this cache has compiled itself, rather than found in memory or on disk.
    pub fn compilations(&self) -> usize {
        self.compilations.load(Ordering::Relaxed)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Returns the compiled form of a validated, prepared module.
    pub fn compile(&self, prepared: &[u8]) -> wasmtime::Result<Module> {
        let hash: [u8; 32] = Sha256::digest(prepared).into();
        if let Some(m) = self.compiled.lock().unwrap().get(&hash) {
            return Ok(m.clone());
        }
        let file = self
            .dir
            .as_ref()
            .map(|d| d.join(format!("{}-{:016x}.cwasm", hex::encode(hash), engine_fingerprint(&self.engine))));
        // Test processes that start together with a cold cache would each compile the same module
        // (tens of CPU-seconds for the inference canister): the first compiles it under an
        // exclusive lock, and the others wait for it and load its file. The OS releases the lock of
        // a process that dies.
        let _lock = file.as_ref().and_then(|f| {
            std::fs::create_dir_all(f.parent()?).ok()?;
            let lock = std::fs::File::create(f.with_extension("lock")).ok()?;
            lock.lock().ok()?;
            Some(lock)
        });
        let module = match file.as_ref().filter(|f| f.exists()) {
            // SAFETY: the file was written by `Module::serialize` of this same wasmtime version
            // (its name carries the version) from a module whose hash it carries.
            Some(f) => match unsafe { Module::deserialize_file(&self.engine, f) } {
                Ok(m) => m,
                Err(_) => Module::new(&self.engine, prepared)?,
            },
            None => {
                let m = Module::new(&self.engine, prepared)?;
                self.compilations.fetch_add(1, Ordering::Relaxed);
                if let (Some(f), Ok(bytes)) = (file, m.serialize()) {
                    let _ = std::fs::create_dir_all(f.parent().unwrap());
                    let tmp = f.with_extension("tmp");
                    if std::fs::write(&tmp, bytes).is_ok() {
                        let _ = std::fs::rename(tmp, f);
                    }
                }
                m
            }
        };
        self.compiled.lock().unwrap().insert(hash, module.clone());
        Ok(module)
    }
}

/// Identifies the engine's version and settings, so a cached compilation is never loaded into
/// an engine that did not produce it.
fn engine_fingerprint(engine: &Engine) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish()
}

/// The process-wide engine configured with the IC's rules and cost table.
pub fn shared_cache() -> Arc<ModuleCache> {
    static CACHE: OnceLock<Arc<ModuleCache>> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            let mut config = wasmtime::Config::new();
            config
                .consume_fuel(true)
                .operator_cost(crate::costs::operator_cost())
                .cranelift_nan_canonicalization(true)
                .wasm_simd(true)
                .wasm_relaxed_simd(false)
                .wasm_multi_memory(false)
                .wasm_bulk_memory(true)
                .wasm_memory64(true)
                .wasm_tail_call(false)
                .cranelift_opt_level(wasmtime::OptLevel::Speed);
            Arc::new(ModuleCache::new(Engine::new(&config).expect("wasmtime engine")))
        })
        .clone()
}

/// A live instance of an installed module.
pub struct Instantiated {
    pub module: Module,
    pub wasm_hash: [u8; 32],
    /// Size of the installed module, which counts in the canister's memory usage.
    pub module_bytes: u64,
    /// The module's `icp:public` / `icp:private` custom sections, served under
    /// `/canister/<id>/metadata/<name>` of the state tree.
    pub metadata: std::collections::BTreeMap<String, Metadata>,
    store: Store<Host>,
    instance: Instance,
    globals: Vec<Global>,
    /// The last message's heap snapshot, kept for the next one: copying into pages already
    /// mapped costs a fraction of allocating a fresh copy of a model-sized heap per message, whose
    /// page faults were most of a split run's time (`perf` on the `variants` test).
    spare_heap: Vec<u8>,
}

struct Snapshot {
    heap: Vec<u8>,
    globals: Vec<Val>,
}

impl Instantiated {
    pub fn new(linker: &Linker<Host>, module: Module, wasm_hash: [u8; 32], host: Host) -> wasmtime::Result<Self> {
        let mut store = Store::new(linker.engine(), host);
        store.limiter(|h| h as &mut dyn wasmtime::ResourceLimiter);
        store.set_fuel(u64::MAX / 4)?;
        let instance = linker.instantiate(&mut store, &module)?;
        let memory = instance.get_memory(&mut store, MEMORY_EXPORT);
        store.data_mut().memory = memory;
        let globals = module
            .exports()
            .filter(|e| e.name().starts_with(GLOBAL_EXPORT_PREFIX))
            .map(|e| e.name().to_string())
            .collect::<Vec<_>>()
            .into_iter()
            .filter_map(|name| instance.get_global(&mut store, &name))
            .collect();
        Ok(Instantiated {
            module,
            wasm_hash,
            module_bytes: 0,
            metadata: Default::default(),
            store,
            instance,
            globals,
            spare_heap: Vec::new(),
        })
    }

    pub fn host(&self) -> &Host {
        self.store.data()
    }
    pub fn host_mut(&mut self) -> &mut Host {
        self.store.data_mut()
    }
    /// Gives back the canister-level state, dropping the instance (for upgrades).
    pub fn into_host(self) -> Host {
        self.store.into_data()
    }

    pub fn has_export(&self, name: &str) -> bool {
        self.module.get_export(name).is_some()
    }

    pub fn heap_bytes(&self) -> u64 {
        self.store.data().memory.map_or(0, |m| m.data_size(&self.store) as u64)
    }

    fn snapshot(&mut self) -> Snapshot {
        let mut heap = std::mem::take(&mut self.spare_heap);
        heap.clear();
        if let Some(m) = self.store.data().memory {
            heap.extend_from_slice(m.data(&self.store));
        }
        let globals = self.globals.iter().map(|g| g.get(&mut self.store)).collect();
        Snapshot { heap, globals }
    }

    fn restore(&mut self, linker: &Linker<Host>, snap: &Snapshot) -> wasmtime::Result<()> {
        let grown = self.heap_bytes() != snap.heap.len() as u64;
        if grown {
            // Wasm memory cannot shrink: start a fresh instance and put the old heap back.
            let host = std::mem::replace(self.store.data_mut(), Host::new(candid::Principal::anonymous(), vec![], 0));
            let mut fresh = Instantiated::new(linker, self.module.clone(), self.wasm_hash, host)?;
            fresh.module_bytes = self.module_bytes;
            fresh.metadata = std::mem::take(&mut self.metadata);
            fresh.store.data_mut().running = false;
            let memory = fresh.store.data().memory.expect("memory");
            let pages = snap.heap.len() as u64 / crate::limits::WASM_PAGE;
            let current = memory.size(&fresh.store);
            if pages > current {
                memory.grow(&mut fresh.store, pages - current)?;
            }
            *self = fresh;
        }
        if let Some(memory) = self.store.data().memory {
            memory.data_mut(&mut self.store)[..snap.heap.len()].copy_from_slice(&snap.heap);
        }
        for (g, v) in self.globals.clone().iter().zip(&snap.globals) {
            g.set(&mut self.store, *v)?;
        }
        Ok(())
    }

    /// Runs one message. Its effects persist only if it returns normally and its kind persists.
    pub fn execute(&mut self, linker: &Linker<Host>, entry: &Entry, message: MessageContext) -> Execution {
        let limit = message.limit;
        let persists = message.kind.persists();
        let snapshot = self.snapshot();
        // Cycles, certified data and the timer a trapped message changed are put back, like its
        // memory.
        let host = self.store.data();
        let (cycles_before, certified_before, timer_before) =
            (host.cycles, host.certified_data.clone(), host.global_timer);
        {
            let host = self.store.data_mut();
            host.message = message;
            host.stable.begin_message();
            host.running = true;
        }
        // Entering the message's function costs 1 on the IC as on wasmtime (FUNCTION_ENTRY_COST).
        self.store.set_fuel(limit).expect("fuel enabled");
        let result = self.call(entry);
        let remaining = self.store.get_fuel().unwrap_or(0);
        let host = self.store.data_mut();
        host.running = false;
        let extra = std::mem::take(&mut host.message.pending_charge);
        host.message.extra_charged += extra;
        let instructions = (limit.saturating_sub(remaining) + extra).min(limit);
        let trap = result.err().map(|e| describe_trap(e, limit));
        let message = std::mem::replace(
            &mut self.store.data_mut().message,
            MessageContext::new(crate::host::MessageKind::Query, candid::Principal::anonymous(), "", vec![], 0),
        );
        if trap.is_none() && persists {
            self.store.data_mut().stable.commit();
        } else {
            self.store.data_mut().stable.rollback();
            let host = self.store.data_mut();
            host.cycles = cycles_before;
            host.certified_data = certified_before;
            host.global_timer = timer_before;
            self.restore(linker, &snapshot).expect("restoring the canister after a trap");
        }
        self.spare_heap = snapshot.heap;
        Execution { trap, instructions, message }
    }

    fn call(&mut self, entry: &Entry) -> wasmtime::Result<()> {
        match entry {
            Entry::Export(name) => {
                let f = self.instance.get_typed_func::<(), ()>(&mut self.store, name).map_err(|_| {
                    wasmtime::Error::new(CanisterTrap(format!("Canister has no exported function `{name}`")))
                })?;
                f.call(&mut self.store, ())
            }
            Entry::Table { fun, env } => {
                let table = self.instance.get_table(&mut self.store, TABLE_EXPORT).ok_or_else(|| {
                    wasmtime::Error::new(CanisterTrap("callback into a module without a table".into()))
                })?;
                let Some(Ref::Func(Some(f))) = table.get(&mut self.store, *fun as u64) else {
                    return Err(wasmtime::Error::new(CanisterTrap(format!("callback {fun} is not a function"))));
                };
                let f = f.typed::<u32, ()>(&self.store)?;
                f.call(&mut self.store, *env)
            }
        }
    }
}

fn describe_trap(error: wasmtime::Error, limit: u64) -> String {
    if let Some(t) = error.downcast_ref::<CanisterTrap>() {
        return t.0.clone();
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => instruction_limit_message(limit),
        Some(t) => format!("Canister trapped: {t}"),
        None => format!("Canister trapped: {error:#}"),
    }
}

/// A module ready to install.
pub struct LoadedModule {
    pub module: Module,
    /// sha256 of the (decompressed) module, as `canister_status` reports it.
    pub hash: [u8; 32],
    /// Instructions the IC charges the install for compiling it.
    pub compilation_instructions: u64,
    /// Its (decompressed) size, which the canister pays storage for.
    pub wasm_bytes: u64,
    /// Its `icp:` custom sections by name (without the scope).
    pub metadata: std::collections::BTreeMap<String, Metadata>,
}

/// A module's `icp:public <name>` or `icp:private <name>` custom section: public ones anyone may
/// read from the state tree, private ones only the canister's controllers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub public: bool,
    pub bytes: Vec<u8>,
}

/// The module's `icp:` custom sections (validation has already checked their names).
fn metadata_sections(wasm: &[u8]) -> std::collections::BTreeMap<String, Metadata> {
    let mut sections = std::collections::BTreeMap::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm).flatten() {
        if let wasmparser::Payload::CustomSection(c) = payload {
            let (public, name) = match (c.name().strip_prefix("icp:public "), c.name().strip_prefix("icp:private ")) {
                (Some(name), _) => (true, name),
                (_, Some(name)) => (false, name),
                _ => continue,
            };
            sections.insert(name.to_string(), Metadata { public, bytes: c.data().to_vec() });
        }
    }
    sections
}

/// The compilation cost of a module, counted once per hash (a test suite installs the same
/// 7 MiB canister many times).
fn compilation_cost(hash: [u8; 32], wasm: &[u8]) -> Result<u64, String> {
    static COSTS: OnceLock<Mutex<std::collections::HashMap<[u8; 32], u64>>> = OnceLock::new();
    let costs = COSTS.get_or_init(Default::default);
    if let Some(&cost) = costs.lock().unwrap().get(&hash) {
        return Ok(cost);
    }
    let cost = crate::compilation::compilation_cost(wasm).map_err(|e| e.to_string())?;
    costs.lock().unwrap().insert(hash, cost);
    Ok(cost)
}

/// Validates, prepares and compiles a module for installation.
pub fn load_module(cache: &ModuleCache, wasm: &[u8]) -> Result<LoadedModule, String> {
    static SYSTEM_API: OnceLock<std::collections::BTreeMap<String, crate::validate::Signature>> = OnceLock::new();
    let wasm = crate::validate::decompress(wasm).map_err(|e| e.to_string())?;
    crate::validate::validate(&wasm, SYSTEM_API.get_or_init(crate::system_api::signatures))
        .map_err(|e| e.to_string())?;
    let hash: [u8; 32] = Sha256::digest(&wasm).into();
    let compilation_instructions = compilation_cost(hash, &wasm)?;
    let prepared = module_prep::prepare(&wasm).map_err(|e| format!("{e:#}"))?;
    let module = cache.compile(&prepared).map_err(|e| format!("{e:?}"))?;
    Ok(LoadedModule {
        module,
        hash,
        compilation_instructions,
        wasm_bytes: wasm.len() as u64,
        metadata: metadata_sections(&wasm),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module that takes wasmtime some milliseconds to compile (many functions), so that
    /// caches starting together overlap while one of them compiles.
    fn slow_module() -> Vec<u8> {
        let mut text = String::from("(module");
        for f in 0..400 {
            text.push_str(&format!("(func (export \"f{f}\") (param i32) (result i32)"));
            text.push_str(&" local.get 0 i32.const 7 i32.mul i32.const 3 i32.add local.set 0".repeat(20));
            text.push_str(" local.get 0)");
        }
        text.push(')');
        wat::parse_str(text).unwrap()
    }

    /// Test processes that start together with a cold cache (`scripts/test.sh` runs them in
    /// parallel) share one compilation of each module: the first takes the file's lock and
    /// compiles, the others wait and load its file. Each cache here is what one process has.
    #[test]
    fn caches_starting_together_compile_a_module_once() {
        let dir = std::env::temp_dir().join(format!("ic-replica-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (engine, wasm) = (Engine::default(), slow_module());
        let caches: Vec<ModuleCache> = (0..4).map(|_| ModuleCache::in_dir(engine.clone(), Some(dir.clone()))).collect();
        let start = std::sync::Barrier::new(caches.len());
        std::thread::scope(|scope| {
            for cache in &caches {
                let (start, wasm) = (&start, &wasm);
                scope.spawn(move || {
                    start.wait();
                    let module = cache.compile(wasm).unwrap();
                    assert_eq!(module.exports().count(), 400);
                });
            }
        });
        let compiled: Vec<usize> = caches.iter().map(ModuleCache::compilations).collect();
        assert_eq!(compiled.iter().sum::<usize>(), 1, "compilations per cache: {compiled:?}");
        // In memory now: no cache compiles it again.
        for cache in &caches {
            cache.compile(&wasm).unwrap();
        }
        assert_eq!(caches.iter().map(ModuleCache::compilations).sum::<usize>(), 1);
        // A cache without a directory compiles for itself.
        let alone = ModuleCache::in_dir(engine, None);
        alone.compile(&wasm).unwrap();
        assert_eq!(alone.compilations(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
