//! A QDQ model's max pool on the bytes: a fake-quantize (quantize → dequantize) whose only
//! reader is a [`PlanarMaxPool`] whose only reader is a quantize back to the same bytes becomes
//! the quantize, the pool over its u8 or i8 image, and nothing after.
//!
//! Exact: the dequantize is increasing (its scale is positive), so the greatest of a window's
//! dequantized values is the dequantize of its greatest byte, and the quantize after the pool
//! gives that byte back whenever it undoes the dequantize, which [`undoes`] checks for each of
//! the 256 bytes. No window may lie wholly in the padding ([`every_window_reads`]): tract's
//! pool answers `f32::MIN` for one, which a quantize with a negative zero point wraps to the
//! type's greatest value. An f32 pool between the
//! two cost opennsfw's QDQ form some 26 M instructions (the fake-quantize of 800 K values, the
//! pool, the quantize); on bytes the pool takes sixteen outputs a vector
//! (`benchmarks/NOTES.md`).

use tract_onnx::prelude::*;

use super::{Context, Pass, Stage};
use crate::kernels::integer_conv::pack::Geometry;
use crate::kernels::qdq::{Dequantize, Quantize};
use crate::ops::max_pool::PlanarMaxPool;
use crate::ops::qdq::{Conversion, Qdq};

/// The pass: [`move_onto_bytes`], after the pools are [`PlanarMaxPool`]s and the quantizes
/// [`Qdq`]s.
pub struct BytePools;

impl Pass for BytePools {
    fn name(&self) -> &'static str {
        "max pool on bytes"
    }

    fn stage(&self) -> Stage {
        Stage::Optimized
    }

    fn run(&self, model: &mut TypedModel, _: &Context) -> TractResult<usize> {
        move_onto_bytes(model)
    }
}

/// Whether `q` gives back every byte `d` dequantizes (of `q`'s type), `d` increasing.
pub fn undoes(q: &Quantize, d: &Dequantize) -> bool {
    let bytes = if q.dt == u8::datum_type() { 0..=255 } else { -128..=127 };
    d.scale > 0.0 && bytes.into_iter().all(|b| q.scalar(d.scalar(b)) == b)
}

/// Whether every output's window reads at least one value of the image.
pub fn every_window_reads(g: &Geometry) -> bool {
    let rows = (0..g.output[0]).all(|oy| (0..g.kernel[0]).any(|ky| g.input_row(oy, ky).is_some()));
    let columns = (0..g.output[1]).all(|ox| {
        (0..g.kernel[1]).any(|kx| {
            let ix = (ox * g.strides[1] + kx * g.dilations[1]) as isize - g.pad_before[1] as isize;
            ix >= 0 && (ix as usize) < g.input[1]
        })
    });
    rows && columns
}

/// Moves every such pool onto bytes (see the module's documentation); answers how many.
pub fn move_onto_bytes(model: &mut TypedModel) -> TractResult<usize> {
    let mut changed = 0;
    while let Some(patch) = next(model)? {
        patch.apply(model)?;
        changed += 1;
    }
    if changed > 0 {
        *model = model.clone().into_compact()?;
    }
    Ok(changed)
}

