//! Classification: validate the input, build (or reuse) the plan, and run the resumable job
//! across as many messages as it needs, awaiting a call to this canister between them.

use std::convert::Infallible;
use std::sync::Arc;

use candid::{CandidType, Deserialize, Principal};
use ic_cdk::call::{CallFailed, RejectCode};
use inference_api::{
    Classification, Inference, InferenceError, InputTensor, LabelScore, ModelInfo, ModelRef, NodeProfile,
    NotAuthorized, OutputTensor, Profile, RecordClassification, RegistryError, TensorData, TensorSpec,
    MAX_PLAN_VALUE_ELEMENTS,
};
use inference_engine::executor::{Job, NodeCost, Progress};
use inference_engine::jobs::Advance;
use inference_engine::kernels::finite::first_not_finite;
use inference_engine::model;
use tract_onnx::prelude::*;

use crate::plans::{PlanKey, Shapes};
use crate::state;

/// tract's error chain as one sentence (its Display with causes), never its Debug dump.
pub fn engine_error(e: impl std::fmt::Display) -> InferenceError {
    InferenceError::Engine(format!("{e:#}"))
}

/// Largest output `infer` returns: the inter-canister reply limit (2 MiB) less the envelope.
pub const MAX_OUTPUT_BYTES: u64 = 2 * 1024 * 1024 - 64 * 1024;

/// A caller rule of [`crate::auth`], checked again after every await of a long call: a role
/// revoked while the call waited ends it.
pub type Rule = fn(Principal) -> Result<(), NotAuthorized>;

/// Counts a call of this canister to itself for as long as it awaits its reply (see
/// [`crate::state::State::awaiting`]; `pre_upgrade` refuses while any does). Dropped when the
/// reply comes, or in the cleanup of a trapped callback.
pub struct Awaiting;

impl Awaiting {
    pub fn begin() -> Awaiting {
        state::with_mut(|s| s.awaiting += 1);
        Awaiting
    }
}

impl Drop for Awaiting {
    fn drop(&mut self) {
        state::with_mut(|s| s.awaiting = s.awaiting.saturating_sub(1));
    }
}

/// The plan of a model version for these input shapes, built in a message of its own when not
/// already in the heap (after an upgrade, for a shape not seen yet, or after the cache dropped
/// it): that message gets the whole instruction limit, and if building does not fit it (or
/// traps), its effects are rolled back and the caller gets this typed error instead of a trap
/// of its own message. The build's instructions are charged to `caller`'s quota, a failed one's
/// too (a trapped one at the whole message limit). A build the model refuses (it cannot take
/// these shapes) is remembered, so asking again costs nothing. A version deleted
/// meanwhile is `UnknownVersion`: its number is never given to another file.
pub async fn plan_in_own_message(
    info: &ModelInfo,
    request: &PlanRequest,
    caller: Principal,
) -> Result<model::LoadedModel, InferenceError> {
    let key = &request.key;
    if let Some(p) = state::with_mut(|s| s.plans.get(info, key)) {
        return Ok(p);
    }
    if let Some(failed) = state::with(|s| s.plans.failed(info, key)) {
        return Err(failed.into());
    }
    let wire: Vec<Vec<u64>> = key.shapes.iter().map(|s| s.iter().map(|&d| d as u64).collect()).collect();
    let wire = (wire, request.wire_values.clone());
    if let Err(failure) = build_in_own_message(info, Some(wire), caller).await {
        if failure.for_good {
            state::with_mut(|s| s.plans.remember_failure(info, key.clone(), failure.error.clone()));
        }
        return Err(failure.error.into());
    }
    state::with_mut(|s| s.plans.get(info, key)).ok_or_else(|| {
        InferenceError::Engine("the plan was built, then dropped to make room for others: try again".into())
    })
}

/// What `build_plan` answers its own canister: the build's outcome and what it cost, failed or
/// not, for the quota of the call that needed it.
#[derive(CandidType, Deserialize)]
pub struct Built {
    pub outcome: Result<(), RegistryError>,
    pub instructions: u64,
}

/// A plan build that did not give a plan: `for_good` when building again would fail again (the
/// model cannot be built for these shapes: the version's bytes never change), not when the
/// build trapped or the call did not get through.
pub struct BuildFailure {
    pub error: RegistryError,
    pub for_good: bool,
}

