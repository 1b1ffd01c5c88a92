//! [`StridedCopy`]: tract's `Downsample` (every `stride`-th index of one axis from `modulo`) of an
//! f32 tensor, copied row by row instead of through a strided ndarray view element by element.
//!
//! tract's declutter turns a strided 1×1 convolution into `Downsample`s of its input and pushes
//! them up through the element-wise nodes before it (a residual add's two operands, say), so they
//! sit outside the convolution; its generic copy cost about 35 instructions per element on the
//! IC's meter (`benchmarks/profile.md`, opennsfw). Wired by [`crate::passes::strided_copy`]; the
//! values are tract's, bit for bit (a copy).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::float_conv::im2col::gather;

/// Every `stride`-th index of `axis` from `modulo`, of an f32 tensor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StridedCopy {
    pub axis: usize,
    pub stride: usize,
    pub modulo: usize,
}

impl Op for StridedCopy {
    fn name(&self) -> StaticName {
        "StridedCopy".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("axis {}, stride {}, from {}", self.axis, self.stride, self.modulo)])
    }

    op_as_typed_op!();
}

impl StridedCopy {
    /// How many indices of an axis of `len` it keeps.
    pub fn kept(&self, len: usize) -> usize {
        len.saturating_sub(self.modulo).div_ceil(self.stride)
    }

    /// The copy of `x` (shape `shape`) into `out`.
    pub fn copy(&self, x: &[f32], shape: &[usize], out: &mut [f32]) {
        let outer: usize = shape[..self.axis].iter().product();
        let inner: usize = shape[self.axis + 1..].iter().product();
        let (len, kept) = (shape[self.axis], self.kept(shape[self.axis]));
        assert!(x.len() == outer * len * inner && out.len() == outer * kept * inner);
        for o in 0..outer {
            let (from, into) = (&x[o * len * inner..][..len * inner], &mut out[o * kept * inner..][..kept * inner]);
            if kept == 0 {
                continue;
            }
            if inner == 1 {
                gather(&from[self.modulo..], self.stride, into);
            } else {
                for i in 0..kept {
                    let row = (self.modulo + i * self.stride) * inner;
                    gather(&from[row..row + inner], 1, &mut into[i * inner..][..inner]);
                }
            }
        }
    }
}

impl EvalOp for StridedCopy {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let mut shape: TVec<usize> = input.shape().into();
        ensure!(self.axis < shape.len() && self.stride > 0, "StridedCopy: axis {} of {:?}", self.axis, shape);
        shape[self.axis] = self.kept(shape[self.axis]);
        // SAFETY: f32 is a plain type; `copy` writes every element (each outer index's `kept`
        // rows of `inner` values: the whole output) before the tensor is read.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&shape)? };
        let view = input.try_as_plain_ram()?;
        let mut plain = output.try_as_plain_ram_mut()?;
        self.copy(view.as_slice::<f32>()?, input.shape(), plain.as_slice_mut::<f32>()?);
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for StridedCopy {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape = inputs[0].shape.clone();
        let len = shape[self.axis].clone();
        shape.set(self.axis, (len - self.modulo).divceil(self.stride));
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::ops::Downsample;

    use super::*;

    /// Every axis, stride and start of a small 4-D tensor copies what tract's `Downsample` does.
    #[test]
    fn copies_what_tracts_downsample_keeps() {
        let shape = [2usize, 3, 5, 7];
        let values: Vec<f32> = (0..shape.iter().product::<usize>()).map(|i| i as f32 * 0.5 - 3.0).collect();
        let x = tensor1(&values).into_shape(&shape).unwrap();
        for axis in 0..4 {
            for stride in 1..4 {
                for modulo in 0..3 {
                    let theirs = Downsample { axis, stride: stride as isize, modulo };
                    let want =
                        theirs.eval(&EvalContext::out_of_plan(), tvec!(x.clone().into_tvalue())).unwrap().remove(0);
                    let ours = StridedCopy { axis, stride, modulo };
                    let got = ours.eval(&EvalContext::out_of_plan(), tvec!(x.clone().into_tvalue())).unwrap().remove(0);
                    assert_eq!(got.shape(), want.shape(), "axis {axis} stride {stride} from {modulo}");
                    assert_eq!(
                        got.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap(),
                        want.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap(),
                        "axis {axis} stride {stride} from {modulo}"
                    );
                }
            }
        }
    }
}
