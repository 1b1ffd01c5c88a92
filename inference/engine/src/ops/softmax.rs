//! [`RowSoftmax`]: tract's f32 `Softmax` over a last axis a whole number of vectors long (a
//! transformer's attention probabilities) by [`crate::kernels::softmax`], the same values as
//! tract's in the canister, bit for bit (see that module). [`ColumnSoftmax`]: the same softmax
//! over the axis before the last, of attention's scores laid out keys by queries.
//!
//! Wired by [`crate::passes::softmax`] and [`crate::passes::attention_layout`].

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::softmax::{softmax_columns, softmax_rows, Affine, Around, FakeQuantize};

/// Softmax of every row (the last axis, `row_len` long, a multiple of four) of an f32 tensor;
/// where `scaled` is some, of `x · scale + mask[column]` (the mask, one value per column, the
/// second input): attention's scale and mask, which tract's `OptBinChain(Mul+Add)` computed in a
/// pass of its own; with a QDQ model's fake quantization of the input (`before`) and of the
/// output (`after`), which were nodes of their own.
#[derive(Clone, Debug, PartialEq)]
pub struct RowSoftmax {
    pub row_len: usize,
    /// The scale's bits, when the op scales and masks its input first.
    pub scaled: Option<u32>,
    pub before: Option<FakeQuantize>,
    pub after: Option<FakeQuantize>,
}

impl RowSoftmax {
    /// A plain softmax of rows of `row_len`.
    pub fn plain(row_len: usize) -> RowSoftmax {
        RowSoftmax { row_len, scaled: None, before: None, after: None }
    }
}

impl Eq for RowSoftmax {}

impl Op for RowSoftmax {
    fn name(&self) -> StaticName {
        "RowSoftmax".into()
    }

    op_as_typed_op!();
}

impl EvalOp for RowSoftmax {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let around = (self.scaled, self.before, self.after);
        in_place("RowSoftmax", inputs, around, self.row_len, |shape, values, around| {
            ensure!(shape.last() == Some(&self.row_len), "RowSoftmax: rows of {} in {shape:?}", self.row_len);
            if !values.is_empty() {
                softmax_rows(values, self.row_len, around);
            }
            Ok(())
        })
    }
}

/// A softmax's evaluation: its first input in place (copied only when the value is shared, as
/// tract's softmax is), `compute` given its shape, its values and what is `around` it: the
/// scale's bits and its mask (`mask_len` values, the second input) where there is a scale, and
/// the fake quantizations.
fn in_place(
    name: &str,
    mut inputs: TVec<TValue>,
    (scaled, before, after): (Option<u32>, Option<FakeQuantize>, Option<FakeQuantize>),
    mask_len: usize,
    compute: impl FnOnce(&[usize], &mut [f32], Around) -> TractResult<()>,
) -> TractResult<TVec<TValue>> {
    ensure!(inputs.len() == 1 + scaled.is_some() as usize, "{name}: {} inputs", inputs.len());
    let mut tensor = inputs.remove(0).into_tensor();
    let mask = inputs.first().map(|m| m.try_as_plain_ram()).transpose()?;
    let mask = mask.as_ref().map(|m| m.as_slice::<f32>()).transpose()?;
    ensure!(mask.is_none_or(|m| m.len() == mask_len), "{name}: a mask of {:?}", mask.map(|m| m.len()));
    let affine = scaled.zip(mask).map(|(bits, mask)| Affine { scale: f32::from_bits(bits), mask });
    let shape: TVec<usize> = tensor.shape().into();
    {
        let mut plain = tensor.try_as_plain_ram_mut()?;
        compute(&shape, plain.as_slice_mut::<f32>()?, Around { before, affine, after })?;
    }
    Ok(tvec!(tensor.into_tvalue()))
}

impl TypedOp for RowSoftmax {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type(), "RowSoftmax of {:?}", inputs[0].datum_type);
        ensure!(inputs[0].shape.last() == Some(&self.row_len.to_dim()), "RowSoftmax of {:?}", inputs[0].shape);
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// [`RowSoftmax`] of the transposed matrices: the softmax of every column of the last two axes
/// (`rows` values down each, a multiple of four; the columns a multiple of four), with the same
/// scale, mask (one value per row) and fake quantizations, the same values bit for bit.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnSoftmax {
    pub rows: usize,
    /// The scale's bits, when the op scales and masks its input first.
    pub scaled: Option<u32>,
    pub before: Option<FakeQuantize>,
    pub after: Option<FakeQuantize>,
}

impl ColumnSoftmax {
    /// The softmax of `softmax`'s rows, down the columns of the transposed layout.
    pub fn of(softmax: &RowSoftmax) -> ColumnSoftmax {
        ColumnSoftmax { rows: softmax.row_len, scaled: softmax.scaled, before: softmax.before, after: softmax.after }
    }

    /// Whether a matrix of `rows` by `columns` is one the column kernel takes: both whole
    /// numbers of vectors (a lane is a column).
    pub fn takes(rows: usize, columns: usize) -> bool {
        rows > 0 && rows.is_multiple_of(4) && columns > 0 && columns.is_multiple_of(4)
    }
}

impl Eq for ColumnSoftmax {}

impl Op for ColumnSoftmax {
    fn name(&self) -> StaticName {
        "ColumnSoftmax".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ColumnSoftmax {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let around = (self.scaled, self.before, self.after);
        in_place("ColumnSoftmax", inputs, around, self.rows, |shape, values, around| {
            let columns = columns_of(shape, self.rows)?;
            if !values.is_empty() {
                softmax_columns(values, self.rows, columns, around);
            }
            Ok(())
        })
    }
}

/// The columns of a `[…, rows, columns]` shape whose rows are `rows` and whose rows and columns
/// are whole numbers of vectors.
fn columns_of<D: DimLike>(shape: &[D], rows: usize) -> TractResult<usize> {
    let rank = shape.len();
    let columns = shape.last().and_then(|d| d.to_usize().ok());
    match columns {
        Some(columns)
            if rank >= 2 && ColumnSoftmax::takes(rows, columns) && shape[rank - 2].to_usize().ok() == Some(rows) =>
        {
            Ok(columns)
        }
        _ => bail!("ColumnSoftmax: columns of {rows} rows in {shape:?}"),
    }
}

impl TypedOp for ColumnSoftmax {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type(), "ColumnSoftmax of {:?}", inputs[0].datum_type);
        columns_of(&inputs[0].shape, self.rows)?;
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}
