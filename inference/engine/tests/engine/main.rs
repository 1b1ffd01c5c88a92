//! The engine's integration tests, natively, one module a subject. They are one test binary, not
//! one per file: each binary links tract and the engine, and fourteen of them spent a cold test
//! build's time compiling and linking the same code again. nextest still runs every test in a
//! process of its own.

mod execution;
mod executor_props;
mod integer_conv_props;
mod integer_heads;
mod jobs_props;
mod onnx_conformance;
mod qoperator;
mod quota;
mod recurrent;
mod registry;
mod registry_props;
mod stable_layout;
mod tabular;
mod text;
