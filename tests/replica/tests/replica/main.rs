//! The replica's own tests, one module a subject, as one test binary: each binary links wasmtime
//! and cranelift, and five of them compiled and linked the same code again. nextest still runs
//! every test in a process of its own.

mod certification;
mod common;
mod fees;
mod http_front;
mod rules;
mod system_api;
