//! [`ByteTable`]: tract's `LookupTable` (u8 → u8 or i8 → i8 through a table of 256 bytes) by
//! [`crate::kernels::byte_table`], the same bytes.
//!
//! Wired by [`crate::passes::byte_table`].

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::byte_table::look_up;

/// Each byte of a u8 or i8 tensor replaced by its entry in `table` (an i8 indexed by its byte).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ByteTable {
    pub table: Box<[u8; 256]>,
}

impl Op for ByteTable {
    fn name(&self) -> StaticName {
        "ByteTable".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ByteTable {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let dt = input.datum_type();
        ensure!(matches!(dt.unquantized(), DatumType::U8 | DatumType::I8), "ByteTable of {dt:?}");
        // SAFETY: every byte of the output is written by `look_up` below before it is read.
        let mut output = unsafe { Tensor::uninitialized_dt(dt, input.shape())? };
        // SAFETY: u8 and i8 are plain bytes; both tensors hold `len` of them.
        unsafe {
            let xs = core::slice::from_raw_parts(input.as_ptr_unchecked::<u8>(), input.len());
            let ys = core::slice::from_raw_parts_mut(output.as_ptr_mut_unchecked::<u8>(), input.len());
            look_up(&self.table, xs, ys);
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for ByteTable {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].datum_type.fact(inputs[0].shape.clone())))
    }

    as_op!();
}
