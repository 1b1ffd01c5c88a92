//! The IC's instruction cost table, applied through wasmtime's fuel.
//!
//! The IC instruments every canister so that each basic block decrements an instruction counter
//! by the static sum of its instructions' costs (`instruction_to_cost` in dfinity/ic
//! `rs/embedders/src/wasm_utils/instrumentation.rs`); bulk-memory operations add their runtime
//! size. wasmtime's fuel does exactly that sum when every operator is priced with the IC's
//! cost, so we configure fuel with this table instead of rewriting the module. The totals are
//! identical; the one place fuel cannot express a cost is an operator the IC prices above 255
//! (fuel costs are `u8`): `memory.grow` (300) is completed by the replica's resource limiter,
//! and `data.drop`/`elem.drop` (300) are charged 255 — LLVM emits them only for passive
//! segments, which the canisters we build do not have. `table.grow` is refused at install,
//! as on the IC.

use wasmtime::OperatorCost;

/// What entering a wasm function costs on the IC: its instrumentation starts every function
/// body's metered block at 1, "because even empty functions should consume at least some fuel"
/// (`injections` in `rs/embedders/src/wasm_utils/instrumentation.rs`). wasmtime burns exactly
/// one unit of fuel on entering any wasm function, so fuel carries it as it is: a call between
/// wasm functions costs `call` (5) + 1, a message costs 1 for its exported function's entry,
/// and a call into the system API costs `call` (5) and no entry (the IC does not meter the
/// system API's bodies by instruction).
pub const FUNCTION_ENTRY_COST: u64 = 1;

/// Cost of `memory.grow` on the IC, of which fuel can carry at most [`u8::MAX`].
pub const MEMORY_GROW_COST: u64 = 300;

/// The IC's static cost of one wasm32 operator, by wasmparser's name for it.
pub fn ic_cost(op: &str) -> u64 {
    match op {
        "Block" | "Loop" | "Else" | "End" => 0,
        "I32DivS" | "I32DivU" | "I32RemS" | "I32RemU" | "I64DivS" | "I64DivU" | "I64RemS" | "I64RemU" => 10,
        "F32Add" | "F32Sub" | "F32Mul" | "F32Ceil" | "F32Floor" | "F32Trunc" | "F32Nearest" | "F64Add" | "F64Sub"
        | "F64Mul" | "F64Ceil" | "F64Floor" | "F64Trunc" | "F64Nearest" => 2,
        "F32Div" => 3,
        "F64Div" => 5,
        "F32Min" | "F32Max" | "F64Min" | "F64Max" => 18,
        "F32Copysign" => 2,
        "F64Copysign" => 3,
        "F32Sqrt" => 5,
        "F64Sqrt" => 8,
        "F32Eq" | "F32Ne" | "F32Lt" | "F32Gt" | "F32Le" | "F32Ge" | "F64Eq" | "F64Ne" | "F64Lt" | "F64Gt" | "F64Le"
        | "F64Ge" => 3,
        "F32ConvertI32S" | "F64ConvertI64S" | "F32ConvertI64S" | "F64ConvertI32S" => 3,
        "F64ConvertI32U" | "F32ConvertI64U" | "F32ConvertI32U" | "F64ConvertI64U" => 16,
        op if op.starts_with("I32TruncSat") || op.starts_with("I64TruncSat") => 20,
        op if op.starts_with("I32TruncF") || op.starts_with("I64TruncF") => 20,
        "GlobalGet" | "GlobalSet" => 2,
        "TableGet" | "TableSet" => 5,
        "TableGrow" | "MemoryGrow" => MEMORY_GROW_COST,
        "MemorySize" => 20,
        "TableSize" => 100,
        "MemoryFill" | "MemoryCopy" | "TableFill" | "TableCopy" | "MemoryInit" | "TableInit" => 100,
        "DataDrop" | "ElemDrop" => 300,
        "Call" => 5,
        "CallIndirect" => 10,
        "ReturnCall" => 3,
        "ReturnCallIndirect" => 60,
        "If" | "Br" | "BrIf" | "BrTable" => 2,
        "RefIsNull" => 5,
        "RefFunc" => 130,
        // SIMD: the table lists each lane op; those not named here cost 1.
        "I8x16Shuffle" => 3,
        "I8x16LtU" | "I8x16GtU" | "I16x8LtU" | "I16x8GtU" | "I32x4LtU" | "I32x4GtU" => 2,
        "I8x16Popcnt" | "I8x16Shl" | "I8x16ShrS" => 3,
        "I8x16ShrU" => 2,
        "I16x8ExtAddPairwiseI8x16U" => 2,
        "I16x8Shl" | "I16x8ShrS" | "I16x8ShrU" => 2,
        "I16x8ExtMulHighI8x16S" | "I16x8ExtMulHighI8x16U" => 2,
        "I32x4ExtAddPairwiseI16x8U" => 3,
        "I32x4Shl" | "I32x4ShrS" | "I32x4ShrU" | "I32x4Mul" => 2,
        "I32x4ExtMulLowI16x8S" | "I32x4ExtMulHighI16x8S" | "I32x4ExtMulLowI16x8U" | "I32x4ExtMulHighI16x8U" => 2,
        "I64x2Shl" | "I64x2ShrU" => 2,
        "I64x2ShrS" => 3,
        "I64x2Mul" => 4,
        "F32x4Ceil" | "F32x4Floor" | "F32x4Trunc" | "F32x4Nearest" | "F32x4Abs" | "F32x4Neg" | "F32x4Add"
        | "F32x4Sub" | "F32x4Mul" => 2,
        "F32x4Sqrt" => 5,
        "F32x4Div" => 10,
        "F32x4Min" | "F32x4Max" => 4,
        "F64x2Ceil" | "F64x2Floor" | "F64x2Trunc" | "F64x2Nearest" | "F64x2Abs" | "F64x2Neg" | "F64x2Add"
        | "F64x2Sub" | "F64x2Mul" => 2,
        "F64x2Sqrt" => 14,
        "F64x2Div" => 12,
        "F64x2Min" => 4,
        "F64x2Max" => 5,
        "I32x4TruncSatF32x4S" => 2,
        "I32x4TruncSatF32x4U" => 4,
        "F32x4ConvertI32x4U" => 4,
        "I32x4TruncSatF64x2SZero" => 2,
        "I32x4TruncSatF64x2UZero" => 3,
        // Constants, integer arithmetic and comparisons, loads and stores, locals, select,
        // return/drop/nop/unreachable, and every other operator.
        _ => 1,
    }
}

