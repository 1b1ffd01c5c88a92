//! Classification: validate the input, build (or reuse) the plan, and run the resumable job
//! across as many messages as it needs, awaiting a call to this canister between them.

use candid::{CandidType, Deserialize, Principal};
use inference_engine::executor::{Job, NodeCost, Progress};
use inference_engine::model;
use inference_engine::types::{DType, ModelInfo, RegistryError};
use tract_onnx::prelude::*;

use crate::{auth, state};

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I8(Vec<i8>),
    U8(serde_bytes::ByteBuf),
}

/// A tensor sent by the caller: row-major data and its shape.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct InputTensor {
    pub shape: Vec<u64>,
    pub data: TensorData,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct ClassifyRequest {
    pub model: String,
    /// The active version when absent.
    pub version: Option<u32>,
    pub input: InputTensor,
    /// How many labels to return, best first (default 5).
    pub top_k: Option<u32>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct LabelScore {
    pub label: String,
    pub index: u32,
    pub score: f32,
}

/// Which model answered: the audit trail of a decision.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ModelRef {
    pub name: String,
    pub version: u32,
    pub sha256: Vec<u8>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct Classification {
    pub labels: Vec<LabelScore>,
    pub model: ModelRef,
    /// Instructions the whole inference took (all its messages).
    pub instructions: u64,
    pub messages: u32,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct OutputTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub data: Vec<f32>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct Inference {
    pub outputs: Vec<OutputTensor>,
    pub model: ModelRef,
    pub instructions: u64,
    pub messages: u32,
}

/// The instructions one node of the optimised plan took, in plan order.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NodeProfile {
    /// The node's name: the ONNX node's, or tract's derivation of it (`Conv.3.einsum.pack_b`).
    pub node: String,
    /// tract's operator after optimisation (`OptMatMul`, `QuantizeLinearU8`, `DepthWiseConv`…).
    pub op: String,
    pub instructions: u64,
}

/// Where an inference's instructions went, node by node.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct Profile {
    pub nodes: Vec<NodeProfile>,
    pub model: ModelRef,
    /// The whole inference (all its messages), including what no node accounts for.
    pub instructions: u64,
    pub messages: u32,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum InferenceError {
    NotAuthorized { caller: Principal },
    UnknownModel(String),
    UnknownVersion { name: String, version: u32 },
    InvalidInput(String),
    /// Too many jobs in flight; try again later.
    Busy { in_flight: u32, limit: u32 },
    /// The canister is stopping (e.g. for an upgrade); the job was abandoned.
    Stopping,
    /// The model does not fit a query's budget; use `classify`.
    TooExpensiveForQuery { budget: u64 },
    /// The model could not be built or run; tract's explanation.
    Engine(String),
    /// Yielding to the next message failed.
    CallFailed(String),
    /// No job with this id belongs to the caller (never submitted, someone else's, or expired).
    UnknownJob(u64),
    /// The job is still running; ask again later.
    Pending { steps_done: u32, steps_total: u32 },
    /// The job was cancelled by its submitter.
    Cancelled,
    /// The job ended without finishing: one of its messages trapped, or the canister was
    /// upgraded while it ran. Nothing of it was kept; submit it again.
    Interrupted(String),
}

impl From<RegistryError> for InferenceError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::UnknownModel(n) => InferenceError::UnknownModel(n),
            RegistryError::UnknownVersion { name, version } => InferenceError::UnknownVersion { name, version },
            other => InferenceError::Engine(format!("{other:?}")),
        }
    }
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
    let call = ic_cdk::call::Call::unbounded_wait(ic_cdk::api::canister_self(), "build_plan").with_args(&(&info.name, info.version));
    let built: Result<(), String> = match call.await {
        Ok(response) => response.candid::<Result<(), String>>().map_err(|e| e.to_string()).and_then(|r| r),
        Err(e) => Err(format!("building the plan of {} v{} did not complete in one message (the IC's instruction limit, or a trap): {e}", info.name, info.version)),
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
    let spec = info.inputs.get(ix).ok_or_else(|| InferenceError::InvalidInput(format!("model {} has {} inputs", info.name, info.inputs.len())))?;
    let expected = spec.concrete_shape();
    let shape: Vec<usize> = input.shape.iter().map(|&d| d as usize).collect();
    if shape != expected {
        return Err(InferenceError::InvalidInput(format!("input {:?} has shape {shape:?}; the model expects {expected:?}", spec.name)));
    }
    let count: usize = shape.iter().product();
    if count as u64 > max_elements {
        return Err(InferenceError::InvalidInput(format!("{count} elements exceed the limit of {max_elements}")));
    }
    let len = match &input.data {
        TensorData::F32(v) => v.len(),
        TensorData::I8(v) => v.len(),
        TensorData::U8(v) => v.len(),
    };
    if len != count {
        return Err(InferenceError::InvalidInput(format!("shape {shape:?} needs {count} elements, got {len}")));
    }
    let tensor = match (&input.data, spec.dtype) {
        (TensorData::F32(v), DType::F32) => {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(InferenceError::InvalidInput(format!("element {i} is not finite (NaN and infinities are refused)")));
            }
            Tensor::from_shape(&shape, v)
        }
        (TensorData::I8(v), DType::I8) => Tensor::from_shape(&shape, v),
        (TensorData::U8(v), DType::U8) => Tensor::from_shape(&shape, v.as_slice()),
        (_, dtype) => return Err(InferenceError::InvalidInput(format!("input {:?} takes {dtype:?} data", spec.name))),
    };
    Ok(tensor.map_err(|e| InferenceError::InvalidInput(e.to_string()))?.into())
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

