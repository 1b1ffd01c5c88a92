//! Gives a decluttered model's f32 `EinSum`s of two computed operands (a transformer's
//! attention products) our [`BatchedMatMul`], when the einsum is a matrix product per batch
//! index: one axis summed (in both operands, not in the output), one of rows (the first operand
//! and the output), one of columns (the second and the output), and batch axes in all three;
//! axes of length one may be anywhere.
//!
//! After [`super::float_conv`] (which takes the einsums by constant filters) and before
//! optimisation, where tract would pack both operands for its own product (`OptMatMul`).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::einsum::EinSum;

use super::{all_f32, swap_operators, Context, Pass, Stage};
use crate::ops::batched_matmul::{strides_of, Axis, BatchedMatMul};

/// The pass: [`replace`], after declutter.
pub struct BatchedMatMulRewrite;

impl Pass for BatchedMatMulRewrite {
    fn name(&self) -> &'static str {
        "batched f32 matrix products"
    }

    fn stage(&self) -> Stage {
        Stage::Decluttered
    }

    fn run(&self, model: &mut TypedModel, _: &Context) -> TractResult<usize> {
        replace(model)
    }
}

/// Replaces each einsum [`product_of`] reads as a batched matrix product; answers how many.
pub fn replace(model: &mut TypedModel) -> TractResult<usize> {
    swap_operators(model, |model, node| {
        let Some(einsum) = node.op_as::<EinSum>() else { return Ok(None) };
        if einsum.q_params.is_some() || einsum.operating_dt != f32::datum_type() || node.inputs.len() != 2 {
            return Ok(None);
        }
        if !all_f32(model, node)? {
            return Ok(None);
        }
        let facts = [
            model.outlet_fact(node.inputs[0])?,
            model.outlet_fact(node.inputs[1])?,
            model.outlet_fact(OutletId::new(node.id, 0))?,
        ];
        if facts[..2].iter().any(|f| f.konst.is_some()) {
            return Ok(None);
        }
        let shape = |f: &TypedFact| f.shape.as_concrete().map(|s| s.to_vec());
        let (Some(a), Some(b), Some(c)) = (shape(facts[0]), shape(facts[1]), shape(facts[2])) else { return Ok(None) };
        Ok(product_of(einsum, [a, b, c]))
    })
}

/// The einsum's axes as a batched matrix product of operands of these `[A, B, C]` shapes, if
/// they are one.
pub fn product_of(einsum: &EinSum, shapes: [Vec<usize>; 3]) -> Option<BatchedMatMul> {
    let strides = shapes.each_ref().map(|s| strides_of(s));
    let (mut m, mut k, mut n, mut batch) = (None, None, None, Vec::new());
    for axis in einsum.axes.iter_all_axes() {
        // Where the axis is in A, B and C (at most once in each), its length and strides.
        let mut at = [None; 3];
        let places = [axis.inputs.first(), axis.inputs.get(1), axis.outputs.first()];
        for (slot, positions) in places.into_iter().enumerate() {
            match positions.map(|p| p.as_slice()) {
                None | Some([]) => {}
                Some([p]) => at[slot] = Some(*p),
                Some(_) => return None,
            }
        }
        let lens: Vec<usize> = (0..3).filter_map(|s| at[s].map(|p| shapes[s][p])).collect();
        let len = *lens.first()?;
        if lens.iter().any(|l| *l != len) {
            return None;
        }
        if len == 1 {
            continue;
        }
        let stride = |s: usize| at[s].map_or(0, |p| strides[s][p]);
        let found = Axis { len, strides: [stride(0), stride(1), stride(2)] };
        let role = match (at[0].is_some(), at[1].is_some(), at[2].is_some()) {
            (true, false, true) => &mut m,
            (true, true, false) => &mut k,
            (false, true, true) => &mut n,
            (true, true, true) => {
                batch.push(found);
                continue;
            }
            _ => return None,
        };
        if role.replace(found).is_some() {
            return None;
        }
    }
    Some(BatchedMatMul { m: m?, k: k?, n: n?, batch, shapes })
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::internal::{EvalContext, EvalOp};

    use super::*;

    /// An einsum as written, on operands of these shapes, into a model of two inputs.
    fn model(expr: &str, a: &[usize], b: &[usize]) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("a", f32::fact(a)).unwrap();
        let y = model.add_source("b", f32::fact(b)).unwrap();
        let out = model.wire_node("einsum", EinSum::new(expr.parse().unwrap(), f32::datum_type()), &[x, y]).unwrap();
        model.select_output_outlets(&out).unwrap();
        model
    }

    /// Attention's two einsums (as tract declutters them from a BERT encoder), a plain matrix
    /// product with a unit axis, and one with two batch axes become [`BatchedMatMul`]s whose
    /// outputs are tract's within rounding; an einsum that sums an axis of one operand only, or
    /// takes a diagonal, stays tract's.
    #[test]
    fn matrix_products_per_batch_index_are_ours() {
        for (expr, a, b) in [
            ("mbk,nbk->abmn", vec![9, 3, 8], vec![9, 3, 8]),
            ("abmk,kbn->ambn", vec![1, 3, 9, 9], vec![9, 3, 8]),
            ("amk,kn->amn", vec![1, 17, 12], vec![12, 10]),
            ("xymk,xykn->xymn", vec![2, 3, 5, 4], vec![2, 3, 4, 6]),
        ] {
            let m = model(expr, &a, &b);
            let value = |i: usize| ((i * 37 % 101) as f32 - 50.0) / 16.0;
            let x = tensor1(&(0..a.iter().product()).map(value).collect::<Vec<_>>()).into_shape(&a).unwrap();
            let y = tensor1(&(0..b.iter().product()).map(|i| value(i + 5)).collect::<Vec<_>>()).into_shape(&b).unwrap();
            let inputs = tvec!(x.into_tvalue(), y.into_tvalue());
            let want = m.clone().into_runnable().unwrap().run(inputs.clone()).unwrap();
            let mut ours = m.clone();
            assert_eq!(replace(&mut ours).unwrap(), 1, "{expr}");
            let op = ours.nodes().iter().find_map(|n| n.op_as::<BatchedMatMul>()).unwrap();
            let got = op.eval(&EvalContext::out_of_plan(), inputs).unwrap();
            assert_eq!(got[0].shape(), want[0].shape(), "{expr}");
            let (got, want) = (got[0].try_as_plain_ram().unwrap(), want[0].try_as_plain_ram().unwrap());
            for (g, w) in got.as_slice::<f32>().unwrap().iter().zip(want.as_slice::<f32>().unwrap()) {
                assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{expr}: {g} against tract's {w}");
            }
        }
        for (expr, a, b) in [("mk,kn->m", vec![4, 5], vec![5, 6]), ("mm,mn->mn", vec![4, 4], vec![4, 6])] {
            let mut m = model(expr, &a, &b);
            assert_eq!(replace(&mut m).unwrap(), 0, "{expr}");
        }
    }
}