/// Instructions a message may execute on the IC: what a build that trapped may have cost.
const MESSAGE_INSTRUCTION_LIMIT: u64 = 40_000_000_000;

/// Has `build_plan` run for this version in a message of its own (see [`plan_in_own_message`];
/// `shapes` (with the plan-value inputs' values) absent: the declared ones, see [`build_plan`]), charging its instructions to
/// `caller`. The registry's refusals come back as they are; a build that could not complete is
/// `InvalidModel`.
pub async fn build_in_own_message(
    info: &ModelInfo,
    shapes: Option<(Vec<Vec<u64>>, Vec<InputTensor>)>,
    caller: Principal,
) -> Result<(), BuildFailure> {
    let (shapes, values) = match shapes {
        Some((shapes, values)) => (Some(shapes), Some(values)),
        None => (None, None),
    };
    let call = ic_cdk::call::Call::unbounded_wait(ic_cdk::api::canister_self(), "build_plan").with_args(&(
        &info.name,
        info.version,
        shapes,
        values,
    ));
    let reply = {
        let _awaiting = Awaiting::begin();
        call.await
    };
    let charge = |instructions| crate::quota::charge(caller, instructions, ic_cdk::api::time());
    match reply {
        Ok(response) => match response.candid::<Built>() {
            Ok(Built { outcome, instructions }) => {
                charge(instructions);
                outcome.map_err(|error| {
                    let for_good = matches!(error, RegistryError::InvalidModel(_));
                    BuildFailure { error, for_good }
                })
            }
            Err(e) => Err(BuildFailure { error: RegistryError::InvalidModel(e.to_string()), for_good: false }),
        },
        Err(e) => {
            // A trapped build is charged at the most it can have cost (its instructions were
            // rolled back with it). It is not remembered: a trap for want of heap, with other
            // plans cached, may not come again.
            let trapped = matches!(&e, CallFailed::CallRejected(r) if r.reject_code() == Ok(RejectCode::CanisterError));
            if trapped {
                charge(MESSAGE_INSTRUCTION_LIMIT);
            }
            let error = RegistryError::InvalidModel(format!(
                "building the plan of {} v{} did not complete in one message (the IC's instruction limit, or a trap): {e}",
                info.name, info.version
            ));
            Err(BuildFailure { error, for_good: false })
        }
    }
}

/// The positions of a version's plan-value inputs (see `ModelInfo::plan_value_inputs`).
pub fn plan_value_inputs(info: &ModelInfo) -> Vec<usize> {
    info.plan_value_inputs.iter().flatten().map(|&ix| ix as usize).collect()
}

/// What one plan is built for: its cache key, the plan-value inputs' values as tensors, and as
/// the caller sent them (for `build_plan`, which checks them again).
pub struct PlanRequest {
    pub key: PlanKey,
    values: Vec<(usize, Arc<Tensor>)>,
    wire_values: Vec<InputTensor>,
}

impl PlanRequest {
    /// The plan for a call's checked `tensors` (every input's, as `inputs` sent them): their
    /// shapes, and the values of the plan-value inputs, each at most
    /// [`MAX_PLAN_VALUE_ELEMENTS`] elements.
    pub fn of(info: &ModelInfo, tensors: &[TValue], inputs: &[InputTensor]) -> Result<PlanRequest, InferenceError> {
        let mut request = PlanRequest::shapes(tensors.iter().map(|t| t.shape().to_vec()).collect());
        for ix in plan_value_inputs(info) {
            let (Some(tensor), Some(input), Some(spec)) = (tensors.get(ix), inputs.get(ix), info.inputs.get(ix)) else {
                return Err(InferenceError::InvalidInput(format!("the model has no input {ix}")));
            };
            request = request.with_value(ix, spec, tensor.clone(), input.clone())?;
        }
        Ok(request)
    }

    /// A plan for these shapes, with no plan-value inputs (yet).
    pub fn shapes(shapes: Shapes) -> PlanRequest {
        PlanRequest { key: PlanKey::shapes(shapes), values: vec![], wire_values: vec![] }
    }

