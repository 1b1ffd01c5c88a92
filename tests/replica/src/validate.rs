//! Install-time checks of a canister module, as the IC's validation does
//! (interface spec "WebAssembly module requirements"; `rs/embedders/src/wasm_utils/validation.rs`,
//! limits from `rs/config/src/embedders.rs`). Messages follow the IC's wording.

use std::collections::{BTreeMap, BTreeSet};
use wasmparser::{
    CompositeInnerType, ExternalKind, FuncType, Operator, Parser, Payload, TypeRef, ValType, Validator, WasmFeatures,
};

use crate::limits;

/// Why the IC would refuse to install a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidModule(pub String);

impl std::fmt::Display for InvalidModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Canister's Wasm module is not valid: {}", self.0)
    }
}
impl std::error::Error for InvalidModule {}

fn invalid(msg: impl Into<String>) -> InvalidModule {
    InvalidModule(msg.into())
}

/// A function type as parameter and result types.
pub type Signature = (Vec<ValType>, Vec<ValType>);

/// The proposals the IC enables for canister modules: fixed-width SIMD, bulk memory, reference
/// types (funcref tables), memory64; never relaxed SIMD, threads, multi-memory, exceptions, GC
/// or the component model. (The IC's newest validation also accepts tail calls; this replica
/// does not, as their rollout on mainnet is unconfirmed.)
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

/// Names the IC's instrumentation exports itself.
const RESERVED_EXPORTS: &[&str] = &[
    "canister counter_instructions",
    "canister_start",
    "canister counter_dirty_pages",
    "canister counter_accessed_pages",
    "stable_memory",
    "stable_memory_bytemap",
    "canister stable_memory_size",
];

/// The IC's limit on one function's complexity, a weighted count of its operators.
pub const FUNCTION_COMPLEXITY_LIMIT: u64 = 1_000_000;
/// `icp:` custom sections: how many, and their names and contents together.
pub const MAX_CUSTOM_SECTIONS: usize = 16;
pub const MAX_CUSTOM_SECTIONS_BYTES: usize = 1 << 20;

/// One operator's weight in a function's complexity (`wasm_function_complexity` in the IC's
/// validation): control flow, calls and `memory.grow` weigh 50, most operators 1.
pub fn complexity(op: &Operator) -> u64 {
    use Operator::*;
    match op {
        Block { .. }
        | Loop { .. }
        | If { .. }
        | Br { .. }
        | BrIf { .. }
        | BrTable { .. }
        | Call { .. }
        | CallIndirect { .. }
        | MemoryGrow { .. } => 50,
        TableGet { .. } => 14,
        RefFunc { .. } => 8,
        RefIsNull => 6,
        I32TruncF32S | I32TruncF32U | I32TruncF64S | I32TruncF64U | I64TruncF32S | I64TruncF32U | I64TruncF64S
        | I64TruncF64U | I64ExtendI32S | I64ExtendI32U | F32ConvertI32S | F32ConvertI32U | F32ConvertI64S
        | F32ConvertI64U | F64ConvertI32S | F64ConvertI32U | F64ConvertI64S | F64ConvertI64U | F32DemoteF64 => 5,
        F32Neg | F32Abs | F64Neg | F64Abs | MemoryCopy { .. } => 4,
        F32Copysign
        | F64Copysign
        | F64Eq
        | I32DivS
        | I32DivU
        | I32RemS
        | I32RemU
        | I64DivS
        | I64DivU
        | I64RemS
        | I64RemU
        | MemoryFill { .. }
        | I32Load { .. }
        | I64Load { .. }
        | F32Load { .. }
        | F64Load { .. }
        | I32Load8S { .. }
        | I32Load8U { .. }
        | I32Load16S { .. }
        | I32Load16U { .. }
        | I64Load8S { .. }
        | I64Load8U { .. }
        | I64Load16S { .. }
        | I64Load16U { .. }
        | I64Load32S { .. }
        | I64Load32U { .. }
        | I32TruncSatF32S
        | I32TruncSatF32U
        | I32TruncSatF64S
        | I32TruncSatF64U
        | I64TruncSatF32S
        | I64TruncSatF32U
        | I64TruncSatF64S
        | I64TruncSatF64U => 3,
        GlobalGet { .. }
        | I32Popcnt
        | I64Popcnt
        | Select
        | TypedSelect { .. }
        | MemorySize { .. }
        | I32Store { .. }
        | I64Store { .. }
        | F32Store { .. }
        | F64Store { .. }
        | I32Store8 { .. }
        | I32Store16 { .. }
        | I64Store8 { .. }
        | I64Store16 { .. }
        | I64Store32 { .. }
        | I32Eqz
        | I32Eq
        | I32Ne
        | I32LtS
        | I32LtU
        | I32GtS
        | I32GtU
        | I32LeS
        | I32LeU
        | I32GeS
        | I32GeU
        | I64Eqz
        | I64Eq
        | I64Ne
        | I64LtS
        | I64LtU
        | I64GtS
        | I64GtU
        | I64LeS
        | I64LeU
        | I64GeS
        | I64GeU
        | F32Eq
        | F32Ne
        | F32Lt
        | F32Gt
        | F32Le
        | F32Ge
        | F64Ne
        | F64Lt
        | F64Gt
        | F64Le
        | F64Ge
        | F32Ceil
        | F32Floor
        | F32Trunc
        | F32Nearest
        | F32Sqrt
        | F64Ceil
        | F64Floor
        | F64Trunc
        | F64Nearest
        | F64Sqrt
        | I32ReinterpretF32
        | I64ReinterpretF64
        | F32ReinterpretI32
        | F64ReinterpretI64
        | I32WrapI64
        | I32Extend8S
        | I32Extend16S
        | I64Extend8S
        | I64Extend16S
        | I64Extend32S
        | F64PromoteF32 => 2,
        _ => 1,
    }
}

