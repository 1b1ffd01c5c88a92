//! A resumable executor over an optimised tract plan.
//!
//! A [`Job`] owns everything it needs between messages (the plan by `Arc`, the tract state with
//! its tensors): nothing borrows from a buffer a message could free. [`Job::advance`] evaluates
//! nodes in plan order while the message's instruction counter stays under the budget, always at least one node, then
//! returns so the shell can await a self-call (a new message with a fresh budget) and continue.
//! Each node is evaluated exactly once on exactly the same inputs whatever the budget, so the
//! output bits do not depend on how the work was split.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::TractErrorContext;
use tract_onnx::tract_core::model::typed::{TypedSimplePlan, TypedSimpleState};

/// Where a job stands after [`Job::advance`].
#[derive(Debug)]
pub enum Progress {
    /// More nodes remain; call `advance` again (in a new message).
    Paused { done: usize, total: usize },
    /// All nodes ran; the outputs.
    Finished(TVec<TValue>),
}

/// What one node of the plan cost in a run (instructions on the IC; zero where nothing counts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCost {
    pub node: String,
    /// tract's operator name after optimisation (e.g. `OptMatMul`, `QuantizeLinearU8`).
    pub op: String,
    pub instructions: u64,
}

pub struct Job {
    state: TypedSimpleState,
    order: Vec<usize>,
    /// For each step, the node values no later step reads (freed after it, as tract does).
    frees: Vec<Vec<usize>>,
    next: usize,
    /// Counter units each step took, measured by the counter given to [`Job::advance`].
    costs: Vec<u64>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({}/{})", self.next, self.order.len())
    }
}

impl Job {
    /// Prepares a run of `plan` on `inputs` (validated by the caller against the model).
    pub fn new(plan: &Arc<TypedSimplePlan>, inputs: TVec<TValue>) -> TractResult<Job> {
        let mut state = plan.spawn()?;
        state.set_inputs(inputs)?;
        if plan.model().inputs.is_empty() {
            // A plan without inputs (each folded into it as a value, `model::load_with_values`)
            // is computed whole here: tract readies a run's values when it is given its first
            // input, and there is none. Such a graph is constants and what they compute.
            state.exec()?;
            return Ok(Job { state, order: vec![], frees: vec![], next: 0, costs: vec![] });
        }
        let model = plan.model();
        let order: Vec<usize> = plan.order_without_consts().to_vec();
        let outputs: Vec<usize> = model.outputs.iter().map(|o| o.node).collect();
        let mut last_use = vec![None; model.nodes().len()];
        for (step, &n) in order.iter().enumerate() {
            for input in &model.node(n).inputs {
                last_use[input.node] = Some(step);
            }
        }
        let mut frees = vec![Vec::new(); order.len()];
        for (node, step) in last_use.iter().enumerate() {
            if let Some(step) = step {
                if !outputs.contains(&node) {
                    frees[*step].push(node);
                }
            }
        }
        let costs = vec![0; order.len()];
        Ok(Job { state, order, frees, next: 0, costs })
    }

    pub fn total_steps(&self) -> usize {
        self.order.len()
    }

    pub fn steps_done(&self) -> usize {
        self.next
    }

    /// Runs nodes while `counter()` (the instructions of the current message) stays at or under
    /// `budget`, checked before each node after the first; always runs at least one node. The
    /// same readings give each node's cost, so profiling costs no extra reading.
    pub fn advance(&mut self, budget: u64, mut counter: impl FnMut() -> u64) -> TractResult<Progress> {
        let mut previous: Option<(usize, u64)> = None;
        loop {
            let now = counter();
            let ran_in_this_call = previous.is_some();
            if let Some((step, started)) = previous {
                self.costs[step] += now.saturating_sub(started);
            }
            if self.next == self.order.len() {
                return Ok(Progress::Finished(self.state.outputs()?));
            }
            if ran_in_this_call && now > budget {
                return Ok(Progress::Paused { done: self.next, total: self.order.len() });
            }
            self.step()?;
            previous = Some((self.next, now));
            self.next += 1;
        }
    }

    /// Evaluates the next node. The values no later node reads are released before it runs, as
    /// tract's own loop does: the node then holds the only reference to such an input and can
    /// reuse its buffer (a reshape or an in-place arithmetic op) instead of copying it.
    fn step(&mut self) -> TractResult<()> {
        let node = self.order[self.next];
        let is_preset_source =
            self.state.model().node(node).inputs.is_empty() && self.state.turn_state.values[node].is_some();
        let inputs = if is_preset_source { None } else { Some(self.state.prepare_inputs(node)?) };
        for &freed in &self.frees[self.next] {
            self.state.turn_state.values[freed] = None;
        }
        if let Some(inputs) = inputs {
            self.state
                .compute_one_with_inputs(node, inputs)
                .with_context(|| format!("evaluating node #{node} {}", self.state.model().node(node).name))?;
        }
        Ok(())
    }

    /// What each node has cost so far, in plan order.
    pub fn costs(&self) -> Vec<NodeCost> {
        let model = self.state.model();
        self.order
            .iter()
            .zip(&self.costs)
            .map(|(&n, &instructions)| {
                let node = model.node(n);
                NodeCost { node: node.name.clone(), op: node.op.name().to_string(), instructions }
            })
            .collect()
    }
}

/// Runs `plan` to completion in one go (natively, or in one message).
pub fn run_to_end(plan: &Arc<TypedSimplePlan>, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
    match Job::new(plan, inputs)?.advance(u64::MAX, || 0)? {
        Progress::Finished(out) => Ok(out),
        Progress::Paused { .. } => unreachable!("never paused without a budget"),
    }
}