    /// Adds the value of plan-value input `ix`, checked against its declaration (`tensor`) and
    /// at most [`MAX_PLAN_VALUE_ELEMENTS`] elements.
    fn with_value(
        mut self,
        ix: usize,
        spec: &TensorSpec,
        tensor: TValue,
        input: InputTensor,
    ) -> Result<PlanRequest, InferenceError> {
        if tensor.len() as u64 > MAX_PLAN_VALUE_ELEMENTS {
            return Err(InferenceError::InvalidInput(format!(
                "input \"{}\" sets how the model is built (axes, a shape, scales…): at most \
                 {MAX_PLAN_VALUE_ELEMENTS} elements, not {}",
                spec.name,
                tensor.len()
            )));
        }
        let tensor = tensor.into_tensor();
        self.key.values.push(tensor.as_bytes().to_vec());
        self.values.push((ix, Arc::new(tensor)));
        self.wire_values.push(input);
        Ok(self)
    }

    /// A call's inputs less the plan-value ones (the plan holds those): what its job runs on.
    pub fn run_inputs(&self, tensors: TVec<TValue>) -> TVec<TValue> {
        let folded = |ix: &usize| self.values.iter().any(|(v, _)| v == ix);
        tensors.into_iter().enumerate().filter(|(ix, _)| !folded(ix)).map(|(_, t)| t).collect()
    }
}

/// Builds and caches the plan of a model version for these input shapes and plan values, if not
/// already in the heap.
pub fn ensure_plan(info: &ModelInfo, request: &PlanRequest) -> TractResult<model::LoadedModel> {
    if let Some(p) = state::with_mut(|s| s.plans.get(info, &request.key)) {
        return Ok(p);
    }
    let bytes = state::with(|s| s.registry.bytes(info));
    let specs: Vec<TensorSpec> =
        info.inputs.iter().zip(&request.key.shapes).map(|(spec, shape)| spec.with_shape(shape)).collect();
    let loaded = model::load_with_values(&bytes, &specs, &request.values, info.weight_format)?;
    state::with_mut(|s| {
        let budget = s.config.get().plan_cache_bytes;
        s.plans.insert(info, request.key.clone(), loaded.clone(), budget)
    });
    Ok(loaded)
}

/// What `build_plan` does for a version: the plan for `shapes` and the plan-value inputs'
/// `values`; without them, the plan for the declared shapes when they are all fixed, or else
/// (symbolic dimensions, no call's shape yet) a check that the model types with its dimensions
/// symbolic or, where tract cannot type it so (a `Reshape` whose target shape is computed from
/// the batch, say), the plan with every symbolic dimension at 1. A model with plan-value inputs
/// has no plan before a call brings their values: without them, it is only parsed. Each shape
/// and value must fit the declaration.
pub fn build_plan(
    info: &ModelInfo,
    shapes: Option<Vec<Vec<u64>>>,
    values: Option<Vec<InputTensor>>,
) -> Result<(), String> {
    let request: Option<PlanRequest> = match shapes {
        Some(shapes) => {
            if shapes.len() != info.inputs.len() {
                return Err(format!("model {} takes {} inputs", info.name, info.inputs.len()));
            }
            for (spec, shape) in info.inputs.iter().zip(&shapes) {
                spec.admits(shape).map_err(|m| format!("input \"{}\": {m}", spec.name))?;
            }
            let shapes: Shapes = shapes.iter().map(|s| s.iter().map(|&d| d as usize).collect()).collect();
            Some(checked_request(info, shapes, values.unwrap_or_default()).map_err(|e| format!("{e}"))?)
        }
        None if !plan_value_inputs(info).is_empty() => {
            let bytes = state::with(|s| s.registry.bytes(info));
            return model::check_parses(&bytes).map_err(|e| format!("{e:#}"));
        }
        None => info.inputs.iter().map(TensorSpec::fixed_shape).collect::<Option<Shapes>>().map(PlanRequest::shapes),
    };
    match request {
        Some(request) => ensure_plan(info, &request).map(|_| ()),
        None => {
            let bytes = state::with(|s| s.registry.bytes(info));
            model::check_symbolic(&bytes, &info.inputs, info.weight_format).or_else(|symbolic| {
                let smallest =
                    info.inputs.iter().map(|i| i.shape.iter().map(|&d| d.max(1) as usize).collect()).collect();
                ensure_plan(info, &PlanRequest::shapes(smallest)).map(|_| ()).map_err(|e| {
                    symbolic.context(format!("nor does it build with its symbolic dimensions at 1: {e:#}"))
                })
            })
        }
    }
    .map_err(|e| format!("{e:#}"))
}

