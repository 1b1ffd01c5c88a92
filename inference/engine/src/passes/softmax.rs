//! Gives an optimised model's f32 softmaxes over their last axis, when it is a whole number of
//! vectors long (where tract runs its wasm rows kernel), our [`RowSoftmax`], node for node: the
//! same values in the canister, bit for bit (see [`crate::kernels::softmax`]). Where its input is
//! attention's scale and mask (tract's `OptBinChain(Mul+Add)` by a constant scalar and a row of
//! one value per column), those are computed in the softmax's first pass, with the same f32
//! operations, instead of a pass of their own.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::OptBinChain;
use tract_onnx::tract_core::ops::math::{Add, Mul};
use tract_onnx::tract_core::ops::nn::{Softmax, SoftmaxKind};

use super::{all_f32, apply_all, swap_operators, Context, Pass, Stage};
use crate::kernels::softmax::FakeQuantize;
use crate::ops::qdq::{Conversion, Qdq};
use crate::ops::softmax::RowSoftmax;

/// The pass: [`replace`], after optimisation.
pub struct SoftmaxAccelerate;

impl Pass for SoftmaxAccelerate {
    fn name(&self) -> &'static str {
        "softmax accelerate"
    }

    fn stage(&self) -> Stage {
        Stage::Optimized
    }

    fn run(&self, model: &mut TypedModel, _: &Context) -> TractResult<usize> {
        replace(model)
    }
}

/// Replaces each f32 `Softmax` over the last axis whose length is a multiple of four; answers
/// how many.
pub fn replace(model: &mut TypedModel) -> TractResult<usize> {
    let mut changed = swap_operators(model, |model, node| {
        let Some(op) = node.op_as::<Softmax>() else { return Ok(None) };
        if op.kind != SoftmaxKind::Softmax || op.quant_output_dt.is_some() || node.inputs.len() != 1 {
            return Ok(None);
        }
        let fact = model.outlet_fact(node.inputs[0])?;
        let rank = fact.rank();
        let row_len = fact.shape.last().and_then(|d| d.as_i64()).and_then(|n| usize::try_from(n).ok());
        let fits = all_f32(model, node)?
            && rank > 0
            && op.axes.as_slice() == [rank - 1]
            && row_len.is_some_and(|n| n > 0 && n.is_multiple_of(4));
        Ok(row_len.filter(|_| fits).map(RowSoftmax::plain))
    })?;
    let patches = (0..model.nodes().len()).map(|id| scaled_and_masked(model, id)).collect::<TractResult<Vec<_>>>()?;
    changed += apply_all(model, patches.into_iter().flatten().collect())?;
    let patches = (0..model.nodes().len()).map(|id| fake_quantized(model, id)).collect::<TractResult<Vec<_>>>()?;
    changed += apply_all(model, patches.into_iter().flatten().collect())?;
    Ok(changed)
}

/// The fake quantization (our `Qdq` of both conversions) an outlet's value comes from, if that
/// node's value goes nowhere else: its parameters and its input.
fn fake_quantize_into(model: &TypedModel, outlet: OutletId) -> TractResult<Option<(FakeQuantize, OutletId)>> {
    let node = model.node(outlet.node);
    let Some(&Qdq(Conversion::Both(q, d))) = node.op_as::<Qdq>() else { return Ok(None) };
    let only_here = model.outlet_successors(outlet).len() == 1 && !model.output_outlets()?.contains(&outlet);
    Ok(only_here.then_some(((q, d), node.inputs[0])))
}

/// For a [`RowSoftmax`] of a QDQ model, the patch that takes the fake quantization of its input
/// (the attention scores') and of its output (the probabilities') into it, each where there is
/// one that nothing else reads.
fn fake_quantized(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let node = model.node(id);
    let Some(op) = node.op_as::<RowSoftmax>().filter(|op| op.before.is_none() && op.after.is_none()) else {
        return Ok(None);
    };
    let mut op = op.clone();
    let mut inputs = node.inputs.clone();
    if let Some((fake, input)) = fake_quantize_into(model, inputs[0])? {
        op.before = Some(fake);
        inputs[0] = input;
    }
    // The output's fake quantization, where it is the output's one reader.
    let mut output = OutletId::new(id, 0);
    if let [next] = model.outlet_successors(output) {
        let is_output = model.output_outlets()?.contains(&output);
        if let (false, Some(&Qdq(Conversion::Both(q, d)))) = (is_output, model.node(next.node).op_as::<Qdq>()) {
            op.after = Some((q, d));
            output = OutletId::new(next.node, 0);
        }
    }
    if op.before.is_none() && op.after.is_none() {
        return Ok(None);
    }
    let mut patch = TypedModelPatch::default();
    let taps = patch.taps(model, &inputs)?;
    let wired = patch.wire_node(&node.name, op, &taps)?;
    patch.shunt_outside(model, output, wired[0])?;
    Ok(Some(patch))
}

