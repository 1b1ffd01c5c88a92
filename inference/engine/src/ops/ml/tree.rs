//! Tree ensembles (`TreeEnsembleClassifier`, `TreeEnsembleRegressor`) evaluated over one flat
//! array of nodes: a visit reads one node (feature, threshold, the two children) and compares
//! one value, which is what keeps a visit to tens of instructions under the IC's metering
//! (`benchmarks/`: instructions per visited node). tract's own evaluator walked the leaf table
//! from its start at every leaf it reached, so its cost grew with the size of the forest.
//!
//! Results follow onnxruntime's rules (single-threaded): trees are runs of equal tree ids in
//! attribute order, rooted at their first node; scores accumulate in f32 in tree order, base
//! values last; the classifier's label comes from the raw scores, and its binary special cases
//! are kept (see `docs`: the README's tabular section).

use std::collections::HashMap;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::transform::{logistic, probit, PostTransform};

/// How a branch compares the row's feature value `x` with its threshold `t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

impl Mode {
    pub fn parse(name: &str) -> TractResult<Mode> {
        Ok(match name {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "LEAF" => Mode::Leaf,
            other => bail!("unknown node mode {other:?}"),
        })
    }
}

impl Mode {
    #[inline(always)]
    fn holds(self, x: f32, t: f32) -> bool {
        match self {
            Mode::Leq => x <= t,
            Mode::Lt => x < t,
            Mode::Gte => x >= t,
            Mode::Gt => x > t,
            Mode::Eq => x == t,
            Mode::Neq => x != t,
            Mode::Leaf => false,
        }
    }
}

/// Marks a node id as a leaf's: the other bits index [`Forest::leaves`].
const LEAF: u32 = 1 << 31;

/// A branch of the flat array, 16 bytes: `next[0]` is taken when its test fails, `next[1]` when
/// it holds; an id with [`LEAF`] set names a leaf.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Branch {
    feature: u32,
    threshold: f32,
    next: [u32; 2],
}

/// A leaf: the range of its weights, and its `nodes_values` entry (a one-target regressor's
/// value when the leaf has no weight).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Leaf {
    weights: [u32; 2],
    value: f32,
}

/// How the branches test their feature: most forests use one comparison and no missing-value
/// flag, and walk with that comparison compiled in; the others look up each branch's own.
#[derive(Clone, Debug, PartialEq)]
enum Tests {
    Uniform(Mode),
    PerBranch { modes: Vec<Mode>, missing_goes_true: Vec<bool> },
}

/// The attributes of a tree ensemble node, as ONNX spells them (the leaves' weights under
/// `class_*` for a classifier, `target_*` for a regressor).
#[derive(Clone, Debug, Default)]
pub struct ForestAttributes {
    pub tree_ids: Vec<i64>,
    pub node_ids: Vec<i64>,
    pub feature_ids: Vec<i64>,
    pub modes: Vec<Mode>,
    pub values: Vec<f32>,
    pub true_ids: Vec<i64>,
    pub false_ids: Vec<i64>,
    pub missing_tracks_true: Vec<i64>,
    pub weight_tree_ids: Vec<i64>,
    pub weight_node_ids: Vec<i64>,
    pub weight_ids: Vec<i64>,
    pub weights: Vec<f32>,
}

/// The trees, flattened. Invariants, established by [`Forest::build`] and relied on by the
/// unchecked walk: every branch id in `roots` and in a branch's `next` is below
/// `branches.len()`, every leaf id below `leaves.len()`, every leaf's weight range within
/// `weights`, and no walk revisits a branch (no cycles).
#[derive(Clone, Debug, PartialEq)]
pub struct Forest {
    branches: Vec<Branch>,
    leaves: Vec<Leaf>,
    /// The root of each tree, in summation order.
    roots: Vec<u32>,
    /// (output id, weight) of every leaf, leaf by leaf.
    weights: Vec<(u32, f32)>,
    tests: Tests,
    /// The highest feature any branch reads.
    max_feature: usize,
    /// Outputs (classes, targets) the weights are for: every weight's id is below it.
    outputs: usize,
}

