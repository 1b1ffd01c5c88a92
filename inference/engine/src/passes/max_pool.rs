//! Gives an optimised model's 2-D f32 max pools over planar images [`PlanarMaxPool`], node for
//! node (the values are tract's, bit for bit: the same fold in the same order).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::OptMaxPool;
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::integer_conv::pool_geometry;
use super::{swap_operators, Context, Pass, Stage};
use crate::ops::max_pool::PlanarMaxPool;

/// The pass: [`replace`], after optimisation.
pub struct MaxPoolAccelerate;

impl Pass for MaxPoolAccelerate {
    fn name(&self) -> &'static str {
        "max pool accelerate"
    }

    fn stage(&self) -> Stage {
        Stage::Optimized
    }

    fn run(&self, model: &mut TypedModel, _: &Context) -> TractResult<usize> {
        replace(model)
    }
}

/// The operator for one of tract's max pools, if it is a 2-D one over planar f32 images of a
/// concrete shape without index outputs.
pub fn planar(model: &TypedModel, node: &TypedNode) -> TractResult<Option<PlanarMaxPool>> {
    let Some(pool) = node.op_as::<OptMaxPool>() else { return Ok(None) };
    let fact = model.outlet_fact(node.inputs[0])?;
    let spec = &pool.pool_spec;
    let batch = match spec.data_format {
        DataFormat::NCHW => true,
        DataFormat::CHW => false,
        _ => return Ok(None),
    };
    if pool.with_index_outputs.is_some() || fact.datum_type != f32::datum_type() || spec.rank() != 2 {
        return Ok(None);
    }
    let Some(shape) = fact.shape.as_concrete() else { return Ok(None) };
    let image = if batch { shape.get(1..) } else { Some(shape) };
    let Some(&[channels, h, w]) = image else { return Ok(None) };
    Ok(Some(PlanarMaxPool { batch, geometry: pool_geometry(spec, channels, [h, w]) }))
}

/// Replaces each max pool [`planar`] accepts; answers how many.
pub fn replace(model: &mut TypedModel) -> TractResult<usize> {
    swap_operators(model, planar)
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec, PoolSpec};

    use super::*;

    /// Over paddings, strides, dilations and a ceil-mode output, with ties, zeros of both signs
    /// and values below zero, the pool answers tract's values bit for bit.
    #[test]
    fn pools_what_tracts_max_pool_does() {
        // Kernel, strides, dilations, padding.
        type Case = ([usize; 2], [usize; 2], [usize; 2], PaddingSpec);
        let cases: [Case; 5] = [
            ([3, 3], [2, 2], [1, 1], PaddingSpec::Explicit(tvec!(1, 1), tvec!(1, 1))),
            ([2, 2], [2, 2], [1, 1], PaddingSpec::Valid),
            ([3, 2], [1, 2], [2, 1], PaddingSpec::Explicit(tvec!(2, 0), tvec!(1, 1))),
            ([3, 3], [2, 2], [1, 1], PaddingSpec::ExplicitOnnxPool(tvec!(0, 0), tvec!(0, 0), true)),
            ([5, 5], [1, 1], [1, 1], PaddingSpec::SameUpper),
        ];
        let (c, h, w) = (3usize, 9usize, 11usize);
        let values: Vec<f32> =
            (0..c * h * w).map(|i| [(i * 37 % 23) as f32 - 11.0, 0.0, -0.0, -3.5][i % 4 * (i % 3) % 4]).collect();
        for (case, (kernel, strides, dilations, padding)) in cases.into_iter().enumerate() {
            let spec = PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: kernel.into_iter().collect(),
                padding,
                dilations: Some(dilations.into_iter().collect()),
                strides: Some(strides.into_iter().collect()),
                input_channels: c,
                output_channels: c,
            };
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact([1, c, h, w])).unwrap();
            let y = model.wire_node("pool", MaxPool { pool_spec: spec, with_index_outputs: None }, &[x]).unwrap();
            model.select_output_outlets(&y).unwrap();
            let optimized = model.into_optimized().unwrap();
            let input = tensor1(&values).into_shape(&[1, c, h, w]).unwrap();
            let want = optimized.clone().into_runnable().unwrap().run(tvec!(input.clone().into_tvalue())).unwrap();
            let node = optimized.nodes().iter().find(|n| n.op_as::<OptMaxPool>().is_some()).unwrap();
            let ours = planar(&optimized, node).unwrap().expect("a planar f32 pool");
            let ctx = tract_onnx::tract_core::internal::EvalContext::out_of_plan();
            use tract_onnx::tract_core::internal::EvalOp;
            let got = ours.eval(&ctx, tvec!(input.into_tvalue())).unwrap();
            assert_eq!(got[0].shape(), want[0].shape(), "case {case}");
            let bits = |t: &Tensor| -> Vec<u32> {
                t.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
            };
            assert_eq!(bits(&got[0]), bits(&want[0]), "case {case}");
        }
    }
}
