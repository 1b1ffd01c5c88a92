//! What installing a module costs before any of its code runs: the IC charges compilation as
//! instructions of the install, `cost_to_compile_wasm_instruction` (6,000) per instruction of
//! the *instrumented* module (`InstrumentationOutput::compilation_cost` in
//! `rs/embedders/src/wasm_utils/instrumentation.rs`, the 6,000 in `rs/config/src/embedders.rs`).
//!
//! The replica does not instrument the module (fuel meters it instead), so it counts what the
//! IC's instrumentation would emit: every original instruction, the metering code injected into
//! each function (a counter decrement at the start of every basic block that costs something,
//! with an out-of-instructions check at function and loop entries, and a call before every
//! bulk-memory operation), the check after every `memory.grow`, the functions the IC adds, and
//! two instructions per global (the IC's three counters included).

use wasmparser::{Operator, Parser, Payload, TypeRef};

/// Instructions the IC charges per instruction of the instrumented module.
pub const COST_PER_INSTRUCTION: u64 = 6_000;

/// `global.get, i64.const, i64.sub, global.set`: the decrement at a basic block's start.
const DECREMENT: u64 = 4;
/// `global.get, i64.const, i64.lt_s, if, call, end`: the check after it at a function or loop entry.
const OUT_OF_INSTRUCTIONS_CHECK: u64 = 6;
/// `i64.extend_i32_u, call, i32.wrap_i64` before a wasm32 bulk-memory operation (its size is
/// charged at run time); a wasm64 one needs only the call.
const DYNAMIC_CHARGE_32: u64 = 3;
const DYNAMIC_CHARGE_64: u64 = 1;
/// `local.tee` before and `local.get, call` after every `memory.grow`.
const MEMORY_GROW_CHECK: u64 = 3;
/// The counter-decrementing function the IC adds (20 instructions) and, with wasm-native stable
/// memory (on for application subnets), its page-counting function (46).
const ADDED_FUNCTIONS: u64 = 20 + 46;
/// Globals the IC adds: the instruction counter, and the dirty- and accessed-page counters and
/// the size of wasm-native stable memory (older versions of the IC add three; four is the
/// larger charge).
const ADDED_GLOBALS: u64 = 4;
/// Wasm-native stable memory replaces each imported stable-memory call by a function of its own.
/// `stable64_size` is one instruction and `stable64_grow` about twenty;
/// the read and write bodies are longer, and this bound (above each of them) stands in for
/// their exact length, so the replica never charges less than the IC.
const STABLE_REPLACEMENT_BOUND: u64 = 250;

/// Instructions of `wasm` (a valid module) once the IC has instrumented it.
pub fn instrumented_instructions(wasm: &[u8]) -> Result<u64, wasmparser::BinaryReaderError> {
    let mut total = ADDED_FUNCTIONS + 2 * ADDED_GLOBALS;
    let mut memory64 = false;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    let import = import?;
                    if import.module == "ic0" && matches!(import.ty, TypeRef::Func(_)) {
                        total += stable_replacement(import.name);
                    }
                }
            }
            Payload::MemorySection(memories) => {
                for memory in memories {
                    memory64 |= memory?.memory64;
                }
            }
            Payload::GlobalSection(globals) => total += 2 * globals.count() as u64,
            Payload::CodeSectionEntry(body) => {
                let mut ops = body.get_operators_reader()?;
                let mut function = FunctionCount::new(memory64);
                while !ops.eof() {
                    function.add(&ops.read()?);
                }
                total += function.finish();
            }
            _ => {}
        }
    }
    Ok(total)
}

/// Instructions the IC charges for compiling `wasm`.
pub fn compilation_cost(wasm: &[u8]) -> Result<u64, wasmparser::BinaryReaderError> {
    Ok(COST_PER_INSTRUCTION * instrumented_instructions(wasm)?)
}

fn stable_replacement(name: &str) -> u64 {
    match name {
        // The bodies' lengths, counted with their closing `end`.
        "stable64_size" => 2,
        "stable_size" => 10,
        "stable64_grow" => 21,
        "stable_grow" => 24,
        "stable64_read" | "stable64_write" | "stable_read" | "stable_write" => STABLE_REPLACEMENT_BOUND,
        _ => 0,
    }
}