/// How far a job has come, reported at each pause.
#[derive(Clone, Copy, Debug)]
pub struct Advance {
    pub steps_done: u32,
    pub steps_total: u32,
    pub messages: u32,
}

/// Runs `inputs` through a model. In a query it must finish within the query budget.
pub async fn run(caller: Principal, name: &str, version: Option<u32>, inputs: &[InputTensor], query: bool) -> Result<Outcome, InferenceError> {
    prepare(caller, name, version, inputs, query).await?.drive(|_| Ok(())).await
}

/// Everything that can be refused before any computation: access, model, inputs, capacity; then
/// builds (or reuses) the plan.
pub async fn prepare(caller: Principal, name: &str, version: Option<u32>, inputs: &[InputTensor], query: bool) -> Result<Prepared, InferenceError> {
    if !auth::may_infer(caller) {
        return Err(InferenceError::NotAuthorized { caller });
    }
    prepare_authorized(name, version, inputs, query).await
}

/// [`prepare`] for a caller whose right to run the model was checked otherwise (a maintainer
/// profiling a model).
pub async fn prepare_authorized(name: &str, version: Option<u32>, inputs: &[InputTensor], query: bool) -> Result<Prepared, InferenceError> {
    let info = state::with(|s| s.registry.info(name, version))?;
    let config = state::with(|s| s.config.get().clone());
    if inputs.len() != info.inputs.len() {
        return Err(InferenceError::InvalidInput(format!("model {name} takes {} inputs, got {}", info.inputs.len(), inputs.len())));
    }
    let tensors = inputs
        .iter()
        .enumerate()
        .map(|(ix, t)| to_tensor(t, &info, ix, config.max_input_elements))
        .collect::<Result<TVec<_>, _>>()?;
    let slot = if query { None } else { Some(JobSlot::acquire()?) };
    // A query cannot call: it builds a missing plan inline, within its own limit.
    let plan = if query {
        ensure_plan(&info).map_err(|e| InferenceError::Engine(format!("{e:?}")))?
    } else {
        plan_in_own_message(&info).await.map_err(InferenceError::Engine)?
    };
    let job = Job::new(&plan.plan, tensors).map_err(|e| InferenceError::Engine(format!("{e:?}")))?;
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
    pub async fn drive(mut self, mut between: impl FnMut(Advance) -> Result<(), InferenceError>) -> Result<Outcome, InferenceError> {
        let mut messages = 1;
        loop {
            let budget = self.budget;
            let progress = self
                .job
                .advance(budget, || ic_cdk::api::performance_counter(0))
                .map_err(|e| InferenceError::Engine(format!("{e:?}")))?;
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
    ic_cdk::call::Call::unbounded_wait(ic_cdk::api::canister_self(), "yield_message")
        .await
        .map(|_| ())
        .map_err(|e| {
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
    let t = value.cast_to::<f32>().map_err(|e| InferenceError::Engine(e.to_string()))?;
    let view = t.try_as_plain_ram().map_err(|e| InferenceError::Engine(e.to_string()))?;
    Ok(view.as_slice::<f32>().map_err(|e| InferenceError::Engine(e.to_string()))?.to_vec())
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
        .map(|(v, name)| Ok(OutputTensor { name, shape: v.shape().iter().map(|&d| d as u64).collect(), data: flat(v)? }))
        .collect::<Result<_, InferenceError>>()?;
    Ok(Inference { outputs, model: model_ref(&outcome.info), instructions: ic_cdk::api::performance_counter(1), messages: outcome.messages })
}

pub fn profile(outcome: Outcome) -> Profile {
    let nodes = outcome.costs.into_iter().map(|c| NodeProfile { node: c.node, op: c.op, instructions: c.instructions }).collect();
    Profile { nodes, model: model_ref(&outcome.info), instructions: ic_cdk::api::performance_counter(1), messages: outcome.messages }
}