/// For a [`RowSoftmax`] whose input is tract's `OptBinChain(Mul+Add)` of its own (attention's
/// scores times a constant scalar, plus a mask of one value per column) and nothing else's, the
/// patch that computes both in the softmax's first pass.
fn scaled_and_masked(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let node = model.node(id);
    let Some(RowSoftmax { row_len, scaled: None, before: None, after: None }) = node.op_as::<RowSoftmax>().cloned()
    else {
        return Ok(None);
    };
    let chain_node = model.node(node.inputs[0].node);
    let Some(chain) = chain_node.op_as::<OptBinChain>() else { return Ok(None) };
    let steps: Vec<_> = chain.steps.iter().map(|s| (s.binop.is::<Mul>(), s.binop.is::<Add>())).collect();
    if steps != [(true, false), (false, true)] || chain_node.inputs.len() != 3 {
        return Ok(None);
    }
    let only_here =
        model.outlet_successors(node.inputs[0]).len() == 1 && !model.output_outlets()?.contains(&node.inputs[0]);
    let [a, scale, mask] = [0, 1, 2].map(|i| chain_node.inputs[i]);
    let scale = model.outlet_fact(scale)?.konst.clone();
    let scale = scale.filter(|s| s.datum_type() == f32::datum_type() && s.len() == 1);
    let mask_fact = model.outlet_fact(mask)?;
    let mask_is_per_column = mask_fact.datum_type == f32::datum_type()
        && mask_fact.shape.last() == Some(&row_len.to_dim())
        && mask_fact.shape.iter().rev().skip(1).all(|d| *d == 1.to_dim());
    let a_fits = model.outlet_fact(a)?.datum_type == f32::datum_type()
        && model.outlet_fact(a)?.shape == model.outlet_fact(node.inputs[0])?.shape;
    let Some(scale) = scale.filter(|_| only_here && mask_is_per_column && a_fits) else { return Ok(None) };
    let scale = scale.try_as_plain_ram()?.as_slice::<f32>()?[0];
    let mut patch = TypedModelPatch::default();
    let taps = patch.taps(model, &[a, mask])?;
    let op = RowSoftmax { row_len, scaled: Some(scale.to_bits()), before: None, after: None };
    let wired = patch.wire_node(&node.name, op, &taps)?;
    patch.shunt_outside(model, OutletId::new(id, 0), wired[0])?;
    Ok(Some(patch))
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::internal::{EvalContext, EvalOp};

    use super::*;

    /// A softmax over a last axis of 12 becomes ours, with tract's values within rounding
    /// (natively tract runs x86_64's kernels); over 10 values, over another axis, or a log-softmax,
    /// it stays tract's.
    #[test]
    fn softmaxes_over_whole_vectors_of_the_last_axis_are_ours() {
        let wire = |shape: &[usize], axis: usize, kind: SoftmaxKind| {
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact(shape)).unwrap();
            let op = Softmax { axes: tvec!(axis), quant_output_dt: None, kind };
            let y = model.wire_node("softmax", op, &[x]).unwrap();
            model.select_output_outlets(&y).unwrap();
            model.into_optimized().unwrap()
        };
        let mut ours = wire(&[2, 3, 12], 2, SoftmaxKind::Softmax);
        assert_eq!(replace(&mut ours).unwrap(), 1);
        let values: Vec<f32> = (0..72).map(|i| (i as f32 * 0.7).sin() * 5.0).collect();
        let input = tensor1(&values).into_shape(&[2, 3, 12]).unwrap();
        let node = ours.nodes().iter().find_map(|n| n.op_as::<RowSoftmax>()).unwrap();
        let got = node.eval(&EvalContext::out_of_plan(), tvec!(input.clone().into_tvalue())).unwrap();
        let want = wire(&[2, 3, 12], 2, SoftmaxKind::Softmax)
            .into_runnable()
            .unwrap()
            .run(tvec!(input.into_tvalue()))
            .unwrap();
        assert_eq!(got[0].shape(), want[0].shape());
        let (got, want) = (got[0].try_as_plain_ram().unwrap(), want[0].try_as_plain_ram().unwrap());
        for (a, b) in got.as_slice::<f32>().unwrap().iter().zip(want.as_slice::<f32>().unwrap()) {
            assert!((a - b).abs() <= 1e-6 + 1e-5 * b.abs(), "{a} against tract's {b}");
        }
        for (shape, axis, kind) in [
            (vec![2, 10], 1, SoftmaxKind::Softmax),
            (vec![12, 4], 0, SoftmaxKind::Softmax),
            (vec![2, 12], 1, SoftmaxKind::LogSoftmax),
        ] {
            let mut model = wire(&shape, axis, kind);
            assert_eq!(replace(&mut model).unwrap(), 0, "{shape:?} over {axis}, {kind:?}");
        }
    }

    /// Attention's scores scaled by a constant and masked by a row of one value per column (the
    /// chain tract fuses into `OptBinChain(Mul+Add)`), then a softmax: one node of ours that
    /// takes the scores and the mask, with tract's values within rounding; the same chain with a
    /// mask that varies by row stays tract's chain before our softmax.
    #[test]
    fn attentions_scale_and_mask_go_into_the_softmax() {
        use tract_onnx::tract_core::ops::math::{add, mul};
        let build = |mask_shape: &[usize]| {
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact([1, 2, 16, 32])).unwrap();
            let mask = model.add_source("mask", f32::fact(mask_shape)).unwrap();
            let s = model.add_const("s", tensor0(0.353_553_38f32)).unwrap();
            let s =
                model.wire_node("s.rank", tract_onnx::tract_core::ops::change_axes::AxisOp::Add(0), &[s]).unwrap()[0];
            let s =
                model.wire_node("s.rank1", tract_onnx::tract_core::ops::change_axes::AxisOp::Add(0), &[s]).unwrap()[0];
            let s =
                model.wire_node("s.rank2", tract_onnx::tract_core::ops::change_axes::AxisOp::Add(0), &[s]).unwrap()[0];
            let s =
                model.wire_node("s.rank3", tract_onnx::tract_core::ops::change_axes::AxisOp::Add(0), &[s]).unwrap()[0];
            let scaled = model.wire_node("scaled", mul(), &[x, s]).unwrap()[0];
            let masked = model.wire_node("masked", add(), &[scaled, mask]).unwrap()[0];
            let op = Softmax { axes: tvec!(3), quant_output_dt: None, kind: SoftmaxKind::Softmax };
            let y = model.wire_node("probs", op, &[masked]).unwrap();
            model.select_output_outlets(&y).unwrap();
            model.into_optimized().unwrap()
        };
        let values: Vec<f32> = (0..1024).map(|i| (i as f32 * 0.9).sin() * 7.0).collect();
        let x = tensor1(&values).into_shape(&[1, 2, 16, 32]).unwrap();
        let mask: Vec<f32> = (0..32).map(|i| if i % 7 == 3 { -1e4 } else { 0.0 }).collect();
        let mask = tensor1(&mask).into_shape(&[1, 1, 1, 32]).unwrap();
        let inputs = tvec!(x.clone().into_tvalue(), mask.into_tvalue());
        let tract = build(&[1, 1, 1, 32]);
        let want = tract.clone().into_runnable().unwrap().run(inputs.clone()).unwrap();
        let mut ours = tract.clone();
        replace(&mut ours).unwrap();
        let fused: Vec<_> = ours.nodes().iter().filter_map(|n| n.op_as::<RowSoftmax>()).collect();
        assert_eq!(fused.len(), 1, "{ours}");
        assert_eq!(fused[0].scaled, Some(0.353_553_38f32.to_bits()), "{ours}");
        assert!(!ours.nodes().iter().any(|n| n.op_is::<OptBinChain>()), "{ours}");
        let got = ours.into_runnable().unwrap().run(inputs).unwrap();
        let (got, want) = (got[0].try_as_plain_ram().unwrap(), want[0].try_as_plain_ram().unwrap());
        for (a, b) in got.as_slice::<f32>().unwrap().iter().zip(want.as_slice::<f32>().unwrap()) {
            assert!((a - b).abs() <= 1e-6 + 1e-5 * b.abs(), "{a} against tract's {b}");
        }
        let mut per_row = build(&[1, 1, 16, 32]);
        replace(&mut per_row).unwrap();
        assert!(
            per_row.nodes().iter().any(|n| n.op_as::<RowSoftmax>().is_some_and(|s| s.scaled.is_none())),
            "{per_row}"
        );
    }
}