macro_rules! ic_operator_cost {
    ($(@$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*))*) => {
        /// wasmtime's fuel table filled with [`ic_cost`]; bulk memory charges 1 per byte.
        pub fn operator_cost() -> OperatorCost {
            let mut cost = OperatorCost::new();
            $( cost.$op = ic_cost(stringify!($op)).min(u8::MAX as u64) as u8; )*
            cost.variable.memory_copy_per_byte = 1;
            cost.variable.memory_fill_per_byte = 1;
            cost.variable.memory_init_per_byte = 1;
            cost.variable.memory_grow_per_page = 0;
            cost
        }
    };
}
wasmparser::for_each_operator!(ic_operator_cost);

/// Fixed overheads the IC charges for system API calls ("new" metering,
/// `system_api_complexity.rs`); calls that copy data add one instruction per byte.
pub mod system_api {
    pub const DEFAULT: u64 = 500;
    /// Bytes a message sends out of the sandbox (its reply or reject, a call's argument) cost
    /// this many instructions each instead of one (`BYTE_TRANSMISSION_COST_FACTOR` in the IC's
    /// `rs/embedders/src/wasmtime_embedder/linker.rs`).
    pub const BYTE_TRANSMISSION: u64 = 50;
    /// The canister log's capacity: `trap` bills its message as a log record of at most this
    /// many bytes (2 per byte kept, 50 per byte sent), besides one per byte read.
    pub const LOG_CAPACITY_BYTES: u64 = 4 * 1024;
    pub const CALL_NEW: u64 = 1_500;
    pub const CALL_PERFORM: u64 = 5_000;
    pub const IS_CONTROLLER: u64 = 1_000;
    pub const PERFORMANCE_COUNTER: u64 = 200;
    pub const DEBUG_PRINT: u64 = 100;
    /// debug_print also bills its bytes twice plus 50 per byte sent to the canister log.
    pub const DEBUG_PRINT_PER_BYTE: u64 = 52;
    pub const STABLE_READ_WRITE: u64 = 20;
    pub const STABLE_GROW: u64 = 100;
    /// Writing to a 4 KiB stable page for the first time in a message.
    pub const STABLE_DIRTY_PAGE: u64 = 1_000;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_spot_checks() {
        assert_eq!(ic_cost("I32Add"), 1);
        assert_eq!(ic_cost("I64DivU"), 10);
        assert_eq!(ic_cost("Call"), 5);
        assert_eq!(ic_cost("CallIndirect"), 10);
        assert_eq!(ic_cost("F32x4Div"), 10);
        assert_eq!(ic_cost("I32TruncSatF64U"), 20);
        assert_eq!(ic_cost("End"), 0);
        let table = operator_cost();
        assert_eq!(table.Call, 5);
        assert_eq!(table.MemoryGrow, 255);
        assert_eq!(table.F32Max, 18);
    }
}