impl Forest {
    pub fn build(a: &ForestAttributes, outputs: usize) -> TractResult<Forest> {
        let n = a.node_ids.len();
        ensure!(n > 0, "a tree ensemble without nodes");
        ensure!(n < LEAF as usize, "a tree ensemble of {n} nodes");
        for (name, len) in [
            ("nodes_treeids", a.tree_ids.len()),
            ("nodes_featureids", a.feature_ids.len()),
            ("nodes_modes", a.modes.len()),
            ("nodes_values", a.values.len()),
            ("nodes_truenodeids", a.true_ids.len()),
            ("nodes_falsenodeids", a.false_ids.len()),
        ] {
            ensure!(len == n, "{name} has {len} entries for {n} nodes");
        }
        let w = a.weights.len();
        ensure!(
            a.weight_tree_ids.len() == w && a.weight_node_ids.len() == w && a.weight_ids.len() == w,
            "the leaf weights' attributes differ in length"
        );
        // Each node's id in the flat arrays: branches and leaves numbered apart, in file order.
        let (mut branches, mut leaves) = (0u32, 0u32);
        let ids: Vec<u32> = a
            .modes
            .iter()
            .map(|&m| {
                let id = if m == Mode::Leaf { LEAF | leaves } else { branches };
                if m == Mode::Leaf {
                    leaves += 1
                } else {
                    branches += 1
                }
                id
            })
            .collect();
        ensure!(a.weights.len() < u32::MAX as usize, "a tree ensemble of {} leaf weights", a.weights.len());
        let mut index: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
        let mut roots = Vec::new();
        // The run (tree) each node belongs to: its children must be in it, so that a walk stays
        // within its tree and a row costs at most one visit per node.
        let mut run = Vec::with_capacity(n);
        for (i, &id) in ids.iter().enumerate() {
            ensure!(index.insert((a.tree_ids[i], a.node_ids[i]), i).is_none(), "node {i} is listed twice");
            if i == 0 || a.tree_ids[i] != a.tree_ids[i - 1] {
                roots.push(id);
            }
            run.push(roots.len());
        }
        // Each leaf's weights, in (tree, node, listed) order.
        let mut order: Vec<usize> = (0..w).collect();
        order.sort_by_key(|&k| (a.weight_tree_ids[k], a.weight_node_ids[k], k));
        let mut per_leaf: HashMap<usize, Vec<(u32, f32)>> = HashMap::new();
        for k in order {
            let Some(&node) = index.get(&(a.weight_tree_ids[k], a.weight_node_ids[k])) else {
                bail!(
                    "a leaf weight names node {} of tree {}, which does not exist",
                    a.weight_node_ids[k],
                    a.weight_tree_ids[k]
                )
            };
            let id = a.weight_ids[k];
            ensure!(id >= 0 && (id as usize) < outputs, "a leaf weight for output {id} of {outputs}");
            if a.modes[node] == Mode::Leaf {
                per_leaf.entry(node).or_default().push((id as u32, a.weights[k]));
            }
        }
        let mut forest = Forest {
            branches: Vec::with_capacity(branches as usize),
            leaves: Vec::with_capacity(leaves as usize),
            roots,
            weights: Vec::with_capacity(w),
            tests: Tests::Uniform(Mode::Leaf),
            max_feature: 0,
            outputs,
        };
        let (mut modes, mut missing) = (Vec::new(), Vec::new());
        for i in 0..n {
            if a.modes[i] == Mode::Leaf {
                let start = forest.weights.len() as u32;
                forest.weights.extend(per_leaf.remove(&i).unwrap_or_default());
                forest.leaves.push(Leaf { weights: [start, forest.weights.len() as u32], value: a.values[i] });
                continue;
            }
            let child = |id: i64| {
                index
                    .get(&(a.tree_ids[i], id))
                    .copied()
                    .filter(|&c| c != i && run[c] == run[i])
                    .map(|c| ids[c])
                    .with_context(|| {
                        format!("node {} of tree {} has no child {id} in its tree", a.node_ids[i], a.tree_ids[i])
                    })
            };
            let feature = u32::try_from(a.feature_ids[i]).context("a negative feature id")?;
            forest.max_feature = forest.max_feature.max(feature as usize);
            forest.branches.push(Branch {
                feature,
                threshold: a.values[i],
                next: [child(a.false_ids[i])?, child(a.true_ids[i])?],
            });
            modes.push(a.modes[i]);
            missing.push(a.missing_tracks_true.get(i) == Some(&1));
        }
        forest.tests = match modes.first() {
            Some(&first) if modes.iter().all(|&m| m == first) && !missing.contains(&true) => Tests::Uniform(first),
            _ => Tests::PerBranch { modes, missing_goes_true: missing },
        };
        forest.check_acyclic()?;
        Ok(forest)
    }

