//! Lays attention's scores out keys by queries, so that the probabilities are the values'
//! product's operand as they lie.
//!
//! After [`super::batched_matmul`] and [`super::softmax`], a transformer's attention is three of
//! our nodes: the queries' product by the keys (`[…, queries, keys]`), the softmax of each
//! query's row ([`RowSoftmax`]), and the probabilities' product by the values. That last
//! product runs transposed (`Cᵀ = Vᵀ · Pᵀ`, for the kernel's widest tile; see
//! [`BatchedMatMul`]), so it read the probabilities through a transposition into a scratch
//! matrix, every value of every head. Here the first product writes the scores transposed
//! (`[…, keys, queries]`: computed as `Kᵀ`'s product by `Qᵀ`, written in place), the softmax
//! goes down the columns ([`ColumnSoftmax`]), and the last product reads the probabilities in
//! place. Every value is the same bits: the products' sums are the same products in the same
//! order, and the column softmax is the row softmax's arithmetic lane for lane.

use tract_onnx::prelude::*;

use super::{apply_all, Context, Pass, Stage};
use crate::ops::batched_matmul::{Axis, BatchedMatMul};
use crate::ops::softmax::{ColumnSoftmax, RowSoftmax};

/// The pass: [`replace`], after optimisation.
pub struct AttentionLayout;

impl Pass for AttentionLayout {
    fn name(&self) -> &'static str {
        "attention scores keys by queries"
    }

    fn stage(&self) -> Stage {
        Stage::Optimized
    }

    fn run(&self, model: &mut TypedModel, _: &Context) -> TractResult<usize> {
        replace(model)
    }
}

/// Lays out every attention [`transposed`] finds; answers how many.
pub fn replace(model: &mut TypedModel) -> TractResult<usize> {
    let patches = (0..model.nodes().len()).map(|id| transposed(model, id)).collect::<TractResult<Vec<_>>>()?;
    apply_all(model, patches.into_iter().flatten().collect())
}

/// The one node that reads `outlet`, if nothing else does (the model's outputs included), and
/// reads it as its input `slot`.
fn only_reader(model: &TypedModel, outlet: OutletId, slot: usize) -> TractResult<Option<usize>> {
    let readers = model.outlet_successors(outlet);
    let only = readers.len() == 1 && readers[0].slot == slot && !model.output_outlets()?.contains(&outlet);
    Ok(only.then(|| readers[0].node))
}

/// For the [`RowSoftmax`] `id`, the patch that lays its attention out keys by queries: when its
/// input is a [`BatchedMatMul`] whose rows and columns are the last two axes of its output (one
/// softmax row per query, its columns contiguous, the queries a whole number of vectors) and
/// its output is the first operand of a [`BatchedMatMul`] that sums over those columns, each
/// read by the next alone.
fn transposed(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let node = model.node(id);
    let Some(softmax) = node.op_as::<RowSoftmax>() else { return Ok(None) };
    let scores = node.inputs[0];
    let Some(qk) = model.node(scores.node).op_as::<BatchedMatMul>() else { return Ok(None) };
    if only_reader(model, scores, 0)? != Some(id) {
        return Ok(None);
    }
    let Some(next) = only_reader(model, OutletId::new(id, 0), 0)? else { return Ok(None) };
    let Some(context) = model.node(next).op_as::<BatchedMatMul>() else { return Ok(None) };
    let (Some(qk_out), Some(context)) = (scores_transposed(qk, softmax.row_len), probabilities_transposed(context, qk))
    else {
        return Ok(None);
    };
    let qk_node = model.node(scores.node);
    let context_node = model.node(next);
    let mut patch = TypedModelPatch::default();
    let taps = patch.taps(model, &qk_node.inputs)?;
    let scores = patch.wire_node(&qk_node.name, qk_out, &taps)?[0];
    let mut inputs = vec![scores];
    inputs.extend(patch.taps(model, &node.inputs[1..])?);
    let probabilities = patch.wire_node(&node.name, ColumnSoftmax::of(softmax), &inputs)?[0];
    let values = patch.tap_model(model, context_node.inputs[1])?;
    let wired = patch.wire_node(&context_node.name, context, &[probabilities, values])?;
    patch.shunt_outside(model, OutletId::new(next, 0), wired[0])?;
    Ok(Some(patch))
}

