//! [`Lookup`]: an f32 tensor quantized to int8 and read through a 256-entry table, in place of a
//! quantize-dequantize and the run of elementwise nodes after it that computed a function of the
//! dequantized value (wired by [`crate::passes::lookup`], which computes the table by running
//! those nodes on the 256 values). A table of bytes after an integer convolution is read in that
//! convolution's epilogue instead ([`crate::passes::conv_lookup`]); this operator runs the rest.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::qdq::{Best, QdqKernels, Quantize};

/// `y[i] = table[byte(quantize(x[i]))]` for an f32 `x` quantized as [`Quantize`] does (to u8, or
/// to i8 whose byte is its two's complement) and a table of 256 f32, u8 or i8 values. The
/// quantized bytes are never stored: the kernel reads the table at each lane's byte
/// ([`QdqKernels::quantize_look_up`]), which cost less than a quantize and a separate table read
/// (`benchmarks/NOTES.md`).
#[derive(Clone, Debug, PartialEq)]
pub struct Lookup {
    pub quantize: Quantize,
    /// 256 values, indexed by the quantized value's byte.
    pub table: Arc<Tensor>,
}

impl Eq for Lookup {}

impl Op for Lookup {
    fn name(&self) -> StaticName {
        "QuantizeLookup256".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}, then a table of {:?}", self.quantize, self.table.datum_type())])
    }

    op_as_typed_op!();
}

impl EvalOp for Lookup {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let view = input.try_as_plain_ram()?;
        let xs = view.as_slice::<f32>()?;
        let dt = self.table.datum_type();
        // SAFETY: f32, u8 and i8 are plain types; the kernel writes every element (the output
        // has the input's shape) before the tensor is read, or the eval fails and drops it.
        let mut out = unsafe { Tensor::uninitialized_dt(dt, input.shape())? };
        let table = self.table.try_as_plain_ram()?;
        let mut plain = out.try_as_plain_ram_mut()?;
        let q = &self.quantize;
        match dt {
            DatumType::F32 => Best::quantize_look_up(q, xs, table.as_slice::<f32>()?, plain.as_slice_mut::<f32>()?),
            DatumType::U8 => Best::quantize_look_up(q, xs, table.as_slice::<u8>()?, plain.as_slice_mut::<u8>()?),
            DatumType::I8 => Best::quantize_look_up(q, xs, table.as_slice::<i8>()?, plain.as_slice_mut::<i8>()?),
            dt => bail!("QuantizeLookup256 writes f32, u8 or i8, not {dt:?}"),
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for Lookup {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == DatumType::F32, "QuantizeLookup256 reads f32");
        ensure!(self.table.len() == 256, "QuantizeLookup256 reads a table of 256 values");
        Ok(tvec!(self.table.datum_type().fact(inputs[0].shape.clone())))
    }

    as_op!();
}