/// A patch moving the first pool found onto bytes.
fn next(model: &TypedModel) -> TractResult<Option<TypedModelPatch>> {
    let outputs: Vec<OutletId> = model.output_outlets()?.to_vec();
    for &id in model.eval_order()?.iter() {
        let pool = model.node(id);
        let Some(op) = pool.op_as::<PlanarMaxPool>() else { continue };
        let fake = model.node(pool.inputs[0].node);
        let Some(Conversion::Both(q, d)) = fake.op_as::<Qdq>().map(|f| f.0) else { continue };
        let Some(after) = model.single_succ(id)? else { continue };
        let Some(Conversion::Quantize(back)) = after.op_as::<Qdq>().map(|f| f.0) else { continue };
        let only_reader = model.single_succ(fake.id)?.is_some_and(|n| n.id == id);
        let inner = [pool.inputs[0], OutletId::new(id, 0)];
        if !only_reader
            || inner.iter().any(|o| outputs.contains(o))
            || back != q
            || !undoes(&back, &d)
            || !every_window_reads(&op.geometry)
        {
            continue;
        }
        let mut patch = TypedModelPatch::new(format!("max pool {} on bytes", pool.name));
        let x = patch.tap_model(model, fake.inputs[0])?;
        let bytes = patch.wire_node(&fake.name, Qdq(Conversion::Quantize(q)), &[x])?;
        let pooled = patch.wire_node(&pool.name, op.clone(), &bytes)?[0];
        patch.shunt_outside(model, OutletId::new(after.id, 0), pooled)?;
        return Ok(Some(patch));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;
    use tract_onnx::tract_core::ops::quant::{quantize_linear_i8, quantize_linear_u8, DequantizeLinearF32};

    use super::*;

    /// A fake-quantized image (u8 and i8), a padded 3×3 pool of stride 2, the quantize back:
    /// after the passes, the pool reads bytes, no fake-quantize is left, and the bytes are the
    /// f32 pool's. A quantize of another scale after the pool keeps the f32 pool.
    #[test]
    fn a_pool_between_a_fake_quantize_and_its_quantize_runs_on_bytes() {
        let (c, h, w) = (3usize, 9usize, 37usize);
        let shape = [1, c, h, w];
        let values: Vec<f32> = (0..c * h * w).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.07).collect();
        for (signed, same_scale) in [(false, true), (true, true), (false, false)] {
            let quantize = |scale: f32| {
                if signed {
                    quantize_linear_i8(1.0 / scale, -3)
                } else {
                    quantize_linear_u8(1.0 / scale, 128)
                }
            };
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact(shape)).unwrap();
            let q = model.wire_node("q", quantize(0.05), &[x]).unwrap();
            let zero_point = if signed { -3 } else { 128 };
            let dq = model.wire_node("dq", DequantizeLinearF32 { scale: 0.05, zero_point }, &q).unwrap();
            let spec = PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec!(3, 3),
                padding: PaddingSpec::Explicit(tvec!(1, 1), tvec!(1, 1)),
                dilations: None,
                strides: Some(tvec!(2, 2)),
                input_channels: c,
                output_channels: c,
            };
            let pooled = model.wire_node("pool", MaxPool { pool_spec: spec, with_index_outputs: None }, &dq).unwrap();
            let back = model.wire_node("back", quantize(if same_scale { 0.05 } else { 0.06 }), &pooled).unwrap();
            model.select_output_outlets(&back).unwrap();
            let optimized = model.into_optimized().unwrap();
            let input = tvec!(tensor1(&values).into_shape(&shape).unwrap().into_tvalue());
            let want = optimized.clone().into_runnable().unwrap().run(input.clone()).unwrap();
            let mut ours = optimized;
            crate::passes::qdq::accelerate(&mut ours).unwrap();
            crate::passes::max_pool::replace(&mut ours).unwrap();
            assert_eq!(move_onto_bytes(&mut ours).unwrap(), usize::from(same_scale), "signed {signed}");
            let pool = ours.nodes().iter().find(|n| n.op_is::<PlanarMaxPool>()).unwrap();
            let pool_input = ours.outlet_fact(pool.inputs[0]).unwrap().datum_type;
            let expected = if !same_scale {
                f32::datum_type()
            } else if signed {
                i8::datum_type()
            } else {
                u8::datum_type()
            };
            assert_eq!(pool_input, expected);
            let got = ours.into_runnable().unwrap().run(input).unwrap();
            assert_eq!(got[0].datum_type(), want[0].datum_type());
            assert_eq!(
                got[0].try_as_plain_ram().unwrap().as_bytes(),
                want[0].try_as_plain_ram().unwrap().as_bytes(),
                "signed {signed}, same scale {same_scale}"
            );
        }
    }

    /// The check itself: a quantize of another zero point or scale does not undo the
    /// dequantize; a scale whose round trip loses bytes does not either.
    #[test]
    fn undoing_needs_every_byte_back() {
        let q = Quantize { inv_scale: 1.0 / 0.05, zero_point: 128, dt: u8::datum_type() };
        assert!(undoes(&q, &Dequantize { scale: 0.05, zero_point: 128 }));
        assert!(!undoes(&q, &Dequantize { scale: 0.05, zero_point: 127 }));
        assert!(!undoes(&q, &Dequantize { scale: 0.1, zero_point: 128 }));
        let signed = Quantize { inv_scale: 1.0 / 0.05, zero_point: -3, dt: i8::datum_type() };
        assert!(undoes(&signed, &Dequantize { scale: 0.05, zero_point: -3 }));
        assert!(!undoes(&signed, &Dequantize { scale: 0.02, zero_point: -3 }));
    }
}