/// The queries' product by the keys writing `[…, keys, queries]`, when it writes `[…, queries,
/// keys]` (its rows and columns the last two axes, `row_len` columns) today and the queries
/// are a whole number of vectors (the column softmax's lanes).
fn scores_transposed(qk: &BatchedMatMul, row_len: usize) -> Option<BatchedMatMul> {
    let shape = &qk.shapes[2];
    let rank = shape.len();
    let last_two = rank >= 2 && shape[rank - 2] == qk.m.len && shape[rank - 1] == qk.n.len;
    let row_major = qk.m.strides[2] == qk.n.len && qk.n.strides[2] == 1;
    // The queries become the column softmax's columns, the keys its rows.
    if !(last_two && row_major && ColumnSoftmax::takes(qk.n.len, qk.m.len) && qk.n.len == row_len) {
        return None;
    }
    let mut out = qk.clone();
    out.m.strides[2] = 1;
    out.n.strides[2] = qk.m.len;
    out.shapes[2].swap(rank - 2, rank - 1);
    Some(out)
}

/// The probabilities' product by the values reading them `[…, keys, queries]`, when it reads
/// `[…, queries, keys]` as the scores' product writes them, rows and columns the last two axes
/// (its rows the queries, its sum over the keys), today.
fn probabilities_transposed(context: &BatchedMatMul, qk: &BatchedMatMul) -> Option<BatchedMatMul> {
    let same = context.shapes[0] == qk.shapes[2]
        && context.m.len == qk.m.len
        && context.k.len == qk.n.len
        && context.m.strides[0] == qk.m.strides[2]
        && context.k.strides[0] == qk.n.strides[2]
        && context.batch.len() == qk.batch.len()
        && context.batch.iter().zip(&qk.batch).all(|(c, q)| c.len == q.len && c.strides[0] == q.strides[2]);
    if !same {
        return None;
    }
    let mut out = context.clone();
    out.m = Axis { len: context.m.len, strides: [1, context.m.strides[1], context.m.strides[2]] };
    out.k = Axis { len: context.k.len, strides: [context.m.len, context.k.strides[1], context.k.strides[2]] };
    let rank = out.shapes[0].len();
    out.shapes[0].swap(rank - 2, rank - 1);
    Some(out)
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::ops::einsum::EinSum;

    use super::*;
    use crate::kernels::qdq::{Dequantize, Quantize};
    use crate::kernels::softmax::FakeQuantize;

    /// Attention as our passes leave a BERT encoder's: queries `[queries, heads, depth]` by keys
    /// into `[1, heads, tokens, tokens]` ([`BatchedMatMul`]), the softmax of each query's row,
    /// scaled and masked where `softmax.scaled` is some, the probabilities by the values.
    fn attention(queries: usize, keys: usize, heads: usize, depth: usize, softmax: RowSoftmax) -> TypedModel {
        let mut model = TypedModel::default();
        let q = model.add_source("q", f32::fact([queries, heads, depth])).unwrap();
        let [k, v] = ["k", "v"].map(|name| model.add_source(name, f32::fact([keys, heads, depth])).unwrap());
        let mask = model.add_source("mask", f32::fact([1, 1, 1, keys])).unwrap();
        let product = |expr: &str, shapes| {
            let einsum = EinSum::new(expr.parse().unwrap(), f32::datum_type());
            super::super::batched_matmul::product_of(&einsum, shapes).unwrap()
        };
        let (q_shape, kv_shape) = (vec![queries, heads, depth], vec![keys, heads, depth]);
        let scores_shape = vec![1, heads, queries, keys];
        let qk = product("mbk,nbk->abmn", [q_shape, kv_shape.clone(), scores_shape.clone()]);
        let context = product("abmk,kbn->ambn", [scores_shape, kv_shape, vec![1, queries, heads, depth]]);
        let scores = model.wire_node("qk", qk, &[q, k]).unwrap()[0];
        let inputs = if softmax.scaled.is_some() { vec![scores, mask] } else { vec![scores] };
        let probabilities = model.wire_node("probs", softmax, &inputs).unwrap()[0];
        let context = model.wire_node("context", context, &[probabilities, v]).unwrap();
        model.select_output_outlets(&context).unwrap();
        model
    }

    /// The model's output for operands and a mask made from the token count, as bits.
    fn run(model: &TypedModel, queries: usize, keys: usize, heads: usize, depth: usize) -> Vec<u32> {
        let value = |i: usize, seed: usize| (((i * 37 + seed) % 101) as f32 - 50.0) / 9.0;
        let operand = |tokens: usize, seed| {
            let values: Vec<f32> = (0..tokens * heads * depth).map(|i| value(i, seed)).collect();
            tensor1(&values).into_shape(&[tokens, heads, depth]).unwrap().into_tvalue()
        };
        let mask: Vec<f32> = (0..keys).map(|i| if i % 6 == 4 { -1e4 } else { 0.0 }).collect();
        let mask = tensor1(&mask).into_shape(&[1, 1, 1, keys]).unwrap().into_tvalue();
        let inputs = tvec!(operand(queries, 1), operand(keys, 2), operand(keys, 3), mask);
        let out = model.clone().into_runnable().unwrap().run(inputs).unwrap();
        out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()
    }

    /// The scores laid out keys by queries, their softmax down the columns and the values'
    /// product reading them in place give the same bits as the row layout: token counts of
    /// whole strips of sixteen columns and not, fewer queries than keys, a plain softmax, one
    /// scaled and masked, and one between a QDQ model's fake quantizations.
    #[test]
    fn attention_keys_by_queries_is_the_same_bits() {
        let fake = |scale: f32, zero_point: i32| -> FakeQuantize {
            (Quantize { inv_scale: 1.0 / scale, zero_point, dt: u8::datum_type() }, Dequantize { scale, zero_point })
        };
        let scale = Some(0.353_553_38f32.to_bits());
        for (queries, keys, heads, depth) in [(16, 16, 2, 8), (20, 20, 3, 8), (36, 36, 2, 12), (8, 20, 2, 8)] {
            for softmax in [
                RowSoftmax::plain(keys),
                RowSoftmax { row_len: keys, scaled: scale, before: None, after: None },
                RowSoftmax {
                    row_len: keys,
                    scaled: scale,
                    before: Some(fake(0.1, 128)),
                    after: Some(fake(1.0 / 255.0, 0)),
                },
            ] {
                let rows = attention(queries, keys, heads, depth, softmax.clone());
                let want = run(&rows, queries, keys, heads, depth);
                let mut columns = rows.clone();
                assert_eq!(replace(&mut columns).unwrap(), 1, "{columns}");
                assert!(columns
                    .nodes()
                    .iter()
                    .any(|n| n.op_as::<ColumnSoftmax>() == Some(&ColumnSoftmax::of(&softmax))));
                assert!(!columns.nodes().iter().any(|n| n.op_is::<RowSoftmax>()), "{columns}");
                assert_eq!(run(&columns, queries, keys, heads, depth), want, "{queries} by {keys}, {softmax:?}");
            }
        }
    }

    /// Scores that something else also reads keep the row layout.
    #[test]
    fn scores_read_elsewhere_stay_rows() {
        let mut model = attention(16, 16, 2, 8, RowSoftmax::plain(16));
        let softmax = model.nodes().iter().find(|n| n.op_is::<RowSoftmax>()).unwrap().id;
        let mut outputs = model.output_outlets().unwrap().to_vec();
        outputs.push(model.node(softmax).inputs[0]);
        model.select_output_outlets(&outputs).unwrap();
        assert_eq!(replace(&mut model).unwrap(), 0, "{model}");
    }

    /// A query count that is not a whole number of vectors (the column softmax's lanes) keeps
    /// the row layout, and the model still runs.
    #[test]
    fn queries_of_no_whole_vector_stay_rows() {
        let mut model = attention(6, 16, 2, 8, RowSoftmax::plain(16));
        assert_eq!(replace(&mut model).unwrap(), 0, "{model}");
        assert!(model.nodes().iter().any(|n| n.op_is::<RowSoftmax>()), "{model}");
        assert_eq!(run(&model, 6, 16, 2, 8).len(), 6 * 2 * 8);
    }
}
