//! [`Lookup`]: an int8 tensor through a 256-entry table, in place of a run of elementwise nodes
//! that computed a function of a dequantized int8 value (wired by [`crate::passes::lookup`],
//! which computes the table by running those nodes on the 256 values).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// `y[i] = table[x[i]]` for a u8 or i8 `x` (an i8 indexes by its two's-complement byte) and a
/// table of 256 f32, u8 or i8 values.
#[derive(Clone, Debug, PartialEq)]
pub struct Lookup {
    /// 256 values, indexed by the input's byte.
    pub table: Arc<Tensor>,
}

impl Eq for Lookup {}

impl Op for Lookup {
    fn name(&self) -> StaticName {
        "Lookup256".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("table of {:?}", self.table.datum_type())])
    }

    op_as_typed_op!();
}

/// `ys[i] = table[xs[i]]` for every element of `xs` (`ys` as long).
///
/// Four elements a turn of the loop, each a byte load, a table load and a store at constant
/// offsets from two pointers: an iterator's zip and per-element index checks cost several
/// times that under the IC's metering (`benchmarks/profile.md`, `Lookup256`).
fn look_up<T: Copy>(xs: &[u8], table: &[T], ys: &mut [T]) {
    assert!(table.len() == 256 && ys.len() == xs.len());
    let (count, t) = (xs.len(), table.as_ptr());
    let (x, y) = (xs.as_ptr(), ys.as_mut_ptr());
    let mut i = 0;
    // SAFETY (of every access below): i + 4 <= count (or i < count) for xs and ys, which are
    // `count` long; a byte is below 256, the table's length.
    unsafe {
        while i + 4 <= count {
            let (xi, yi) = (x.add(i), y.add(i));
            *yi = *t.add(*xi as usize);
            *yi.add(1) = *t.add(*xi.add(1) as usize);
            *yi.add(2) = *t.add(*xi.add(2) as usize);
            *yi.add(3) = *t.add(*xi.add(3) as usize);
            i += 4;
        }
        while i < count {
            *y.add(i) = *t.add(*x.add(i) as usize);
            i += 1;
        }
    }
}

impl EvalOp for Lookup {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let view = input.try_as_plain_ram()?;
        let bytes: &[u8] = match input.datum_type() {
            DatumType::U8 => view.as_slice::<u8>()?,
            DatumType::I8 => {
                let signed = view.as_slice::<i8>()?;
                // SAFETY: i8 and u8 have the same size and alignment and every bit pattern is
                // valid for both; the slice borrows the same tensor for as long.
                unsafe { std::slice::from_raw_parts(signed.as_ptr() as *const u8, signed.len()) }
            }
            dt => bail!("Lookup256 reads u8 or i8, not {dt:?}"),
        };
        let dt = self.table.datum_type();
        // SAFETY: f32, u8 and i8 are plain types; `look_up` writes every element (the output has
        // the input's shape) before the tensor is read, or the eval fails and drops it.
        let mut out = unsafe { Tensor::uninitialized_dt(dt, input.shape())? };
        let table = self.table.try_as_plain_ram()?;
        let mut plain = out.try_as_plain_ram_mut()?;
        match dt {
            DatumType::F32 => look_up(bytes, table.as_slice::<f32>()?, plain.as_slice_mut::<f32>()?),
            DatumType::U8 => look_up(bytes, table.as_slice::<u8>()?, plain.as_slice_mut::<u8>()?),
            DatumType::I8 => look_up(bytes, table.as_slice::<i8>()?, plain.as_slice_mut::<i8>()?),
            dt => bail!("Lookup256 writes f32, u8 or i8, not {dt:?}"),
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for Lookup {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(matches!(inputs[0].datum_type, DatumType::U8 | DatumType::I8));
        Ok(tvec!(self.table.datum_type().fact(inputs[0].shape.clone())))
    }

    as_op!();
}
