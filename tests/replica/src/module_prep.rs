//! Rewrites a validated canister module the way the IC's instrumentation does, in the parts
//! the replica needs to reach from outside: every mutable global is exported (so a trap can
//! restore them, as the IC persists them), memory 0 and table 0 get known export names (for
//! the system API and for response callbacks, which are table indices), and a `start` function
//! becomes the export `canister_start`, run once at install instead of at every instantiation.
//! Everything else is copied byte for byte.

use wasm_encoder::{ExportKind, ExportSection, Module, RawSection};
use wasmparser::{Parser, Payload};

pub const MEMORY_EXPORT: &str = "__replica_memory";
pub const TABLE_EXPORT: &str = "__replica_table";
pub const GLOBAL_EXPORT_PREFIX: &str = "__replica_global_";
pub const START_EXPORT: &str = "canister_start";

/// Section ids that must come after the export section.
const AFTER_EXPORT: &[u8] = &[8, 9, 10, 11, 12];

pub fn prepare(wasm: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut mutable_globals = Vec::new();
    let (mut has_memory, mut has_table, mut start) = (false, false, None);
    let mut existing_exports: Vec<(String, ExportKind, u32)> = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::GlobalSection(s) => {
                for (i, g) in s.into_iter().enumerate() {
                    if g?.ty.mutable {
                        mutable_globals.push(i as u32);
                    }
                }
            }
            Payload::MemorySection(s) => has_memory |= s.count() > 0,
            Payload::TableSection(s) => has_table |= s.count() > 0,
            Payload::StartSection { func, .. } => start = Some(func),
            Payload::ExportSection(s) => {
                for e in s {
                    let e = e?;
                    existing_exports.push((e.name.to_string(), e.kind.into(), e.index));
                }
            }
            _ => {}
        }
    }

    let mut exports = ExportSection::new();
    for (name, kind, index) in &existing_exports {
        exports.export(name, *kind, *index);
    }
    for g in &mutable_globals {
        exports.export(&format!("{GLOBAL_EXPORT_PREFIX}{g}"), ExportKind::Global, *g);
    }
    if has_memory {
        exports.export(MEMORY_EXPORT, ExportKind::Memory, 0);
    }
    if has_table {
        exports.export(TABLE_EXPORT, ExportKind::Table, 0);
    }
    if let Some(f) = start {
        exports.export(START_EXPORT, ExportKind::Func, f);
    }

    let mut out = Module::new();
    let mut exports_written = false;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload?;
        let Some((id, range)) = payload.as_section() else { continue };
        if id == 7 || id == 8 {
            continue; // export section rebuilt; start section turned into an export
        }
        if !exports_written && AFTER_EXPORT.contains(&id) {
            out.section(&exports);
            exports_written = true;
        }
        out.section(&RawSection { id, data: &wasm[range] });
    }
    if !exports_written {
        out.section(&exports);
    }
    Ok(out.finish())
}
