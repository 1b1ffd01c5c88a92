//! A QDQ model's residual adds in one pass each: an f32 add whose operands are each a dequantize
//! or a quantize-dequantize that only it reads, and whose sum only a quantize reads, becomes one
//! [`Conversion::ResidualAdd`] from the operands' inputs to the quantize's output (the bytes
//! tract's nodes give, see its documentation).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::OptBinUnicast;
use tract_onnx::tract_core::ops::math::Add;

use super::{Context, Pass, Stage};
use crate::ops::qdq::{Conversion, Qdq, Side};

/// The pass: [`fuse`], after optimisation (the quantizes and dequantizes are [`Qdq`] nodes).
pub struct ResidualAddFusion;

impl Pass for ResidualAddFusion {
    fn name(&self) -> &'static str {
        "residual add fusion"
    }

    fn stage(&self) -> Stage {
        Stage::Optimized
    }

    fn run(&self, model: &mut TypedModel, _: &Context) -> TractResult<usize> {
        fuse(model)
    }
}

/// Fuses every residual add (see the module's documentation); answers how many.
pub fn fuse(model: &mut TypedModel) -> TractResult<usize> {
    let mut changed = 0;
    // One patch per add, each on the model as the previous left it.
    while let Some(patch) = next_fusion(model)? {
        patch.apply(model)?;
        changed += 1;
    }
    if changed > 0 {
        *model = model.clone().into_compact()?;
    }
    Ok(changed)
}

/// The node producing `outlet` as a side of an add, if it is a dequantize or a
/// quantize-dequantize whose only reader is that add.
fn side(model: &TypedModel, outlet: OutletId, outputs: &[OutletId]) -> TractResult<Option<(Side, OutletId)>> {
    let node = model.node(outlet.node);
    if outputs.contains(&outlet) || model.single_succ(node.id)?.is_none() {
        return Ok(None);
    }
    Ok(match node.op_as::<Qdq>().map(|q| q.0) {
        Some(Conversion::Both(q, d)) => Some((Side::FakeQuantized(q, d), node.inputs[0])),
        Some(Conversion::Dequantize(d)) => Some((Side::Dequantized(d), node.inputs[0])),
        _ => None,
    })
}

/// A patch fusing the first residual add found.
fn next_fusion(model: &TypedModel) -> TractResult<Option<TypedModelPatch>> {
    let outputs: Vec<OutletId> = model.output_outlets()?.to_vec();
    for &id in model.eval_order()?.iter() {
        let add = model.node(id);
        if !add.op_as::<OptBinUnicast>().is_some_and(|op| op.binop.is::<Add>()) || add.inputs.len() != 2 {
            continue;
        }
        let out = OutletId::new(id, 0);
        let shape = &model.outlet_fact(out)?.shape;
        let same_shapes = add.inputs.iter().all(|i| model.outlet_fact(*i).is_ok_and(|f| &f.shape == shape));
        if outputs.contains(&out) || !same_shapes || model.outlet_fact(out)?.datum_type != f32::datum_type() {
            continue;
        }
        let Some(next) = model.single_succ(id)? else { continue };
        let Some(Conversion::Quantize(quantize)) = next.op_as::<Qdq>().map(|q| q.0) else { continue };
        let (Some((left, a)), Some((right, b))) =
            (side(model, add.inputs[0], &outputs)?, side(model, add.inputs[1], &outputs)?)
        else {
            continue;
        };
        let mut patch = TypedModelPatch::new(format!("fuse {} into one residual add", add.name));
        let (a, b) = (patch.tap_model(model, a)?, patch.tap_model(model, b)?);
        let wire = patch.wire_node(&next.name, Qdq(Conversion::ResidualAdd([left, right], quantize)), &[a, b])?[0];
        patch.shunt_outside(model, OutletId::new(next.id, 0), wire)?;
        return Ok(Some(patch));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::ops::math::add;
    use tract_onnx::tract_core::ops::quant::{quantize_linear_i8, quantize_linear_u8, DequantizeLinearF32};

    use super::*;

    /// A fake-quantized f32 tensor plus a dequantized u8 one, the sum quantized to u8 and to i8
    /// (105 elements: whole vectors and a tail): after the pass, one `ResidualAdd`, no add, and
    /// the bytes tract's nodes give.
    #[test]
    fn a_residual_add_is_one_node_with_tracts_bytes() {
        let shape = [1usize, 3, 5, 7];
        let a_values: Vec<f32> =
            (0..105).map(|i| (i as f32 - 52.0) * 0.173 + if i % 5 == 0 { 0.025 } else { 0.0 }).collect();
        let b_values: Vec<u8> = (0..105).map(|i| (i * 37 % 256) as u8).collect();
        for signed in [false, true] {
            let mut model = TypedModel::default();
            let a = model.add_source("a", f32::fact(shape)).unwrap();
            let b = model.add_source("b", u8::fact(shape)).unwrap();
            let qa = model.wire_node("qa", quantize_linear_u8(1.0 / 0.05, 128), &[a]).unwrap();
            let dqa = model.wire_node("dqa", DequantizeLinearF32 { scale: 0.05, zero_point: 128 }, &qa).unwrap();
            let dqb = model.wire_node("dqb", DequantizeLinearF32 { scale: 0.03, zero_point: 7 }, &[b]).unwrap();
            let sum = model.wire_node("add", add(), &[dqa[0], dqb[0]]).unwrap();
            let quantize = if signed { quantize_linear_i8(1.0 / 0.07, -5) } else { quantize_linear_u8(1.0 / 0.07, 3) };
            let y = model.wire_node("q", quantize, &sum).unwrap();
            model.select_output_outlets(&y).unwrap();
            let optimized = model.into_optimized().unwrap();
            let inputs = tvec!(
                tensor1(&a_values).into_shape(&shape).unwrap().into_tvalue(),
                tensor1(&b_values).into_shape(&shape).unwrap().into_tvalue()
            );
            let want = optimized.clone().into_runnable().unwrap().run(inputs.clone()).unwrap();
            let mut fused = optimized;
            crate::passes::qdq::accelerate(&mut fused).unwrap();
            assert_eq!(fuse(&mut fused).unwrap(), 1);
            let names: Vec<String> = fused.nodes().iter().map(|n| n.op.name().to_string()).collect();
            assert!(names.iter().filter(|n| n.contains("Add")).eq(["ResidualAdd"].iter()), "{names:?}");
            let got = fused.into_runnable().unwrap().run(inputs).unwrap();
            assert_eq!(got[0].datum_type(), want[0].datum_type());
            assert_eq!(
                got[0].try_as_plain_ram().unwrap().as_bytes(),
                want[0].try_as_plain_ram().unwrap().as_bytes(),
                "signed {signed}"
            );
        }
    }
}
