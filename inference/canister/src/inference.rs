//! Classification: validate the input, build (or reuse) the plan, and run the resumable job
//! across as many messages as it needs, awaiting a call to this canister between them.

use inference_api::{
    Classification, DType, Inference, InferenceError, InputTensor, LabelScore, ModelInfo, ModelRef, NodeProfile,
    OutputTensor, Profile, RegistryError, TensorData,
};
use inference_engine::executor::{Job, NodeCost, Progress};
use inference_engine::jobs::Advance;
use inference_engine::model;
use tract_onnx::prelude::*;

use crate::state;

/// tract's error chain as one sentence (its Display with causes), never its Debug dump.
pub fn engine_error(e: impl std::fmt::Display) -> InferenceError {
    InferenceError::Engine(format!("{e:#}"))
}

/// The plan of a model version, built in a message of its own when not already in the heap
/// (after an upgrade): that message gets the whole instruction limit, and if building does
/// not fit it (or traps), its effects are rolled back and the caller gets this typed error
/// instead of a trap of its own message.
pub async fn plan_in_own_message(info: &ModelInfo) -> Result<model::LoadedModel, String> {
    let key = (info.name.clone(), info.version);
    if let Some(p) = state::with(|s| s.plans.get(&key).cloned()) {
        return Ok(p);
    }
    let call = ic_cdk::call::Call::unbounded_wait(ic_cdk::api::canister_self(), "build_plan")
        .with_args(&(&info.name, info.version));
    let built: Result<(), String> = match call.await {
        Ok(response) => match response.candid::<Result<(), RegistryError>>() {
            Ok(built) => built.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(format!(
            "building the plan of {} v{} did not complete in one message (the IC's instruction limit, or a trap): {e}",
            info.name, info.version
        )),
    };
    built?;
    state::with(|s| s.plans.get(&key).cloned()).ok_or_else(|| "the plan was built but is gone".to_string())
}

/// Builds and caches the plan of a model version, if not already in the heap.
pub fn ensure_plan(info: &ModelInfo) -> TractResult<model::LoadedModel> {
    let key = (info.name.clone(), info.version);
    if let Some(p) = state::with(|s| s.plans.get(&key).cloned()) {
        return Ok(p);
    }
    let bytes = state::with(|s| s.registry.bytes(info));
    let loaded = model::load(&bytes, &info.inputs, info.weight_format)?;
    state::with_mut(|s| s.plans.insert(key, loaded.clone()));
    Ok(loaded)
}

fn to_tensor(input: &InputTensor, info: &ModelInfo, ix: usize, max_elements: u64) -> Result<TValue, InferenceError> {
    let spec = info
        .inputs
        .get(ix)
        .ok_or_else(|| InferenceError::InvalidInput(format!("model {} has {} inputs", info.name, info.inputs.len())))?;
    let expected = spec.concrete_shape();
    let shape: Vec<usize> = input.shape.iter().map(|&d| d as usize).collect();
    if shape != expected {
        return Err(InferenceError::InvalidInput(format!(
            "input \"{}\" has shape {}; the model expects {}",
            spec.name,
            dims(&shape),
            dims(&expected)
        )));
    }
    let count: usize = shape.iter().product();
    if count as u64 > max_elements {
        return Err(InferenceError::InvalidInput(format!("{count} elements exceed the limit of {max_elements}")));
    }
    let len = input.data.len();
    if len != count {
        return Err(InferenceError::InvalidInput(format!("shape {} needs {count} elements, got {len}", dims(&shape))));
    }
    let tensor = match (&input.data, spec.dtype) {
        (TensorData::F32(v), DType::F32) => {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(InferenceError::InvalidInput(format!(
                    "element {i} is not finite (NaN and infinities are refused)"
                )));
            }
            Tensor::from_shape(&shape, v)
        }
        (TensorData::I8(v), DType::I8) => Tensor::from_shape(&shape, v),
        (TensorData::U8(v), DType::U8) => Tensor::from_shape(&shape, v.as_slice()),
        (_, dtype) => return Err(InferenceError::InvalidInput(format!("input \"{}\" takes {dtype} data", spec.name))),
    };
    Ok(tensor.map_err(|e| InferenceError::InvalidInput(e.to_string()))?.into())
}

/// `1×3×48×192`, for messages to callers.
fn dims(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    dims.join("×")
}

/// Counts a job in flight for as long as it lives (dropped on completion, error or trap cleanup).
struct JobSlot;

impl JobSlot {
    fn acquire() -> Result<JobSlot, InferenceError> {
        state::with_mut(|s| {
            let limit = s.config.get().max_jobs;
            if s.jobs_in_flight >= limit {
                return Err(InferenceError::Busy { in_flight: s.jobs_in_flight, limit });
            }
            s.jobs_in_flight += 1;
            Ok(JobSlot)
        })
    }
}

impl Drop for JobSlot {
    fn drop(&mut self) {
        state::with_mut(|s| s.jobs_in_flight = s.jobs_in_flight.saturating_sub(1));
    }
}

pub struct Outcome {
    pub outputs: TVec<TValue>,
    pub info: ModelInfo,
    pub messages: u32,
    /// What each node cost, when the job was prepared with [`Prepared::profiled`].
    pub costs: Vec<NodeCost>,
}

