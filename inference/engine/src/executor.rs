//! A resumable executor over an optimised tract plan.
//!
//! A [`Job`] owns everything it needs between messages (the plan by `Arc`, the tract state with
//! its tensors): nothing borrows from a buffer a message could free. [`Job::advance`] evaluates
//! nodes in plan order while the meter stays under the budget, always at least one node, then
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

pub struct Job {
    state: TypedSimpleState,
    order: Vec<usize>,
    /// For each step, the node values no later step reads (freed after it, as tract does).
    frees: Vec<Vec<usize>>,
    next: usize,
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
        Ok(Job { state, order, frees, next: 0 })
    }

    pub fn total_steps(&self) -> usize {
        self.order.len()
    }

    pub fn steps_done(&self) -> usize {
        self.next
    }

    /// Runs nodes until `over_budget()` says to stop (checked before each node after the first).
    pub fn advance(&mut self, mut over_budget: impl FnMut() -> bool) -> TractResult<Progress> {
        let mut ran = 0;
        while self.next < self.order.len() {
            if ran > 0 && over_budget() {
                return Ok(Progress::Paused { done: self.next, total: self.order.len() });
            }
            let node = self.order[self.next];
            let is_preset_source =
                self.state.model().node(node).inputs.is_empty() && self.state.turn_state.values[node].is_some();
            if !is_preset_source {
                let inputs = self.state.prepare_inputs(node)?;
                self.state.compute_one_with_inputs(node, inputs).with_context(|| {
                    format!("evaluating node #{node} {}", self.state.model().node(node).name)
                })?;
            }
            for &freed in &self.frees[self.next] {
                self.state.turn_state.values[freed] = None;
            }
            self.next += 1;
            ran += 1;
        }
        Ok(Progress::Finished(self.state.outputs()?))
    }
}

/// Runs `plan` to completion in one go (natively, or in one message).
pub fn run_to_end(plan: &Arc<TypedSimplePlan>, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
    match Job::new(plan, inputs)?.advance(|| false)? {
        Progress::Finished(out) => Ok(out),
        Progress::Paused { .. } => unreachable!("never paused without a budget"),
    }
}