/// The plan request `build_plan` was sent: the plan-value inputs' values checked against their
/// declarations and `shapes` as a call's are.
fn checked_request(info: &ModelInfo, shapes: Shapes, values: Vec<InputTensor>) -> Result<PlanRequest, InferenceError> {
    let positions = plan_value_inputs(info);
    if values.len() != positions.len() {
        return Err(InferenceError::InvalidInput(format!(
            "{} values for {} plan-value inputs",
            values.len(),
            positions.len()
        )));
    }
    let max_elements = state::with(|s| s.config()).max_input_elements;
    let mut request = PlanRequest::shapes(shapes);
    for (&ix, value) in positions.iter().zip(values) {
        let spec = info.inputs.get(ix).ok_or_else(|| InferenceError::InvalidInput(format!("no input {ix}")))?;
        if value.shape.iter().map(|&d| d as usize).ne(request.key.shapes[ix].iter().copied()) {
            return Err(InferenceError::InvalidInput(format!("the value of \"{}\" has another shape", spec.name)));
        }
        let tensor = to_tensor(&value, spec, max_elements)?;
        request = request.with_value(ix, spec, tensor, value)?;
    }
    Ok(request)
}

/// The record of a version that may serve (active, or enabled by a maintainer).
pub fn serving(name: &str, version: Option<u32>) -> Result<ModelInfo, InferenceError> {
    state::with(|s| s.registry.serving(name, version))
}

/// Checks a caller's tensor against the model's declaration of that input (element type, shape
/// within its symbolic dimensions' bounds, size, finite floats) and makes it a tract value.
fn to_tensor(input: &InputTensor, spec: &TensorSpec, max_elements: u64) -> Result<TValue, InferenceError> {
    let got = input.data.dtype();
    if got != spec.dtype {
        return Err(InferenceError::InputDType { input: spec.name.clone(), expected: spec.dtype, got });
    }
    spec.admits(&input.shape).map_err(|mismatch| InferenceError::InputShape {
        input: spec.name.clone(),
        shape: input.shape.clone(),
        declared: spec.shape.clone(),
        max_shape: spec.max_shape.clone(),
        mismatch,
    })?;
    let count = input.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d)).unwrap_or(u64::MAX);
    if count > max_elements {
        return Err(InferenceError::InvalidInput(format!("{count} elements exceed the limit of {max_elements}")));
    }
    let shape: Vec<usize> = input.shape.iter().map(|&d| d as usize).collect();
    if let TensorData::F32Bytes(bytes) = &input.data {
        if !bytes.len().is_multiple_of(4) {
            return Err(InferenceError::InvalidInput(format!(
                "F32Bytes holds {} bytes, not a whole number of f32 (4 bytes each)",
                bytes.len()
            )));
        }
    }
    let len = input.data.len();
    if len as u64 != count {
        return Err(InferenceError::InvalidInput(format!("shape {} needs {count} elements, got {len}", dims(&shape))));
    }
    let not_finite = match &input.data {
        TensorData::F32(v) => v.iter().position(|x| !x.is_finite()),
        TensorData::F32Bytes(bytes) => first_not_finite(bytes),
        TensorData::F64(v) => v.iter().position(|x| !x.is_finite()),
        TensorData::F16(v) => v.iter().position(|&x| !f16::from_bits(x).is_finite()),
        _ => None,
    };
    if let Some(i) = not_finite {
        return Err(InferenceError::InvalidInput(format!(
            "element {i} is not finite (NaN and infinities are refused)"
        )));
    }
    let tensor = match &input.data {
        TensorData::F32(v) => Tensor::from_shape(&shape, v),
        // SAFETY: f32 is plain data (any four bytes are one); `from_raw` checks that the bytes
        // fill the shape, and copies them into storage aligned for f32, little-endian as wasm is.
        TensorData::F32Bytes(bytes) => unsafe { Tensor::from_raw::<f32>(&shape, bytes) },
        TensorData::F16(v) => Tensor::from_shape(&shape, &v.iter().map(|&x| f16::from_bits(x)).collect::<Vec<_>>()),
        TensorData::F64(v) => Tensor::from_shape(&shape, v),
        TensorData::I8(v) => Tensor::from_shape(&shape, v),
        TensorData::U8(v) => Tensor::from_shape(&shape, v.as_slice()),
        TensorData::I16(v) => Tensor::from_shape(&shape, v),
        TensorData::U16(v) => Tensor::from_shape(&shape, v),
        TensorData::I32(v) => Tensor::from_shape(&shape, v),
        TensorData::U32(v) => Tensor::from_shape(&shape, v),
        TensorData::I64(v) => Tensor::from_shape(&shape, v),
        TensorData::U64(v) => Tensor::from_shape(&shape, v),
        TensorData::Bool(v) => Tensor::from_shape(&shape, v),
        TensorData::Text(v) => tract_ndarray::ArrayD::from_shape_vec(shape.as_slice(), v.clone())
            .map(Tensor::from)
            .map_err(|e| tract_onnx::prelude::tract_data::internal::anyhow!("{e}")),
    };
    Ok(tensor.map_err(|e| InferenceError::InvalidInput(e.to_string()))?.into())
}

