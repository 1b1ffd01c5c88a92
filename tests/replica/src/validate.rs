//! Install-time checks of a canister module, as the IC's validation does
//! (interface spec "WebAssembly module requirements"; `rs/embedders/src/wasm_utils/validation.rs`).

use std::collections::BTreeSet;
use wasmparser::{ExternalKind, Operator, Parser, Payload, TypeRef, Validator, WasmFeatures};

use crate::limits;

/// Why the IC would refuse to install a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidModule(pub String);

impl std::fmt::Display for InvalidModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Wasm module is invalid: {}", self.0)
    }
}
impl std::error::Error for InvalidModule {}

fn invalid(msg: impl Into<String>) -> InvalidModule {
    InvalidModule(msg.into())
}

/// The proposals the IC enables for canister modules: fixed-width SIMD, bulk memory, reference
/// types (funcref tables), memory64; never relaxed SIMD, threads, multi-memory, tail calls,
/// exceptions, GC or the component model.
pub fn ic_features() -> WasmFeatures {
    WasmFeatures::MUTABLE_GLOBAL
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::MULTI_VALUE
        | WasmFeatures::BULK_MEMORY
        | WasmFeatures::REFERENCE_TYPES
        | WasmFeatures::SIMD
        | WasmFeatures::MEMORY64
        | WasmFeatures::FLOATS
}

/// Unpacks a gzip-compressed module (magic `1f 8b 08`), as `install_code` accepts.
pub fn decompress(module: &[u8]) -> Result<Vec<u8>, InvalidModule> {
    if module.starts_with(&[0x1f, 0x8b, 0x08]) {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(module)
            .take(limits::WASM_MAX_SIZE as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| invalid(format!("gzip: {e}")))?;
        Ok(out)
    } else {
        Ok(module.to_vec())
    }
}

const ALLOWED_SYSTEM_EXPORTS: &[&str] = &[
    "canister_init",
    "canister_pre_upgrade",
    "canister_post_upgrade",
    "canister_inspect_message",
    "canister_heartbeat",
    "canister_global_timer",
    "canister_on_low_wasm_memory",
];

/// Checks `wasm` (already decompressed) against the IC's rules. `system_api` lists the `ic0`
/// functions the replica provides; importing anything else is refused, as on the IC.
pub fn validate(wasm: &[u8], system_api: &BTreeSet<String>) -> Result<(), InvalidModule> {
    if wasm.len() > limits::WASM_MAX_SIZE {
        return Err(invalid(format!("module is {} bytes, more than {}", wasm.len(), limits::WASM_MAX_SIZE)));
    }
    Validator::new_with_features(ic_features())
        .validate_all(wasm)
        .map_err(|e| invalid(format!("{e} (the IC enables simd128 but not relaxed-simd, threads or multi-memory)")))?;

    let (mut functions, mut globals, mut memories) = (0usize, 0usize, 0usize);
    let mut methods = BTreeSet::new();
    let (mut method_name_bytes, mut icp_sections, mut icp_bytes) = (0usize, 0usize, 0usize);
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| invalid(e.to_string()))? {
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    let import = import.map_err(|e| invalid(e.to_string()))?;
                    if import.module != "ic0" {
                        return Err(invalid(format!(
                            "module imports `{}.{}`: only functions of `ic0` may be imported",
                            import.module, import.name
                        )));
                    }
                    match import.ty {
                        TypeRef::Func(_) => functions += 1,
                        _ => return Err(invalid(format!("`ic0.{}` is not a function", import.name))),
                    }
                    if !system_api.contains(import.name) {
                        return Err(invalid(format!(
                            "module imports function `{}` from `ic0` that is not exported by the runtime",
                            import.name
                        )));
                    }
                }
            }
            Payload::FunctionSection(s) => functions += s.count() as usize,
            Payload::GlobalSection(s) => globals += s.count() as usize,
            Payload::MemorySection(s) => memories += s.count() as usize,
            Payload::CodeSectionStart { size, .. } if size as usize > limits::MAX_CODE_SECTION_BYTES => {
                return Err(invalid(format!(
                    "code section is {size} bytes, more than {}",
                    limits::MAX_CODE_SECTION_BYTES
                )));
            }
            Payload::CodeSectionEntry(body) => {
                let mut count = 0usize;
                let mut ops = body.get_operators_reader().map_err(|e| invalid(e.to_string()))?;
                while !ops.eof() {
                    let op = ops.read().map_err(|e| invalid(e.to_string()))?;
                    count += 1;
                    if matches!(
                        op,
                        Operator::TableGrow { .. }
                            | Operator::TableSet { .. }
                            | Operator::TableFill { .. }
                            | Operator::TableCopy { .. }
                            | Operator::TableInit { .. }
                    ) {
                        return Err(invalid(format!("{op:?} is not allowed in canister code")));
                    }
                }
                if count > limits::MAX_INSTRUCTIONS_PER_FUNCTION {
                    return Err(invalid(format!("a function has {count} instructions, more than 1,000,000")));
                }
            }
            Payload::ExportSection(exports) => {
                for export in exports {
                    let export = export.map_err(|e| invalid(e.to_string()))?;
                    let name = export.name;
                    let method = ["canister_update ", "canister_query ", "canister_composite_query "]
                        .iter()
                        .find_map(|p| name.strip_prefix(p));
                    if let Some(method) = method {
                        if export.kind != ExternalKind::Func {
                            return Err(invalid(format!("export `{name}` is not a function")));
                        }
                        if !methods.insert(method.to_string()) {
                            return Err(invalid(format!("method `{method}` is exported twice")));
                        }
                        method_name_bytes += method.len();
                    } else if name.starts_with("canister_") && !ALLOWED_SYSTEM_EXPORTS.contains(&name) {
                        return Err(invalid(format!("export `{name}` uses the reserved prefix `canister_`")));
                    }
                }
            }
            Payload::CustomSection(c) if c.name().starts_with("icp:") => {
                icp_sections += 1;
                icp_bytes += c.data().len();
            }
            _ => {}
        }
    }
    if memories > 1 {
        return Err(invalid(format!("{memories} memories declared: at most one is allowed")));
    }
    if functions > limits::MAX_FUNCTIONS {
        return Err(invalid(format!("{functions} functions, more than {}", limits::MAX_FUNCTIONS)));
    }
    if globals > limits::MAX_GLOBALS {
        return Err(invalid(format!("{globals} globals, more than {}", limits::MAX_GLOBALS)));
    }
    if methods.len() > limits::MAX_EXPORTED_METHODS || method_name_bytes > limits::MAX_METHOD_NAME_BYTES {
        return Err(invalid("too many exported methods or method-name bytes"));
    }
    if icp_sections > 16 || icp_bytes > 1 << 20 {
        return Err(invalid("more than 16 `icp:` custom sections or more than 1 MiB in them"));
    }
    Ok(())
}