    /// Every walk from a root ends at a leaf: no cycles (a malformed file must not loop forever).
    fn check_acyclic(&self) -> TractResult<()> {
        // Per branch: 0 unseen, 1 on the current path, 2 done.
        let mut state = vec![0u8; self.branches.len()];
        for &root in &self.roots {
            let mut stack = vec![(root, false)];
            while let Some((id, children_done)) = stack.pop() {
                if id & LEAF != 0 {
                    continue;
                }
                let b = id as usize;
                if children_done {
                    state[b] = 2;
                    continue;
                }
                match state[b] {
                    1 => bail!("the trees have a cycle through branch {b}"),
                    2 => continue,
                    _ => {}
                }
                state[b] = 1;
                stack.push((id, true));
                for &child in &self.branches[b].next {
                    if child & LEAF == 0 && state[child as usize] == 1 {
                        bail!("the trees have a cycle through branch {child}");
                    }
                    stack.push((child, false));
                }
            }
        }
        Ok(())
    }

    pub fn trees(&self) -> usize {
        self.roots.len()
    }

    /// Features a row must have.
    pub fn features(&self) -> usize {
        self.max_feature.saturating_add(1)
    }

    /// Outputs its weights are for (classes or targets).
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    fn check_row(&self, row: &[f32]) {
        assert!(
            row.len() > self.max_feature,
            "a row of {} features for a forest reading {}",
            row.len(),
            self.features()
        );
    }

    /// Calls `f` with the leaf `row` reaches in each tree, in tree order.
    #[inline]
    fn for_each_leaf(&self, row: &[f32], mut f: impl FnMut(&Leaf)) {
        self.check_row(row);
        match &self.tests {
            Tests::Uniform(Mode::Leq) => self.roots.iter().for_each(|&r| f(self.walk(r, row, |_, x, t| x <= t))),
            Tests::Uniform(Mode::Lt) => self.roots.iter().for_each(|&r| f(self.walk(r, row, |_, x, t| x < t))),
            Tests::Uniform(mode) => self.roots.iter().for_each(|&r| f(self.walk(r, row, |_, x, t| mode.holds(x, t)))),
            Tests::PerBranch { modes, missing_goes_true } => {
                let holds = |b: usize, x: f32, t: f32| (missing_goes_true[b] && x.is_nan()) || modes[b].holds(x, t);
                self.roots.iter().for_each(|&r| f(self.walk(r, row, holds)))
            }
        }
    }

    /// From `root` down to a leaf, taking `next[holds(branch, x, threshold)]` at each branch.
    #[inline(always)]
    fn walk(&self, root: u32, row: &[f32], mut holds: impl FnMut(usize, f32, f32) -> bool) -> &Leaf {
        let mut id = root;
        while id & LEAF == 0 {
            // SAFETY: a branch id is below `branches.len()` and a branch's feature at most
            // `max_feature`, below `row.len()` (the struct's invariants; `for_each_leaf` checks
            // the row).
            let branch = unsafe { self.branches.get_unchecked(id as usize) };
            let x = unsafe { *row.get_unchecked(branch.feature as usize) };
            id = branch.next[holds(id as usize, x, branch.threshold) as usize];
        }
        // SAFETY: a leaf id is below `leaves.len()` (the struct's invariants).
        unsafe { self.leaves.get_unchecked((id & !LEAF) as usize) }
    }

    #[inline(always)]
    fn leaf_weights(&self, leaf: &Leaf) -> &[(u32, f32)] {
        // SAFETY: a leaf's weight range lies within `weights` (the struct's invariants).
        unsafe { self.weights.get_unchecked(leaf.weights[0] as usize..leaf.weights[1] as usize) }
    }

    /// Nodes `row` visits in every tree, the branches it passes through and the leaf it ends
    /// at: what the benchmark divides an ensemble's instructions by.
    pub fn visits(&self, row: &[f32]) -> u64 {
        self.check_row(row);
        let mut visits = 0;
        let mut holds = |b: usize, x: f32, t: f32| {
            visits += 1;
            match &self.tests {
                Tests::Uniform(mode) => mode.holds(x, t),
                Tests::PerBranch { modes, missing_goes_true } => {
                    (missing_goes_true[b] && x.is_nan()) || modes[b].holds(x, t)
                }
            }
        };
        for &root in &self.roots {
            self.walk(root, row, &mut holds);
        }
        visits + self.roots.len() as u64
    }
}

/// `TreeEnsembleClassifier`: a label and a score per class for each row.
#[derive(Clone, Debug, PartialEq)]
pub struct TreeClassifier {
    pub forest: Forest,
    pub labels: Vec<i64>,
    /// Text class labels (`classlabels_strings`), in class order: `labels` are then the class
    /// indices, and the operator answers these texts.
    pub text_labels: Vec<String>,
    pub base: Vec<f32>,
    pub post: PostTransform,
    /// Two classes, every weight on one class id.
    pub binary: bool,
    pub weights_non_negative: bool,
}

