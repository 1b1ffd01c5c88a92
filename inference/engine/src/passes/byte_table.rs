//! Gives an optimised model's `LookupTable`s (tract's fold of the elementwise nodes between a
//! dequantize and a quantize of int8 values, a QDQ model's) our [`ByteTable`], node for node:
//! the same bytes.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::quant::LookupTable;

use super::{swap_operators, Context, Pass, Stage};
use crate::ops::byte_table::ByteTable;

/// The pass: [`replace`], after optimisation.
pub struct ByteTableAccelerate;

impl Pass for ByteTableAccelerate {
    fn name(&self) -> &'static str {
        "byte table accelerate"
    }

    fn stage(&self) -> Stage {
        Stage::Optimized
    }

    fn run(&self, model: &mut TypedModel, _: &Context) -> TractResult<usize> {
        replace(model)
    }
}

/// Replaces each `LookupTable` of u8 or i8 values into the same type by a table of 256; answers
/// how many.
pub fn replace(model: &mut TypedModel) -> TractResult<usize> {
    swap_operators(model, |model, node| {
        let Some(op) = node.op_as::<ElementWiseOp>() else { return Ok(None) };
        let Some(lookup) = op.0.downcast_ref::<LookupTable>() else { return Ok(None) };
        let Ok(table) = <[u8; 256]>::try_from(lookup.table.table()) else { return Ok(None) };
        let (input, output) =
            (model.outlet_fact(node.inputs[0])?.datum_type, model.outlet_fact(OutletId::new(node.id, 0))?.datum_type);
        let bytes = input == output && matches!(input.unquantized(), DatumType::U8 | DatumType::I8);
        Ok(bytes.then(|| ByteTable { table: Box::new(table) }))
    })
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::internal::{EvalContext, EvalOp};
    use tract_onnx::tract_core::ops::quant::lookup_table;

    use super::*;

    /// tract's `LookupTable` of u8 and of i8 values becomes ours, with tract's bytes for every
    /// byte value; an f32 node is left alone.
    #[test]
    fn tracts_byte_tables_are_ours_with_the_same_bytes() {
        let table: Vec<u8> = (0..=255u8).map(|b| b.wrapping_mul(97).wrapping_add(5)).collect();
        for dt in [u8::datum_type(), i8::datum_type()] {
            let mut model = TypedModel::default();
            let x = model.add_source("x", dt.fact([300])).unwrap();
            let op = lookup_table(tract_onnx::tract_core::internal::tract_linalg::routines::lut_u8(&table).unwrap());
            let y = model.wire_node("table", op, &[x]).unwrap();
            model.select_output_outlets(&y).unwrap();
            let bytes: Vec<u8> = (0..300).map(|i| (i * 11 % 256) as u8).collect();
            // SAFETY: u8 and i8 are one byte, every pattern valid; 300 bytes for 300 values.
            let input = unsafe { Tensor::from_raw_dt(dt, &[300], &bytes) }.unwrap();
            let want = model.clone().into_runnable().unwrap().run(tvec!(input.clone().into_tvalue())).unwrap();
            assert_eq!(replace(&mut model).unwrap(), 1, "{dt:?}");
            let ours = model.nodes().iter().find_map(|n| n.op_as::<ByteTable>()).unwrap();
            let got = ours.eval(&EvalContext::out_of_plan(), tvec!(input.into_tvalue())).unwrap();
            assert_eq!(got[0].datum_type(), dt);
            assert_eq!(got[0].as_bytes(), want[0].as_bytes(), "{dt:?}");
        }
    }
}
