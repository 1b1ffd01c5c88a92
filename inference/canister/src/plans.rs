//! The heap cache of built plans, by model version, concrete input shapes (a model with a
//! symbolic dimension has one plan per shape calls bring) and the values of its plan-value
//! inputs (`ModelInfo::plan_value_inputs`: one plan per axes, target shape… calls bring),
//! within a heap budget: the least recently
//! used plans are dropped when a new one would exceed it, and rebuilt on their next use. Without
//! a budget, running many versions in turn pinned every plan until the heap ran out and every
//! build trapped (#13).
//!
//! A plan's heap is estimated from its model file (weights dominate a plan; f16 weights are
//! widened to f32 when it is built). A dropped plan's memory is freed once no running job
//! holds it (jobs hold their plan through an `Arc`).

use std::collections::BTreeMap;

use inference_api::{ModelInfo, RegistryError, WeightFormat};
use inference_engine::model::LoadedModel;

/// Heap a plan holds beyond its weights (graph, buffers), estimated.
const PLAN_OVERHEAD_BYTES: u64 = 1 << 20;
/// Failed builds remembered at most (then forgotten all at once: a caller who cycles through
/// more shapes than this pays for a build at each, charged to its quota).
const FAILURES_KEPT: usize = 256;

/// The concrete shape of each input a plan was built for.
pub type Shapes = Vec<Vec<usize>>;

/// What one plan of a version is built for: each input's shape, and the little-endian bytes
/// of each plan-value input's value, in the order of `ModelInfo::plan_value_inputs` (their
/// element types and shapes are the version's and `shapes`'s).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlanKey {
    pub shapes: Shapes,
    pub values: Vec<Vec<u8>>,
}

impl PlanKey {
    /// A plan for these shapes, with no plan-value inputs.
    pub fn shapes(shapes: Shapes) -> PlanKey {
        PlanKey { shapes, values: vec![] }
    }
}

type Key = (String, u32, PlanKey);

struct Entry {
    plan: LoadedModel,
    /// The sha256 of the model the plan was built from.
    sha256: Vec<u8>,
    bytes: u64,
    last_used: u64,
}

#[derive(Default)]
pub struct PlanCache {
    entries: BTreeMap<Key, Entry>,
    clock: u64,
    bytes: u64,
    /// Builds that failed for good, with why: a version's bytes never change and its number is
    /// never given again, so the same build fails the same way.
    failures: BTreeMap<Key, RegistryError>,
}

/// The heap a version's plan is estimated to take.
pub fn estimated_bytes(info: &ModelInfo) -> u64 {
    let widening = if info.weight_format == WeightFormat::F16 { 2 } else { 1 };
    info.size.saturating_mul(widening) + PLAN_OVERHEAD_BYTES
}

impl PlanCache {
    /// The cached plan of exactly this model (same version and bytes) for these input shapes and values,
    /// marked as used.
    pub fn get(&mut self, info: &ModelInfo, key: &PlanKey) -> Option<LoadedModel> {
        self.clock += 1;
        let entry = self.entries.get_mut(&(info.name.clone(), info.version, key.clone()))?;
        if entry.sha256 != info.sha256 {
            return None;
        }
        entry.last_used = self.clock;
        Some(entry.plan.clone())
    }

    /// Keeps a newly built plan, dropping the least recently used others while the total
    /// would exceed `budget` (a plan larger than the budget alone is still kept: it is in use).
    pub fn insert(&mut self, info: &ModelInfo, key: PlanKey, plan: LoadedModel, budget: u64) {
        let key = (info.name.clone(), info.version, key);
        self.drop_entry(&key);
        let bytes = estimated_bytes(info);
        while self.bytes + bytes > budget {
            let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| k.clone()) else {
                break;
            };
            self.drop_entry(&oldest);
        }
        self.clock += 1;
        self.bytes += bytes;
        self.entries.insert(key, Entry { plan, sha256: info.sha256.clone(), bytes, last_used: self.clock });
    }

    /// Drops every plan of a version (all its shapes and values).
    pub fn remove(&mut self, name: &str, version: u32) {
        let keys: Vec<Key> = self.entries.keys().filter(|(n, v, _)| n == name && *v == version).cloned().collect();
        keys.iter().for_each(|k| self.drop_entry(k));
        self.failures.retain(|(n, v, _), _| !(n == name && *v == version));
    }

    /// Why building this version's plan for these shapes and values failed, if it did.
    pub fn failed(&self, info: &ModelInfo, key: &PlanKey) -> Option<RegistryError> {
        let key = (info.name.clone(), info.version, key.clone());
        self.failures.get(&key).cloned()
    }

    /// Remembers a build that failed for good.
    pub fn remember_failure(&mut self, info: &ModelInfo, key: PlanKey, error: RegistryError) {
        if self.failures.len() >= FAILURES_KEPT {
            self.failures.clear();
        }
        self.failures.insert((info.name.clone(), info.version, key), error);
    }

    fn drop_entry(&mut self, key: &Key) {
        if let Some(e) = self.entries.remove(key) {
            self.bytes -= e.bytes;
        }
    }

    /// Plans held now, and their estimated heap.
    pub fn usage(&self) -> (usize, u64) {
        (self.entries.len(), self.bytes)
    }
}