impl TreeClassifier {
    pub fn new(forest: Forest, labels: Vec<i64>, base: &[f32], post: PostTransform, a: &ForestAttributes) -> Self {
        let distinct: std::collections::BTreeSet<i64> = a.weight_ids.iter().copied().collect();
        TreeClassifier {
            binary: labels.len() == 2 && distinct.len() == 1,
            // onnxruntime's test is "no weight below 0": a NaN weight counts as non-negative.
            weights_non_negative: a.weights.iter().all(|&w| w >= 0.0 || w.is_nan()),
            forest,
            labels,
            text_labels: vec![],
            base: base.to_vec(),
            post,
        }
    }

    pub fn classes(&self) -> usize {
        self.labels.len()
    }

    /// The label of `row` and its scores (one per class) written into `scores`.
    pub fn classify(&self, row: &[f32], scores: &mut [f32], seen: &mut [bool]) -> i64 {
        let n = self.classes();
        scores.fill(0.0);
        seen.fill(false);
        let outputs = self.forest.outputs();
        assert!(scores.len() >= outputs && seen.len() >= outputs, "a score for every class the weights name");
        self.forest.for_each_leaf(row, |leaf| {
            for &(class, weight) in self.forest.leaf_weights(leaf) {
                // SAFETY: a weight's class is below the forest's outputs (checked by
                // `Forest::build`), at most the length of `scores` and `seen` (asserted above).
                unsafe {
                    *scores.get_unchecked_mut(class as usize) += weight;
                    *seen.get_unchecked_mut(class as usize) = true;
                }
            }
        });
        if n == 2 {
            return self.binary_label(scores, seen);
        }
        for (k, base) in self.base.iter().enumerate().take(n) {
            if seen[k] {
                scores[k] += base;
            } else {
                scores[k] = *base;
                seen[k] = true;
            }
        }
        // The first strictly greatest of the scored classes, on the raw scores.
        let mut best: Option<usize> = None;
        for c in 0..n {
            if seen[c] && best.is_none_or(|b| scores[c] > scores[b]) {
                best = Some(c);
            }
        }
        for c in 0..n {
            if !seen[c] {
                scores[c] = 0.0;
            }
        }
        self.post.apply(scores);
        self.labels[best.unwrap_or(0)]
    }

