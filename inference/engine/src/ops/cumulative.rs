//! `CumProd` (opset 26), which tract lacks: the running product along an axis given at run time,
//! inclusive or exclusive, forwards or reversed.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CumProd {
    /// Each output is the product of the elements before it, not including itself.
    pub exclusive: bool,
    /// Running from the end of the axis.
    pub reverse: bool,
}

/// The running products of `x`, laid out as `outer × len × inner`, along the middle axis.
/// `mul` wraps for integers, as numpy's does.
fn running_product<T: Copy>(
    x: &mut [T],
    (len, inner): (usize, usize),
    (one, mul): (T, fn(T, T) -> T),
    exclusive: bool,
    reverse: bool,
) {
    for block in x.chunks_exact_mut(len * inner) {
        for i in 0..inner {
            let mut product = one;
            for step in 0..len {
                let k = if reverse { len - 1 - step } else { step } * inner + i;
                let value = block[k];
                if exclusive {
                    block[k] = product;
                    product = mul(product, value);
                } else {
                    product = mul(product, value);
                    block[k] = product;
                }
            }
        }
    }
}

impl Op for CumProd {
    fn name(&self) -> StaticName {
        "CumProd".into()
    }

    op_as_typed_op!();
}

impl EvalOp for CumProd {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, axis) = (&inputs[0], &inputs[1]);
        let axis = axis.cast_to::<i64>()?;
        let axis = axis.try_as_plain_ram()?;
        let axis = *axis.as_slice::<i64>()?.first().context("CumProd: the axis is empty")?;
        let rank = x.rank() as i64;
        ensure!(
            (-rank..rank).contains(&axis) || (rank == 0 && axis == 0),
            "CumProd: axis {axis} of a rank-{rank} input"
        );
        let axis = if axis < 0 { axis + rank } else { axis } as usize;
        let shape = x.shape();
        let len = shape.get(axis).copied().unwrap_or(1);
        let inner: usize = shape.iter().skip(axis + 1).product();
        let mut y = x.clone().into_tensor();
        if len * inner == 0 {
            return Ok(tvec!(y.into_tvalue()));
        }
        let dims = (len, inner);
        let (exclusive, reverse) = (self.exclusive, self.reverse);
        macro_rules! run {
            ($t:ty, $one:expr, $mul:expr) => {
                running_product::<$t>(
                    y.try_as_plain_ram_mut()?.as_slice_mut::<$t>()?,
                    dims,
                    ($one, $mul),
                    exclusive,
                    reverse,
                )
            };
        }
        match x.datum_type() {
            DatumType::F32 => run!(f32, 1.0, |a, b| a * b),
            DatumType::F64 => run!(f64, 1.0, |a, b| a * b),
            DatumType::F16 => run!(f16, f16::from_f32(1.0), |a, b| a * b),
            DatumType::I32 => run!(i32, 1, i32::wrapping_mul),
            DatumType::I64 => run!(i64, 1, i64::wrapping_mul),
            DatumType::U32 => run!(u32, 1, u32::wrapping_mul),
            DatumType::U64 => run!(u64, 1, u64::wrapping_mul),
            other => bail!("CumProd of {other:?} is not supported"),
        }
        Ok(tvec!(y.into_tvalue()))
    }
}

impl TypedOp for CumProd {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].datum_type.fact(inputs[0].shape.clone())))
    }

    as_op!();
}