/// An output tensor's elements in their own element type (a symbolic-size dimension tract
/// computed, `TDim`, as i64).
fn to_data(value: &TValue) -> Result<TensorData, InferenceError> {
    let plain = value.try_as_plain_ram().map_err(engine_error)?;
    macro_rules! vec_of {
        ($t:ty) => {
            plain.as_slice::<$t>().map_err(engine_error)?.to_vec()
        };
    }
    let dt = value.datum_type().unquantized();
    Ok(if dt == f32::datum_type() {
        TensorData::F32(vec_of!(f32))
    } else if dt == f16::datum_type() {
        TensorData::F16(plain.as_slice::<f16>().map_err(engine_error)?.iter().map(|x| x.to_bits()).collect())
    } else if dt == f64::datum_type() {
        TensorData::F64(vec_of!(f64))
    } else if dt == i8::datum_type() {
        TensorData::I8(vec_of!(i8))
    } else if dt == u8::datum_type() {
        TensorData::U8(vec_of!(u8).into())
    } else if dt == i16::datum_type() {
        TensorData::I16(vec_of!(i16))
    } else if dt == u16::datum_type() {
        TensorData::U16(vec_of!(u16))
    } else if dt == i32::datum_type() {
        TensorData::I32(vec_of!(i32))
    } else if dt == u32::datum_type() {
        TensorData::U32(vec_of!(u32))
    } else if dt == i64::datum_type() {
        TensorData::I64(vec_of!(i64))
    } else if dt == u64::datum_type() {
        TensorData::U64(vec_of!(u64))
    } else if dt == bool::datum_type() {
        TensorData::Bool(vec_of!(bool))
    } else if dt == String::datum_type() {
        TensorData::Text(vec_of!(String))
    } else if dt == TDim::datum_type() {
        let dims = plain.as_slice::<TDim>().map_err(engine_error)?;
        TensorData::I64(dims.iter().map(|d| d.to_i64().map_err(engine_error)).collect::<Result<_, _>>()?)
    } else {
        return Err(InferenceError::Engine(format!("an output of element type {dt:?}, which no reply carries")));
    })
}

/// `1×3×48×192`, for messages to callers.
fn dims(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    dims.join("×")
}

/// Counts a job in flight, in all and for its caller, for as long as it lives (dropped on
/// completion, error or trap cleanup).
struct JobSlot(Principal);

impl JobSlot {
    fn acquire(caller: Principal) -> Result<JobSlot, InferenceError> {
        state::with_mut(|s| {
            let (limit, per_caller) = (s.config.get().max_jobs, s.config.get().max_jobs_per_caller);
            if s.jobs_in_flight >= limit {
                return Err(InferenceError::Busy { in_flight: s.jobs_in_flight, limit });
            }
            let mine = s.jobs_per_caller.entry(caller).or_default();
            if *mine >= per_caller {
                return Err(InferenceError::CallerBusy { in_flight: *mine, limit: per_caller });
            }
            *mine += 1;
            s.jobs_in_flight += 1;
            Ok(JobSlot(caller))
        })
    }
}

