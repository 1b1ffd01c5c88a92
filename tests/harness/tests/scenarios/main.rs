//! The scenario tests on the real canisters, one module a subject. They are one test binary, not
//! one per file: each binary links the replica's wasmtime and cranelift (about 70 MB), and
//! seventeen of them spent a cold test build's time compiling and linking the same code again.
//! nextest still runs every test in a process of its own.

mod adversarial;
mod agency;
mod audit;
mod classify;
mod fairness;
mod inference_canister;
mod plain_tract;
mod polling;
mod pool;
mod random_arguments;
mod registry;
mod stateful_model;
mod symbolic_width;
mod tabular;
mod tensor_types;
mod text;
mod text_direction;
mod variants;
