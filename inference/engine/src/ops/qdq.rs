//! [`Qdq`]: one quantize, dequantize, or quantize → dequantize pass over a tensor, in place of
//! tract's per-element `QuantizeLinearU8`/`I8` and `DequantizeLinearF32` (wired by
//! [`crate::passes::qdq`]), or a residual add's dequantizes, add and quantize in one pass
//! (wired by [`crate::passes::residual_add`]); its loops are [`crate::kernels::qdq`].

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::qdq::{Best, Dequantize, Operand, QdqKernels, Quantize};

/// What a [`Qdq`] node computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Conversion {
    /// f32 → u8 or i8.
    Quantize(Quantize),
    /// u8 or i8 → f32.
    Dequantize(Dequantize),
    /// f32 → f32: the quantize, then the dequantize, with no int8 tensor in between.
    Both(Quantize, Dequantize),
    /// Two tensors of one shape → u8 or i8: a QDQ model's residual add in one pass, each
    /// operand as f32 ([`Side`]), the f32 add, the quantize of the sum (wired by
    /// [`crate::passes::residual_add`]). tract, even with the passes above, stores each step's
    /// f32 tensor and reads it again: four passes where this makes one. The same lane
    /// operations as the separate passes, so the bytes are theirs. (A variant here rather than an
    /// operator of its own: each operator type costs the canister's code section kilobytes of
    /// tract's trait methods.)
    ResidualAdd([Side; 2], Quantize),
}

/// How one operand of a [`Conversion::ResidualAdd`] becomes f32.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Side {
    /// An f32 tensor, quantized then dequantized.
    FakeQuantized(Quantize, Dequantize),
    /// A u8 or i8 tensor, dequantized.
    Dequantized(Dequantize),
}

/// An input of type `dt` (its `bytes`, and its values if it is an f32 tensor) as side `side`'s
/// operand.
fn operand<'a>(side: Side, dt: DatumType, bytes: &'a [u8], floats: TractResult<&'a [f32]>) -> TractResult<Operand<'a>> {
    Ok(match (side, dt) {
        (Side::FakeQuantized(q, d), DatumType::F32) => Operand::FakeQuantized(floats?, q, d),
        (Side::Dequantized(d), DatumType::U8) => Operand::Dequantized(bytes, true, d),
        (Side::Dequantized(d), DatumType::I8) => Operand::Dequantized(bytes, false, d),
        (side, dt) => bail!("ResidualAdd: a {dt:?} input for {side:?}"),
    })
}

/// One conversion pass over a tensor (see the module's documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct Qdq(pub Conversion);

impl Eq for Qdq {}

impl Op for Qdq {
    fn name(&self) -> StaticName {
        match self.0 {
            Conversion::Quantize(_) => "SimdQuantize",
            Conversion::Dequantize(_) => "SimdDequantize",
            Conversion::Both(..) => "SimdQuantizeDequantize",
            Conversion::ResidualAdd(..) => "ResidualAdd",
        }
        .into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}", self.0)])
    }

    op_as_typed_op!();
}

impl EvalOp for Qdq {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let view = input.try_as_plain_ram()?;
        let output = match self.0 {
            Conversion::Quantize(q) => {
                let xs = view.as_slice::<f32>()?;
                // SAFETY: `uninitialized_dt` of a plain (Copy, no-drop) type u8 or i8; the kernel
                // writes every element before the tensor is read (it converts
                // min(xs.len(), ys.len()) elements, and the output has the input's shape).
                let mut out = unsafe { Tensor::uninitialized_dt(q.dt, input.shape())? };
                let mut plain = out.try_as_plain_ram_mut()?;
                if q.dt == u8::datum_type() {
                    Best::quantize(&q, xs, plain.as_slice_mut::<u8>()?);
                } else {
                    Best::quantize(&q, xs, plain.as_slice_mut::<i8>()?);
                }
                out
            }
            Conversion::Dequantize(d) => {
                // SAFETY: f32 is a plain type; the kernel writes every element (the output has
                // the input's shape) before the tensor is read, or the eval fails and drops it.
                let mut out = unsafe { Tensor::uninitialized::<f32>(input.shape())? };
                let mut plain = out.try_as_plain_ram_mut()?;
                let ys = plain.as_slice_mut::<f32>()?;
                match input.datum_type() {
                    DatumType::U8 => Best::dequantize(&d, view.as_slice::<u8>()?, ys),
                    DatumType::I8 => Best::dequantize(&d, view.as_slice::<i8>()?, ys),
                    dt => bail!("SimdDequantize reads u8 or i8, not {dt:?}"),
                }
                out
            }
            Conversion::Both(q, d) => {
                // SAFETY: f32 is a plain type; the kernel writes every element (the output has
                // the input's shape) before the tensor is read.
                let mut out = unsafe { Tensor::uninitialized::<f32>(input.shape())? };
                let mut plain = out.try_as_plain_ram_mut()?;
                Best::quantize_dequantize(&q, &d, view.as_slice::<f32>()?, plain.as_slice_mut::<f32>()?);
                out
            }
            Conversion::ResidualAdd(sides, q) => {
                let other = &inputs[1];
                ensure!(
                    input.shape() == other.shape(),
                    "ResidualAdd: shapes {:?} and {:?}",
                    input.shape(),
                    other.shape()
                );
                ensure!(q.dt == DatumType::U8 || q.dt == DatumType::I8, "ResidualAdd quantizes to u8 or i8");
                let other_view = other.try_as_plain_ram()?;
                let left = operand(sides[0], input.datum_type(), view.as_bytes(), view.as_slice::<f32>())?;
                let right = operand(sides[1], other.datum_type(), other_view.as_bytes(), other_view.as_slice::<f32>())?;
                // SAFETY: `uninitialized_dt` of a plain type u8 or i8; the kernel writes every
                // element (both operands hold as many as the output) before the tensor is read.
                let mut out = unsafe { Tensor::uninitialized_dt(q.dt, input.shape())? };
                let mut plain = out.try_as_plain_ram_mut()?;
                Best::residual_add(left, right, &q, plain.as_bytes_mut());
                out
            }
        };
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Qdq {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let dt = match self.0 {
            Conversion::Quantize(q) | Conversion::ResidualAdd(_, q) => q.dt,
            Conversion::Dequantize(_) | Conversion::Both(..) => f32::datum_type(),
        };
        Ok(tvec!(dt.fact(inputs[0].shape.clone())))
    }

    as_op!();
}