impl Drop for JobSlot {
    fn drop(&mut self) {
        state::with_mut(|s| {
            s.jobs_in_flight = s.jobs_in_flight.saturating_sub(1);
            if let Some(mine) = s.jobs_per_caller.get_mut(&self.0) {
                *mine = mine.saturating_sub(1);
                if *mine == 0 {
                    s.jobs_per_caller.remove(&self.0);
                }
            }
        });
    }
}

pub struct Outcome {
    pub outputs: TVec<TValue>,
    pub info: ModelInfo,
    pub messages: u32,
    /// What each node cost, when the job was prepared with [`Prepared::profiled`].
    pub costs: Vec<NodeCost>,
}

impl Outcome {
    /// The sha256 of the outputs, as a receipt gives it ([`inference_api::output_sha256`]).
    pub fn output_sha256(&self) -> Result<Vec<u8>, InferenceError> {
        crate::audit::hashing(|| {
            let outputs = self
                .outputs
                .iter()
                .map(|v| {
                    let shape = v.shape().iter().map(|&d| d as u64).collect();
                    Ok(OutputTensor { name: String::new(), shape, data: to_data(v)? })
                })
                .collect::<Result<Vec<_>, InferenceError>>()?;
            Ok(inference_api::output_sha256(&outputs))
        })
    }
}

/// A validated job with its slot taken, ready to run.
pub struct Prepared {
    caller: Principal,
    rule: Rule,
    info: ModelInfo,
    job: Job,
    budget: u64,
    query: bool,
    profiled: bool,
    _slot: Option<JobSlot>,
}

/// Runs `inputs` through a model version for `caller`, who holds `rule` (checked again after
/// every await). In a query it must finish within the query budget.
pub async fn run(
    caller: Principal,
    rule: Rule,
    info: ModelInfo,
    inputs: &[InputTensor],
    query: bool,
) -> Result<Outcome, InferenceError> {
    prepare(caller, rule, info, inputs, query).await?.run().await
}

/// Everything that can be refused before any computation (inputs, capacity), then builds (or
/// reuses) the plan. The caller's right to run `info` is the endpoint's to check first.
pub async fn prepare(
    caller: Principal,
    rule: Rule,
    info: ModelInfo,
    inputs: &[InputTensor],
    query: bool,
) -> Result<Prepared, InferenceError> {
    let config = state::with(|s| s.config());
    crate::quota::check(caller, ic_cdk::api::time())?;
    if inputs.len() != info.inputs.len() {
        return Err(InferenceError::InvalidInput(format!(
            "model {} takes {} inputs, got {}",
            info.name,
            info.inputs.len(),
            inputs.len()
        )));
    }
    let tensors = inputs
        .iter()
        .zip(&info.inputs)
        .map(|(t, spec)| to_tensor(t, spec, config.max_input_elements))
        .collect::<Result<TVec<_>, _>>()?;
    let request = PlanRequest::of(&info, &tensors, inputs)?;
    let slot = if query { None } else { Some(JobSlot::acquire(caller)?) };
    // A query cannot call: it builds a missing plan inline, within its own limit.
    let plan = if query {
        ensure_plan(&info, &request).map_err(engine_error)?
    } else {
        let plan = plan_in_own_message(&info, &request, caller).await?;
        rule(caller)?;
        plan
    };
    let job = Job::new(&plan.plan, request.run_inputs(tensors)).map_err(engine_error)?;
    let budget = if query { config.query_budget } else { config.update_budget };
    Ok(Prepared { caller, rule, info, job, budget, query, profiled: false, _slot: slot })
}

impl Prepared {
    /// Charges this message's instructions so far to the caller's quota (a query's would be
    /// discarded with the rest of its state changes, so queries are not charged).
    fn charge(&self) {
        if !self.query {
            crate::quota::charge(self.caller, ic_cdk::api::performance_counter(0), ic_cdk::api::time());
        }
    }

    /// Keeps each node's cost for the outcome.
    pub fn profiled(mut self) -> Prepared {
        self.profiled = true;
        self
    }

