//! The baseline the benchmark compares the inference canister with: tract used as DFINITY's
//! image-classification example uses it (shared/docs/anchors.md §1.1). The model is parsed by
//! tract's own ONNX parser, optimised with `into_optimized`, made runnable once, and each
//! inference is one `run` of that plan inside one message: no chunked execution, no passes or
//! kernels of ours, no access roles, registry or audit.
//!
//! Only the benchmark uses it. Its endpoints are for the canister's controllers alone, checked in
//! each body: `append` gathers the model's bytes in the heap (the example embeds them in its
//! module; sending them lets one module serve every bundled model), `load` builds the plan (the
//! example does it in `init`), `run` infers.

use std::cell::RefCell;

use candid::{CandidType, Deserialize};
use tract_onnx::prelude::*;
// Links getrandom's custom backend in, should anything in tract's tree ask for randomness.
use canister_entropy as _;

type Plan = std::sync::Arc<TypedRunnableModel>;

thread_local! {
    static BYTES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static PLAN: RefCell<Option<Plan>> = const { RefCell::new(None) };
}

/// Why a call was refused. Tract's own messages are kept as text: they are what the benchmark
/// reports when plain tract cannot run a model.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum PlainError {
    NotController,
    NoModel,
    /// The input's length is not the product of its shape.
    BadInput {
        expected: u64,
        got: u64,
    },
    /// tract could not parse, type or optimise the model.
    Load(String),
    /// tract's plan failed on the input.
    Run(String),
}

/// How `load` parsed the model.
#[derive(CandidType, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    AsIs,
    /// Only with tract's `with_ignore_value_info`.
    WithoutValueInfo,
}

/// The first output, as f32, and the instructions `run` took inside the canister.
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq)]
pub struct Inference {
    pub output: Vec<f32>,
    pub instructions: u64,
}

fn controller() -> Result<(), PlainError> {
    if ic_cdk::api::is_controller(&ic_cdk::api::msg_caller()) {
        Ok(())
    } else {
        Err(PlainError::NotController)
    }
}

/// Appends bytes of the model (controllers).
#[ic_cdk::update]
fn append(bytes: serde_bytes::ByteBuf) -> Result<(), PlainError> {
    controller()?;
    BYTES.with_borrow_mut(|b| b.extend_from_slice(&bytes));
    Ok(())
}

/// Parses the appended model with its one f32 input pinned to `shape`, optimises it and keeps
/// the runnable plan (controllers). The bytes are dropped either way. Where the file's own
/// intermediate shapes contradict the pinned input (exporters leave a symbolic batch in
/// `value_info`), it parses again with tract's `with_ignore_value_info` option, as a developer
/// meeting that error would; the answer says whether it had to.
#[ic_cdk::update]
fn load(shape: Vec<u64>) -> Result<Loaded, PlainError> {
    controller()?;
    let bytes = BYTES.with_borrow_mut(std::mem::take);
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let plan = |parser: tract_onnx::Onnx| {
        parser
            .model_for_read(&mut &*bytes)
            .and_then(|m| m.with_input_fact(0, f32::fact(&shape).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
    };
    let (plan, loaded) = match plan(tract_onnx::onnx()) {
        Ok(plan) => (plan, Loaded::AsIs),
        Err(_) => match plan(tract_onnx::onnx().with_ignore_value_info(true)) {
            Ok(plan) => (plan, Loaded::WithoutValueInfo),
            Err(e) => return Err(PlainError::Load(format!("{e:#}"))),
        },
    };
    PLAN.with_borrow_mut(|p| *p = Some(plan));
    Ok(loaded)
}

/// Runs the plan on one f32 input of `shape` in this message (controllers).
#[ic_cdk::update]
fn run(shape: Vec<u64>, data: Vec<f32>) -> Result<Inference, PlainError> {
    controller()?;
    let start = ic_cdk::api::performance_counter(0);
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let expected = dims.iter().product::<usize>() as u64;
    if expected != data.len() as u64 {
        return Err(PlainError::BadInput { expected, got: data.len() as u64 });
    }
    let input = Tensor::from_shape(&dims, &data).map_err(|e| PlainError::Run(format!("{e:#}")))?;
    let outputs = PLAN.with_borrow(|p| {
        let plan = p.as_ref().ok_or(PlainError::NoModel)?;
        plan.run(tvec!(input.into_tvalue())).map_err(|e| PlainError::Run(format!("{e:#}")))
    })?;
    let run_error = |e: TractError| PlainError::Run(format!("{e:#}"));
    let scores = outputs[0].cast_to::<f32>().map_err(run_error)?;
    let output = scores.try_as_plain_ram().map_err(run_error)?.as_slice::<f32>().map_err(run_error)?.to_vec();
    Ok(Inference { output, instructions: ic_cdk::api::performance_counter(0) - start })
}

ic_cdk::export_candid!();