    /// Two classes: onnxruntime's rules, where one class's score may stand for both.
    fn binary_label(&self, p: &mut [f32], seen: &mut [bool]) -> i64 {
        let mut both = true;
        let mut second_class: i8 = -1;
        match self.base.len() {
            2 => {
                if seen[1] {
                    p[1] = self.base[1] + p[0];
                    p[0] = -p[1];
                } else {
                    p[0] += self.base[0];
                    p[1] += self.base[1];
                }
            }
            1 => {
                p[0] += self.base[0];
                both = seen[1];
            }
            0 => {
                second_class = 3;
                both = seen[1];
            }
            _ => {}
        }
        let positive = if both && seen[1] {
            p[1]
        } else if seen[0] {
            p[0]
        } else {
            0.0
        };
        let label = if self.binary {
            let (up, threshold) = if self.weights_non_negative { (0, 0.5) } else { (2, 0.0) };
            let above = positive > threshold;
            second_class = if above { up } else { up + 1 };
            self.labels[above as usize]
        } else {
            (positive > 0.0) as i64
        };
        let shown = |c: usize| if seen[c] { p[c] } else { 0.0 };
        if both {
            let (a, b) = (shown(0), shown(1));
            p[0] = a;
            p[1] = b;
            self.post.apply(p);
        } else {
            let s = shown(0);
            let pair = match (self.post, second_class) {
                (PostTransform::Probit, _) => [probit(s), 0.0],
                (_, 0 | 1) => [1.0 - s, s],
                (PostTransform::Logistic, 2 | 3) => [logistic(-s), logistic(s)],
                (_, 2 | 3) => [-s, s],
                _ => [s, 0.0],
            };
            p.copy_from_slice(&pair);
        }
        label
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

impl Aggregate {
    pub fn parse(name: Option<&str>) -> TractResult<Aggregate> {
        Ok(match name.unwrap_or("SUM") {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => bail!("unknown aggregate_function {other:?}"),
        })
    }
}

/// `TreeEnsembleRegressor`: `targets` values for each row.
#[derive(Clone, Debug, PartialEq)]
pub struct TreeRegressor {
    pub forest: Forest,
    pub targets: usize,
    pub base: Vec<f32>,
    pub aggregate: Aggregate,
    pub post: PostTransform,
}

impl TreeRegressor {
    pub fn regress(&self, row: &[f32], out: &mut [f32], seen: &mut [bool]) {
        out.fill(0.0);
        seen.fill(false);
        let single = self.targets == 1;
        self.forest.for_each_leaf(row, |leaf| {
            let weights = self.forest.leaf_weights(leaf);
            // One target: the leaf's first weight (its value when it has none), whatever its id.
            let first = [(0, weights.first().map_or(leaf.value, |w| w.1))];
            let weights = if single { &first[..] } else { weights };
            for &(target, w) in weights {
                let (score, has) = (&mut out[target as usize], &mut seen[target as usize]);
                match self.aggregate {
                    Aggregate::Sum | Aggregate::Average => *score += w,
                    Aggregate::Min => *score = if !*has || w < *score { w } else { *score },
                    Aggregate::Max => *score = if !*has || w > *score { w } else { *score },
                }
                *has = true;
            }
        });
        let trees = self.forest.trees() as f32;
        let base = |t: usize| -> f32 {
            match (single, self.base.len()) {
                (true, 1) => self.base[0],
                (false, n) if n == self.targets => self.base[t],
                _ => 0.0,
            }
        };
        for t in 0..self.targets {
            out[t] = match self.aggregate {
                Aggregate::Sum => out[t] + base(t),
                Aggregate::Average => out[t] / trees + base(t),
                Aggregate::Min | Aggregate::Max => base(t) + if seen[t] { out[t] } else { 0.0 },
            };
        }
        if single {
            if self.post == PostTransform::Probit {
                out[0] = probit(out[0]);
            }
        } else {
            self.post.apply(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tree 0: x0 <= 0.5 ? leaf(+1 to class 1) : leaf(+1 to class 0); tree 1: a single leaf.
    fn attributes() -> ForestAttributes {
        ForestAttributes {
            tree_ids: vec![0, 0, 0, 1],
            node_ids: vec![0, 1, 2, 0],
            feature_ids: vec![0, 0, 0, 0],
            modes: vec![Mode::Leq, Mode::Leaf, Mode::Leaf, Mode::Leaf],
            values: vec![0.5, 0.0, 0.0, 0.0],
            true_ids: vec![1, 0, 0, 0],
            false_ids: vec![2, 0, 0, 0],
            missing_tracks_true: vec![],
            weight_tree_ids: vec![0, 0, 1],
            weight_node_ids: vec![1, 2, 0],
            weight_ids: vec![1, 0, 2],
            weights: vec![1.0, 1.0, 0.25],
        }
    }

    #[test]
    fn a_row_follows_its_branches_to_the_leaves_it_reaches() {
        let a = attributes();
        let forest = Forest::build(&a, 3).unwrap();
        let classifier = TreeClassifier::new(forest, vec![10, 20, 30], &[], PostTransform::None, &a);
        let (mut scores, mut seen) = ([0.0; 3], [false; 3]);
        assert_eq!(classifier.classify(&[0.2], &mut scores, &mut seen), 20);
        assert_eq!(scores, [0.0, 1.0, 0.25]);
        assert_eq!(classifier.classify(&[0.9], &mut scores, &mut seen), 10);
        // NaN goes to the false branch without the missing-value flag.
        assert_eq!(classifier.classify(&[f32::NAN], &mut scores, &mut seen), 10);
        // One branch and a leaf in the first tree, a lone leaf in the second.
        assert_eq!(classifier.forest.visits(&[0.2]), 3);
    }

    #[test]
    fn malformed_forests_are_refused() {
        let mut cyclic = attributes();
        cyclic.modes[1] = Mode::Leq;
        cyclic.true_ids[1] = 0;
        cyclic.false_ids[1] = 2;
        assert!(Forest::build(&cyclic, 3).is_err());
        let mut dangling = attributes();
        dangling.true_ids[0] = 7;
        assert!(Forest::build(&dangling, 3).is_err());
        let mut out_of_range = attributes();
        out_of_range.weight_ids[0] = 3;
        assert!(Forest::build(&out_of_range, 3).is_err());
        // Tree ids 0, 0, 1, 0: the last node starts a run (a tree) of its own, so the root may
        // not take it as a child (walks stay within their tree: a row costs at most a visit
        // per node).
        let mut across = attributes();
        across.tree_ids = vec![0, 0, 1, 0];
        across.node_ids = vec![0, 1, 0, 2];
        across.weight_tree_ids = vec![0, 0, 1];
        across.weight_node_ids = vec![1, 2, 0];
        let error = Forest::build(&across, 3).unwrap_err().to_string();
        assert!(error.contains("in its tree"), "{error}");
    }
}