    /// Runs the job to its end, one budget per message.
    pub async fn run(self) -> Result<Outcome, InferenceError> {
        match self.drive(|_| Ok::<(), Infallible>(())).await {
            Ok(outcome) => outcome,
            Err(never) => match never {},
        }
    }

    /// Runs the job like [`Prepared::run`], asking `between` at every pause (after the next
    /// message has begun) whether to go on: its `Err(stop)` ends the job there with `Err(stop)`;
    /// otherwise the job's own outcome comes back as `Ok`.
    pub async fn drive<Stop>(
        mut self,
        mut between: impl FnMut(Advance) -> Result<(), Stop>,
    ) -> Result<Result<Outcome, InferenceError>, Stop> {
        let mut messages = 1;
        loop {
            let budget = self.budget;
            let progress = match self.job.advance(budget, || ic_cdk::api::performance_counter(0)) {
                Ok(progress) => progress,
                Err(e) => return Ok(Err(engine_error(e))),
            };
            match progress {
                Progress::Finished(outputs) => {
                    self.charge();
                    let total = ic_cdk::api::performance_counter(1);
                    state::with_mut(|s| s.measured.insert((self.info.name.clone(), self.info.version), total));
                    let costs = if self.profiled { self.job.costs() } else { Vec::new() };
                    return Ok(Ok(Outcome { outputs, info: self.info, messages, costs }));
                }
                Progress::Paused { .. } if self.query => {
                    return Ok(Err(InferenceError::TooExpensiveForQuery { budget }));
                }
                Progress::Paused { done, total } => {
                    self.charge();
                    if let Err(e) = yield_message().await {
                        return Ok(Err(e));
                    }
                    if let Err(e) = (self.rule)(self.caller) {
                        return Ok(Err(e.into()));
                    }
                    messages += 1;
                    between(Advance { steps_done: done as u32, steps_total: total as u32, messages })?;
                }
            }
        }
    }
}

/// Ends this message and continues in a new one with a fresh instruction budget.
async fn yield_message() -> Result<(), InferenceError> {
    if ic_cdk::api::canister_status() != ic_cdk::api::CanisterStatusCode::Running {
        return Err(InferenceError::Stopping);
    }
    let _awaiting = Awaiting::begin();
    ic_cdk::call::Call::unbounded_wait(ic_cdk::api::canister_self(), "yield_message").await.map(|_| ()).map_err(|e| {
        if ic_cdk::api::canister_status() != ic_cdk::api::CanisterStatusCode::Running {
            InferenceError::Stopping
        } else {
            InferenceError::CallFailed(e.to_string())
        }
    })
}

pub fn model_ref(info: &ModelInfo) -> ModelRef {
    ModelRef { name: info.name.clone(), version: info.version, sha256: info.sha256.clone() }
}

/// An output as f32 scores (what `classify` ranks).
fn flat(value: &TValue) -> Result<Vec<f32>, InferenceError> {
    let t = value.cast_to::<f32>().map_err(engine_error)?;
    let view = t.try_as_plain_ram().map_err(engine_error)?;
    Ok(view.as_slice::<f32>().map_err(engine_error)?.to_vec())
}

/// Rows of scores as a reply shows them: each row's `top_k` best (default 5), best first, the
/// columns named by the version's labels when there is one per column (an SVM without
/// probabilities scores pairs of classes, not classes), by their index otherwise.
pub struct Ranking<'a> {
    labels: Option<&'a [String]>,
    top_k: usize,
}

impl<'a> Ranking<'a> {
    /// Refused before any row is ranked when the reply would exceed its limit, rather than
    /// trapping on it.
    pub fn new(info: &'a ModelInfo, classes: usize, rows: usize, top_k: Option<u32>) -> Result<Self, InferenceError> {
        let labels = Some(info.labels.as_slice()).filter(|l| l.len() == classes);
        let top_k = (top_k.unwrap_or(5) as usize).min(classes);
        let longest = labels.map_or(20, |l| l.iter().map(String::len).max().unwrap_or(0)) as u64;
        let bytes = (rows as u64).saturating_mul((top_k as u64).saturating_mul(longest + 16) + 32);
        if bytes > MAX_OUTPUT_BYTES {
            return Err(InferenceError::OutputTooLarge { bytes, max: MAX_OUTPUT_BYTES });
        }
        Ok(Ranking { labels, top_k })
    }