/// One function body's instructions after metering, following the IC's `injections`: a basic
/// block ends at every branch, `end`, `else`, `loop`, `if`, `return` and `unreachable`; the
/// function's first block and every loop body are re-entrant (always decremented and checked);
/// any other block is decremented only if its instructions cost something (all but `block`,
/// `loop`, `else` and `end` do).
struct FunctionCount {
    memory64: bool,
    instructions: u64,
    injected: u64,
    block_reentrant: bool,
    block_costs: bool,
}

impl FunctionCount {
    fn new(memory64: bool) -> Self {
        // "Start with at least one fuel": a function's first block costs at least 1.
        FunctionCount { memory64, instructions: 0, injected: 0, block_reentrant: true, block_costs: true }
    }

    fn add(&mut self, op: &Operator) {
        use Operator::*;
        self.instructions += 1;
        self.block_costs |= !matches!(op, Block { .. } | Loop { .. } | Else | End);
        match op {
            Loop { .. } => self.end_block(true),
            If { .. } | Else | Br { .. } | BrIf { .. } | BrTable { .. } | End | Return | Unreachable => {
                self.end_block(false)
            }
            MemoryFill { .. } | MemoryCopy { .. } | TableFill { .. } | TableCopy { .. } => {
                self.injected += if self.memory64 { DYNAMIC_CHARGE_64 } else { DYNAMIC_CHARGE_32 };
            }
            MemoryInit { .. } | TableInit { .. } => self.injected += DYNAMIC_CHARGE_32,
            MemoryGrow { .. } => self.injected += MEMORY_GROW_CHECK,
            _ => {}
        }
    }

    /// Closes the current block; the next one is re-entrant if `next_reentrant`.
    fn end_block(&mut self, next_reentrant: bool) {
        if self.block_reentrant {
            self.injected += DECREMENT + OUT_OF_INSTRUCTIONS_CHECK;
        } else if self.block_costs {
            self.injected += DECREMENT;
        }
        self.block_reentrant = next_reentrant;
        self.block_costs = false;
    }

    fn finish(self) -> u64 {
        // The block after a function's final `end` is empty and costs nothing.
        self.instructions + self.injected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(wat: &str) -> u64 {
        instrumented_instructions(&wat::parse_str(wat).unwrap()).unwrap()
    }

    const BASE: u64 = ADDED_FUNCTIONS + 2 * ADDED_GLOBALS;

    #[test]
    fn an_empty_function_is_its_end_plus_the_entry_check() {
        // `end` (1) + the entry block's decrement and check (10).
        assert_eq!(count("(module (func))"), BASE + 1 + 10);
    }

    #[test]
    fn blocks_that_cost_nothing_are_not_metered() {
        // i32.const, drop, block, end, end = 5; the entry block (const, drop, block — ended by
        // the inner end) is re-entrant: 10; the block after the inner end holds only `end`: 0.
        assert_eq!(count("(module (func i32.const 1 drop (block)))"), BASE + 5 + 10);
    }

    #[test]
    fn loops_ifs_bulk_memory_and_grow_are_instrumented() {
        // Instructions: loop, i32.const, br_if, end (loop), i32.const, if, nop, end (if),
        // i32.const ×3, memory.fill, i32.const, memory.grow, drop, end (func) = 16.
        // Blocks: entry [loop] re-entrant: 10; loop body [const, br_if] re-entrant: 10; after
        // br_if [end] costs 0; after loop's end [const, if]: 4; if body [nop, end]: 4;
        // after if's end [consts, fill, const, grow, drop, end]: 4; fill: 3; grow: 3.
        let wat = "(module (memory 1) (func
            (loop i32.const 0 br_if 0)
            i32.const 1 (if (then nop))
            i32.const 0 i32.const 0 i32.const 0 memory.fill
            i32.const 1 memory.grow drop))";
        assert_eq!(count(wat), BASE + 16 + 10 + 10 + 4 + 4 + 4 + 3 + 3);
    }

    #[test]
    fn globals_and_stable_imports_count() {
        let wat = r#"(module
            (import "ic0" "stable64_size" (func (result i64)))
            (global (mut i32) (i32.const 0)) (global i64 (i64.const 0)))"#;
        assert_eq!(count(wat), BASE + 2 + 2 * 2);
    }
}