/// A validated job with its slot taken, ready to run.
pub struct Prepared {
    info: ModelInfo,
    job: Job,
    budget: u64,
    query: bool,
    profiled: bool,
    _slot: Option<JobSlot>,
}

/// Runs `inputs` through a model. In a query it must finish within the query budget.
pub async fn run(
    name: &str,
    version: Option<u32>,
    inputs: &[InputTensor],
    query: bool,
) -> Result<Outcome, InferenceError> {
    prepare(name, version, inputs, query).await?.drive(|_| Ok(())).await
}

/// Everything that can be refused before any computation (model, inputs, capacity), then
/// builds (or reuses) the plan. The caller's right to run it is the endpoint's to check.
pub async fn prepare(
    name: &str,
    version: Option<u32>,
    inputs: &[InputTensor],
    query: bool,
) -> Result<Prepared, InferenceError> {
    let info = state::with(|s| s.registry.info(name, version))?;
    let config = state::with(|s| s.config());
    if inputs.len() != info.inputs.len() {
        return Err(InferenceError::InvalidInput(format!(
            "model {name} takes {} inputs, got {}",
            info.inputs.len(),
            inputs.len()
        )));
    }
    let tensors = inputs
        .iter()
        .enumerate()
        .map(|(ix, t)| to_tensor(t, &info, ix, config.max_input_elements))
        .collect::<Result<TVec<_>, _>>()?;
    let slot = if query { None } else { Some(JobSlot::acquire()?) };
    // A query cannot call: it builds a missing plan inline, within its own limit.
    let plan = if query {
        ensure_plan(&info).map_err(engine_error)?
    } else {
        plan_in_own_message(&info).await.map_err(InferenceError::Engine)?
    };
    let job = Job::new(&plan.plan, tensors).map_err(engine_error)?;
    let budget = if query { config.query_budget } else { config.update_budget };
    Ok(Prepared { info, job, budget, query, profiled: false, _slot: slot })
}

impl Prepared {
    /// Keeps each node's cost for the outcome.
    pub fn profiled(mut self) -> Prepared {
        self.profiled = true;
        self
    }

    /// Runs the job to its end, one budget per message. `between` is called at every pause,
    /// after the next message has begun; an error from it ends the job.
    pub async fn drive(
        mut self,
        mut between: impl FnMut(Advance) -> Result<(), InferenceError>,
    ) -> Result<Outcome, InferenceError> {
        let mut messages = 1;
        loop {
            let budget = self.budget;
            let progress = self.job.advance(budget, || ic_cdk::api::performance_counter(0)).map_err(engine_error)?;
            match progress {
                Progress::Finished(outputs) => {
                    let total = ic_cdk::api::performance_counter(1);
                    state::with_mut(|s| s.measured.insert((self.info.name.clone(), self.info.version), total));
                    let costs = if self.profiled { self.job.costs() } else { Vec::new() };
                    return Ok(Outcome { outputs, info: self.info, messages, costs });
                }
                Progress::Paused { .. } if self.query => return Err(InferenceError::TooExpensiveForQuery { budget }),
                Progress::Paused { done, total } => {
                    yield_message().await?;
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
    ic_cdk::call::Call::unbounded_wait(ic_cdk::api::canister_self(), "yield_message").await.map(|_| ()).map_err(|e| {
        if ic_cdk::api::canister_status() != ic_cdk::api::CanisterStatusCode::Running {
            InferenceError::Stopping
        } else {
            InferenceError::CallFailed(e.to_string())
        }
    })
}

fn model_ref(info: &ModelInfo) -> ModelRef {
    ModelRef { name: info.name.clone(), version: info.version, sha256: info.sha256.clone() }
}

fn flat(value: &TValue) -> Result<Vec<f32>, InferenceError> {
    let t = value.cast_to::<f32>().map_err(engine_error)?;
    let view = t.try_as_plain_ram().map_err(engine_error)?;
    Ok(view.as_slice::<f32>().map_err(engine_error)?.to_vec())
}

pub fn classification(outcome: Outcome, top_k: Option<u32>) -> Result<Classification, InferenceError> {
    let scores = flat(&outcome.outputs[0])?;
    let mut ranked: Vec<(usize, f32)> = scores.into_iter().enumerate().collect();
    // Best first; ties by index, so the order is deterministic.
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(top_k.unwrap_or(5) as usize);
    let labels = ranked
        .into_iter()
        .map(|(i, score)| LabelScore {
            label: outcome.info.labels.get(i).cloned().unwrap_or_else(|| i.to_string()),
            index: i as u32,
            score,
        })
        .collect();
    Ok(Classification {
        labels,
        model: model_ref(&outcome.info),
        instructions: ic_cdk::api::performance_counter(1),
        messages: outcome.messages,
    })
}

pub fn inference(outcome: Outcome) -> Result<Inference, InferenceError> {
    let outputs = outcome
        .outputs
        .iter()
        .zip(outcome.info.outputs.iter().map(|o| o.name.clone()).chain(std::iter::repeat(String::new())))
        .map(|(v, name)| {
            Ok(OutputTensor { name, shape: v.shape().iter().map(|&d| d as u64).collect(), data: flat(v)? })
        })
        .collect::<Result<_, InferenceError>>()?;
    Ok(Inference {
        outputs,
        model: model_ref(&outcome.info),
        instructions: ic_cdk::api::performance_counter(1),
        messages: outcome.messages,
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