/// What validation needs to know of the module's functions.
#[derive(Default)]
struct Functions {
    types: Vec<Option<Signature>>,
    /// The type index of every function, imported ones first.
    of: Vec<u32>,
    imported: usize,
}

impl Functions {
    fn signature(&self, function: u32) -> Option<&Signature> {
        let ty = *self.of.get(function as usize)?;
        self.types.get(ty as usize)?.as_ref()
    }
}

fn signature(f: &FuncType) -> Signature {
    (f.params().to_vec(), f.results().to_vec())
}

/// Checks `wasm` (already decompressed) against the IC's rules. `system_api` maps the `ic0`
/// functions the replica provides to their signatures; importing anything else, or one of
/// them with another signature, is refused, as on the IC.
pub fn validate(wasm: &[u8], system_api: &BTreeMap<String, Signature>) -> Result<(), InvalidModule> {
    if wasm.len() > limits::WASM_MAX_SIZE {
        return Err(invalid(format!(
            "Wasm module size of {} exceeds the maximum allowed size of {}.",
            wasm.len(),
            limits::WASM_MAX_SIZE
        )));
    }
    Validator::new_with_features(ic_features())
        .validate_all(wasm)
        .map_err(|e| invalid(format!("{e} (the IC enables simd128 but not relaxed-simd, threads or multi-memory)")))?;

    let mut functions = Functions::default();
    let (mut globals, mut code_index) = (0usize, 0usize);
    let mut exports = Vec::new();
    let mut custom_names = BTreeSet::new();
    let mut custom_bytes = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| invalid(e.to_string()))? {
            Payload::TypeSection(types) => {
                for group in types {
                    for sub in group.map_err(|e| invalid(e.to_string()))?.into_types() {
                        functions.types.push(match &sub.composite_type.inner {
                            CompositeInnerType::Func(f) => Some(signature(f)),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    let import = import.map_err(|e| invalid(e.to_string()))?;
                    check_import(&import, &functions, system_api)?;
                    if let TypeRef::Func(ty) = import.ty {
                        functions.of.push(ty);
                        functions.imported += 1;
                    }
                }
            }
            Payload::FunctionSection(s) => {
                for ty in s {
                    functions.of.push(ty.map_err(|e| invalid(e.to_string()))?);
                }
            }
            Payload::GlobalSection(s) => globals += s.count() as usize,
            Payload::MemorySection(s) => {
                for memory in s {
                    if memory.map_err(|e| invalid(e.to_string()))?.memory64 {
                        // The IC runs wasm64 canisters too; this replica's system API has only
                        // the wasm32 signatures, so it says so instead of refusing every import.
                        return Err(invalid(
                            "the local replica runs wasm32 canisters only (this module's memory is 64-bit)",
                        ));
                    }
                }
            }
            Payload::CodeSectionStart { size, .. } if size as usize > limits::MAX_CODE_SECTION_BYTES => {
                return Err(invalid(format!(
                    "Wasm module code section size of {size} exceeds the maximum allowed size of {}.",
                    limits::MAX_CODE_SECTION_BYTES
                )));
            }
            Payload::CodeSectionEntry(body) => {
                let index = functions.imported + code_index;
                code_index += 1;
                check_body(index, &body)?;
            }
            Payload::ExportSection(section) => {
                for export in section {
                    let export = export.map_err(|e| invalid(e.to_string()))?;
                    exports.push((export.name.to_string(), export.kind, export.index));
                }
            }
            Payload::CustomSection(c) if c.name().starts_with("icp:") => {
                let name = c.name();
                let Some(short) = name.strip_prefix("icp:public ").or_else(|| name.strip_prefix("icp:private ")) else {
                    return Err(invalid(if name == "icp:public" || name == "icp:private" {
                        "'icp:' section names must have a space after the public/private scope".to_string()
                    } else {
                        format!("Invalid custom section: Custom section '{name}' has no public/private scope defined.")
                    }));
                };
                if !custom_names.insert(short.to_string()) {
                    return Err(invalid(format!("Invalid custom section: name {short} already exists")));
                }
                custom_bytes += c.data().len() + short.len();
                if custom_bytes > MAX_CUSTOM_SECTIONS_BYTES {
                    return Err(invalid(format!(
                        "Invalid custom sections: total size of the custom sections exceeds the maximum allowed: \
                         size {custom_bytes} bytes, allowed {MAX_CUSTOM_SECTIONS_BYTES} bytes"
                    )));
                }
                if custom_names.len() > MAX_CUSTOM_SECTIONS {
                    return Err(invalid(format!(
                        "Wasm module defined {} custom sections which exceeds the maximum number allowed \
                         {MAX_CUSTOM_SECTIONS}.",
                        custom_names.len()
                    )));
                }
            }
            _ => {}
        }
    }
    check_exports(&exports, &functions)?;
    let defined = functions.of.len() - functions.imported;
    if defined > limits::MAX_FUNCTIONS {
        return Err(invalid(format!(
            "Wasm module defined {defined} functions which exceeds the maximum number allowed {}.",
            limits::MAX_FUNCTIONS
        )));
    }
    if globals > limits::MAX_GLOBALS {
        return Err(invalid(format!(
            "Wasm module defined {globals} globals which exceeds the maximum number allowed {}.",
            limits::MAX_GLOBALS
        )));
    }
    Ok(())
}

/// Functions only from `ic0`, each with the signature the system API has; memories and tables
/// only as `env.memory` and `env.table` (which the IC's validation lets through); no globals.
fn check_import(
    import: &wasmparser::Import,
    functions: &Functions,
    system_api: &BTreeMap<String, Signature>,
) -> Result<(), InvalidModule> {
    let (module, name) = (import.module, import.name);
    match import.ty {
        TypeRef::Func(ty) => {
            let Some(expected) = system_api.get(name) else {
                return Err(invalid(format!(
                    "Wasm module has an invalid import section. Module imports function '{name}' from '{module}' \
                     that is not exported by the runtime."
                )));
            };
            if module != "ic0" {
                return Err(invalid(format!(
                    "Wasm module has an invalid import section. Module imports function \"{name}\" from \
                     \"{module}\", expected to be imported from one of {{[\"ic0\"]}} instead."
                )));
            }
            let found = functions.types.get(ty as usize).cloned().flatten().unwrap_or_default();
            signature_matches(name, expected, &found)
        }
        TypeRef::Memory(_) if name == "memory" && module != "env" => {
            Err(invalid("Wasm module has an invalid import section. Only memory imported from env.memory is allowed."))
        }
        TypeRef::Table(_) if name == "table" && module != "env" => {
            Err(invalid("Wasm module has an invalid import section. Only tables imported from env.table are allowed."))
        }
        TypeRef::Memory(_) | TypeRef::Table(_) => Ok(()),
        TypeRef::Global(_) => {
            Err(invalid("Wasm module has an invalid import section. Importing globals is not allowed."))
        }
        TypeRef::Tag(_) => Err(invalid("Wasm module has an invalid import section. Importing tags is not allowed.")),
        _ => Err(invalid(format!("Wasm module has an invalid import section. `{module}.{name}` cannot be imported."))),
    }
}

fn signature_matches(what: &str, expected: &Signature, found: &Signature) -> Result<(), InvalidModule> {
    if expected.0 != found.0 {
        return Err(invalid(format!(
            "Wasm module has an invalid function signature. Expected input params {:?} for '{what}', got {:?}.",
            expected.0, found.0
        )));
    }
    if expected.1 != found.1 {
        return Err(invalid(format!(
            "Wasm module has an invalid function signature. Expected return type {:?} for '{what}', got {:?}.",
            expected.1, found.1
        )));
    }
    Ok(())
}

/// No table mutation, and the IC's complexity and size limits per function.
fn check_body(index: usize, body: &wasmparser::FunctionBody) -> Result<(), InvalidModule> {
    let (mut count, mut weight) = (0usize, 0u64);
    let mut ops = body.get_operators_reader().map_err(|e| invalid(e.to_string()))?;
    while !ops.eof() {
        let op = ops.read().map_err(|e| invalid(e.to_string()))?;
        count += 1;
        weight = weight.saturating_add(complexity(&op));
        let unsupported = match op {
            Operator::TableGrow { .. } => Some("table.grow"),
            Operator::TableSet { .. } => Some("table.set"),
            Operator::TableFill { .. } => Some("table.fill"),
            Operator::TableCopy { .. } => Some("table.copy"),
            Operator::TableInit { .. } => Some("table.init"),
            _ => None,
        };
        if let Some(instruction) = unsupported {
            return Err(invalid(format!(
                "Wasm module contains a function at index {index} with unsupported instruction {instruction}."
            )));
        }
    }
    if weight > FUNCTION_COMPLEXITY_LIMIT {
        return Err(invalid(format!(
            "Wasm module contains a function at index {index} with complexity {weight} which exceeds the maximum \
             complexity allowed {FUNCTION_COMPLEXITY_LIMIT}."
        )));
    }
    if count > limits::MAX_INSTRUCTIONS_PER_FUNCTION {
        return Err(invalid(format!(
            "Wasm module contains a function at index {index} of size {count} that exceeds the maximum allowed \
             size of {}.",
            limits::MAX_INSTRUCTIONS_PER_FUNCTION
        )));
    }
    Ok(())
}

/// Methods and the allowed system exports are functions of type `() -> ()`; no method is
/// exported twice; nothing else uses the `canister_` prefix or a name the IC reserves.
fn check_exports(exports: &[(String, ExternalKind, u32)], functions: &Functions) -> Result<(), InvalidModule> {
    let mut methods = BTreeSet::new();
    let mut method_name_bytes = 0usize;
    let unit: Signature = (vec![], vec![]);
    for (name, kind, index) in exports {
        if RESERVED_EXPORTS.contains(&name.as_str()) {
            return Err(invalid(format!(
                "Wasm module has an invalid export section. Exporting reserved symbol {name} not allowed."
            )));
        }
        if *kind != ExternalKind::Func {
            continue;
        }
        let method = ["canister_update ", "canister_query ", "canister_composite_query "]
            .iter()
            .find_map(|p| name.strip_prefix(p));
        if let Some(method) = method {
            if !methods.insert(method.to_string()) {
                return Err(invalid(format!(
                    "Duplicate function '{method}' exported multiple times with different call types: update, \
                     query, or composite_query."
                )));
            }
            method_name_bytes += method.len();
        } else if name.starts_with("canister_") && !ALLOWED_SYSTEM_EXPORTS.contains(&name.as_str()) {
            return Err(invalid(format!(
                "Wasm module has an invalid export section. Exporting reserved function '{name}' with \
                 \"canister_\" prefix"
            )));
        } else if !name.starts_with("canister_") {
            continue;
        }
        let found = functions.signature(*index).cloned().unwrap_or_default();
        signature_matches(name, &unit, &found)?;
    }
    if methods.len() > limits::MAX_EXPORTED_METHODS {
        return Err(invalid(format!(
            "The number of exported functions called `canister_update <name>`, `canister_query <name>`, or \
             `canister_composite_query <name>` is {} which exceeds {}.",
            methods.len(),
            limits::MAX_EXPORTED_METHODS
        )));
    }
    if method_name_bytes > limits::MAX_METHOD_NAME_BYTES {
        return Err(invalid(format!(
            "The sum of `<name>` lengths in exported functions called `canister_update <name>`, `canister_query \
             <name>`, or `canister_composite_query <name>` is {method_name_bytes} which exceeds the allowed limit \
             of {}.",
            limits::MAX_METHOD_NAME_BYTES
        )));
    }
    Ok(())
}