    pub fn rank(&self, row: &[f32]) -> Vec<LabelScore> {
        let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
        // Best first; ties by index, so the order is deterministic.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(self.top_k);
        let name = |i: usize| self.labels.and_then(|l| l.get(i).cloned()).unwrap_or_else(|| i.to_string());
        ranked.into_iter().map(|(i, score)| LabelScore { label: name(i), index: i as u32, score }).collect()
    }
}

/// One classification per record: the scores are the first floating-point output, read as
/// rows of its last dimension (a record each); the model's own decisions, when it has them, are
/// its integer or text output with one value per record (an ONNX-ML classifier's label).
pub fn classification(outcome: Outcome, top_k: Option<u32>) -> Result<Classification, InferenceError> {
    let is_float = |v: &&TValue| v.datum_type().is_float();
    // Models without outputs are refused at upload; this keeps a bad plan from trapping.
    let scores = outcome
        .outputs
        .iter()
        .find(is_float)
        .ok_or_else(|| InferenceError::Engine("the model has no floating-point output to rank".into()))?;
    let classes = scores.shape().last().copied().unwrap_or(1).max(1);
    let scores = flat(scores)?;
    let records = scores.len() / classes;
    let is_label = |v: &&TValue| v.datum_type().is_integer() || v.datum_type() == String::datum_type();
    let decisions: Option<Vec<String>> = outcome
        .outputs
        .iter()
        .find(|v| is_label(v) && v.len() == records)
        .map(|v| v.cast_to::<String>().and_then(|t| Ok(t.try_as_plain_ram()?.as_slice::<String>()?.to_vec())))
        .transpose()
        .map_err(engine_error)?;
    let ranking = Ranking::new(&outcome.info, classes, records, top_k)?;
    let records: Vec<RecordClassification> = scores
        .chunks_exact(classes)
        .enumerate()
        .map(|(r, row)| RecordClassification {
            label: decisions.as_ref().map(|d| d[r].clone()),
            scores: ranking.rank(row),
        })
        .collect();
    Ok(Classification {
        labels: records.first().map(|r| r.scores.clone()).unwrap_or_default(),
        records,
        model: model_ref(&outcome.info),
        instructions: ic_cdk::api::performance_counter(1),
        messages: outcome.messages,
        receipt: None,
    })
}

/// The bytes an output takes in a reply (a string its length and 4).
fn reply_bytes(value: &TValue) -> u64 {
    if value.datum_type() == String::datum_type() {
        let Ok(view) = value.try_as_plain_ram() else { return u64::MAX };
        return view.as_slice::<String>().map_or(u64::MAX, |s| s.iter().map(|t| t.len() as u64 + 4).sum());
    }
    (value.len() * value.datum_type().size_of()) as u64
}

pub fn inference(outcome: Outcome) -> Result<Inference, InferenceError> {
    // Refused before any output is copied, rather than trapping on a reply over the limit.
    let bytes: u64 = outcome.outputs.iter().map(reply_bytes).sum();
    if bytes > MAX_OUTPUT_BYTES {
        return Err(InferenceError::OutputTooLarge { bytes, max: MAX_OUTPUT_BYTES });
    }
    let outputs = outcome
        .outputs
        .iter()
        .zip(outcome.info.outputs.iter().map(|o| o.name.clone()).chain(std::iter::repeat(String::new())))
        .map(|(v, name)| {
            Ok(OutputTensor { name, shape: v.shape().iter().map(|&d| d as u64).collect(), data: to_data(v)? })
        })
        .collect::<Result<_, InferenceError>>()?;
    Ok(Inference {
        outputs,
        model: model_ref(&outcome.info),
        instructions: ic_cdk::api::performance_counter(1),
        messages: outcome.messages,
        receipt: None,
    })
}

pub fn profile(outcome: Outcome) -> Profile {
    let nodes = outcome
        .costs
        .into_iter()
        .map(|c| NodeProfile { node: c.node, op: c.op, instructions: c.instructions })
        .collect();
    Profile {
        nodes,
        model: model_ref(&outcome.info),
        instructions: ic_cdk::api::performance_counter(1),
        messages: outcome.messages,
    }
}
