//! Gives an optimised model's f32 `GeluExact` nodes (tract's fusion of the ONNX `Gelu`, or of
//! the `Erf` chain older exporters write) our [`Gelu`], node for node: the same values in the
//! canister, bit for bit (see [`crate::kernels::gelu`]).
//!
//! Last in the pipeline: [`super::lookup`] may read a `GeluExact` after a quantize → dequantize
//! into its table, and must still see it as tract's.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::nn::GeluExact;

use super::{all_f32, swap_operators, Context, Pass, Stage};
use crate::ops::gelu::Gelu;

/// The pass: [`replace`], after optimisation.
pub struct GeluAccelerate;

impl Pass for GeluAccelerate {
    fn name(&self) -> &'static str {
        "gelu accelerate"
    }

    fn stage(&self) -> Stage {
        Stage::Optimized
    }

    fn run(&self, model: &mut TypedModel, _: &Context) -> TractResult<usize> {
        replace(model)
    }
}

/// Replaces each `GeluExact` of f32 values to f32 values; answers how many.
pub fn replace(model: &mut TypedModel) -> TractResult<usize> {
    swap_operators(model, |model, node| {
        let gelu = node.op_as::<ElementWiseOp>().is_some_and(|op| op.0.is::<GeluExact>());
        Ok((gelu && node.inputs.len() == 1 && all_f32(model, node)?).then_some(Gelu))
    })
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::ops::math::{add, erf, mul};

    use super::*;
    use crate::kernels::gelu::reference;

    /// The ONNX expansion of GELU (`Erf` between the scale by 1/√2, the one added and the half),
    /// as tract fuses it, becomes one [`Gelu`] node; the plan with it computes the reference's
    /// values, and an f16 GELU stays tract's.
    #[test]
    fn the_erf_chain_becomes_one_gelu() {
        for dt in [DatumType::F32, DatumType::F16] {
            let len = 37;
            let mut model = TypedModel::default();
            let x = model.add_source("x", dt.fact([len])).unwrap();
            let konst = |m: &mut TypedModel, name: &str, v: f32| {
                m.add_const(name, tensor1(&[v]).cast_to_dt(dt).unwrap().into_owned()).unwrap()
            };
            let c = konst(&mut model, "c", 2f32.sqrt().recip());
            let scaled = model.wire_node("scale", mul(), &[x, c]).unwrap()[0];
            let e = model.wire_node("erf", erf(), &[scaled]).unwrap()[0];
            let one = konst(&mut model, "one", 1.0);
            let plus_one = model.wire_node("add_one", add(), &[e, one]).unwrap()[0];
            let half = konst(&mut model, "half", 0.5);
            let half_x = model.wire_node("half_x", mul(), &[x, half]).unwrap()[0];
            let out = model.wire_node("out", mul(), &[half_x, plus_one]).unwrap();
            model.select_output_outlets(&out).unwrap();
            let mut optimized = model.into_optimized().unwrap();
            let replaced = replace(&mut optimized).unwrap();
            if dt == DatumType::F16 {
                assert_eq!(replaced, 0, "an f16 GELU is left to tract");
                continue;
            }
            assert_eq!(replaced, 1, "{}", optimized);
            let values: Vec<f32> = (0..len).map(|i| (i as f32 - 18.0) * 0.31).collect();
            let got = optimized.into_runnable().unwrap().run(tvec!(tensor1(&values).into_tvalue())).unwrap();
            let got = got[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
            let want: Vec<f32> = values.iter().map(|x| reference::gelu(*x)).collect();
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}
