//! Gives an optimised model's f32 products by one value per channel (tract's `OptMulByScalar`)
//! our [`ChannelScale`], node for node (the values are tract's, bit for bit, see its module).
//!
//! Last in the pipeline: [`super::lookup`] reads tract's elementwise nodes after a
//! quantize → dequantize into its tables, and must still see them as tract's.

use tract_linalg::BinOp;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::OptBinByScalar;

use super::{all_f32, swap_operators, Context, Pass, Stage};
use crate::ops::channel_scale::ChannelScale;

/// The pass: [`replace`], after optimisation.
pub struct ChannelScaleAccelerate;

impl Pass for ChannelScaleAccelerate {
    fn name(&self) -> &'static str {
        "channel scale accelerate"
    }

    fn stage(&self) -> Stage {
        Stage::Optimized
    }

    fn run(&self, model: &mut TypedModel, _: &Context) -> TractResult<usize> {
        replace(model)
    }
}

/// Replaces each f32 `OptMulByScalar` whose operands' shapes [`ChannelScale::fits`]; answers how
/// many.
pub fn replace(model: &mut TypedModel) -> TractResult<usize> {
    swap_operators(model, |model, node| {
        let product = node.op_as::<OptBinByScalar>().is_some_and(|op| op.linalg_op == BinOp::Mul);
        if !product || node.inputs.len() != 2 || !all_f32(model, node)? {
            return Ok(None);
        }
        let (a, b) = (model.outlet_fact(node.inputs[0])?, model.outlet_fact(node.inputs[1])?);
        Ok(ChannelScale::fits(&a.shape, &b.shape).then_some(ChannelScale))
    })
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::internal::{EvalContext, EvalOp};
    use tract_onnx::tract_core::ops::math::mul;

    use super::*;

    /// A squeeze-and-excitation block's product, `[1, C, H, W]` by `[1, C, 1, 1]`, with zeros of
    /// both signs, infinities and NaN among the values and the scales, answers what tract's
    /// optimised product does, bit for bit, on 7 × 7 planes (whole vectors and one value left)
    /// and 14 × 14 ones.
    #[test]
    fn scales_what_tracts_product_by_scalar_does() {
        let special = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 3.5e-39, -7.25];
        for shape in [vec![1usize, 6, 7, 7], vec![1, 16, 14, 14]] {
            let mut scale_shape = shape.clone();
            let rank = shape.len();
            scale_shape[rank - 2..].fill(1);
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact(&shape)).unwrap();
            let s = model.add_source("s", f32::fact(&scale_shape)).unwrap();
            let y = model.wire_node("mul", mul(), &[x, s]).unwrap();
            model.select_output_outlets(&y).unwrap();
            let optimized = model.into_optimized().unwrap();
            let n: usize = shape.iter().product();
            let values: Vec<f32> =
                (0..n).map(|i| if i % 11 == 0 { special[i / 11 % 7] } else { i as f32 * 0.37 - 9.0 }).collect();
            let scales: Vec<f32> = (0..scale_shape.iter().product())
                .map(|i| if i % 4 == 1 { special[i % 7] } else { 0.1 * i as f32 - 0.3 })
                .collect();
            let input = tensor1(&values).into_shape(&shape).unwrap();
            let scale = tensor1(&scales).into_shape(&scale_shape).unwrap();
            let inputs = tvec!(input.into_tvalue(), scale.into_tvalue());
            let want = optimized.clone().into_runnable().unwrap().run(inputs.clone()).unwrap();
            let mut ours = optimized.clone();
            assert_eq!(replace(&mut ours).unwrap(), 1, "{shape:?}: tract's product by a scalar, replaced");
            let node = ours.nodes().iter().find(|n| n.op_as::<ChannelScale>().is_some()).unwrap();
            let got = node
                .op
                .as_op()
                .downcast_ref::<ChannelScale>()
                .unwrap()
                .eval(&EvalContext::out_of_plan(), inputs)
                .unwrap();
            let bits = |t: &Tensor| -> Vec<u32> {
                t.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
            };
            assert_eq!(got[0].shape(), want[0].shape());
            assert_eq!(bits(&got[0]), bits(&want[0]), "{shape:?}");
        }
    }

    /// An empty image gives an empty image; scales not shaped as the image's leading axes are
    /// refused, not misread.
    #[test]
    fn empty_images_and_misshaped_scales() {
        let eval = |a: Tensor, b: Tensor| ChannelScale.eval(&EvalContext::out_of_plan(), tvec!(a.into(), b.into()));
        let empty = eval(Tensor::zero::<f32>(&[1, 3, 0, 0]).unwrap(), Tensor::zero::<f32>(&[1, 3, 1, 1]).unwrap());
        assert_eq!(empty.unwrap()[0].shape(), &[1, 3, 0, 0]);
        let across = eval(Tensor::zero::<f32>(&[1, 3, 2, 2]).unwrap(), Tensor::zero::<f32>(&[1, 1, 2, 2]).unwrap());
        assert!(across.is_err());
        let short = eval(Tensor::zero::<f32>(&[1, 3, 2, 2]).unwrap(), Tensor::zero::<f32>(&[3, 1, 1]).unwrap());
        assert!(short.is_err());
    }
}
