//! [`Qdq`]: one quantize, dequantize, or quantize → dequantize pass over a tensor, in place of
//! tract's per-element `QuantizeLinearU8`/`I8` and `DequantizeLinearF32` (wired by
//! [`crate::passes::qdq`]; its loops are [`crate::kernels::qdq`]).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::qdq::{Best, Dequantize, QdqKernels, Quantize};

/// What a [`Qdq`] node computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Conversion {
    /// f32 → u8 or i8.
    Quantize(Quantize),
    /// u8 or i8 → f32.
    Dequantize(Dequantize),
    /// f32 → f32: the quantize, then the dequantize, with no int8 tensor in between.
    Both(Quantize, Dequantize),
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
        };
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Qdq {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let dt = match self.0 {
            Conversion::Quantize(q) => q.dt,
            Conversion::Dequantize(_) | Conversion::Both(..) => f32::datum_type(),
        };
        Ok(tvec!(dt.fact(inputs[0].shape.clone())))
    }

    as_op!();
}
