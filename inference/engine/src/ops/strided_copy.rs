//! [`StridedCopy`]: tract's `Downsample` (every `stride`-th index of one axis from `modulo`) of an
//! f32 tensor, or a u8/i8 one (a QDQ model's strided 1×1 convolutions take their input quantized),
//! copied row by row instead of through a strided ndarray view element by element.
//!
//! tract's declutter turns a strided 1×1 convolution into `Downsample`s of its input and pushes
//! them up through the element-wise nodes before it (a residual add's two operands, say), so they
//! sit outside the convolution; its generic copy cost about 35 instructions per element on the
//! IC's meter (`benchmarks/profile.md`, opennsfw). Wired by [`crate::passes::strided_copy`]; the
//! values are tract's, bit for bit (a copy).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::float_conv::im2col::gather;
use crate::kernels::integer_conv::{self, ConvKernels};

/// Every `stride`-th index of `axis` from `modulo`, of an f32, u8 or i8 tensor.
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
        self.copy_with(x, shape, out, gather)
    }

    /// [`StridedCopy::copy`] of bytes (u8 or i8 values).
    pub fn copy_bytes(&self, x: &[u8], shape: &[usize], out: &mut [u8]) {
        let (len, inner) = (shape[self.axis], shape[self.axis + 1..].iter().product::<usize>());
        if inner == 1 && self.stride > 1 && len == self.stride * self.kept(len) && out.len() * self.stride == x.len() {
            // The last axis, in whole strides: the values kept are every stride-th one of the
            // whole tensor from `modulo` (so `modulo < stride`), one gather instead of one per
            // row (a row's call and its scalar tail cost as much as its vectors).
            return <integer_conv::Best as ConvKernels>::gather(x, self.modulo, self.stride, out);
        }
        self.copy_with(x, shape, out, |from, step, into| {
            if step == 1 {
                into.copy_from_slice(&from[..into.len()]);
            } else {
                // The integer convolution's gather (sixteen values a vector at step 2): an
                // iterator's `step_by` stays calls at the canister's opt-level, some forty
                // instructions a byte (`benchmarks/profile.md`, opennsfw QDQ).
                <integer_conv::Best as ConvKernels>::gather(from, 0, step, into);
            }
        })
    }

    /// The copy, a row of the kept axis at a time (`strided(from, step, into)`: `into[i] =
    /// from[i · step]`).
    fn copy_with<T: Copy>(&self, x: &[T], shape: &[usize], out: &mut [T], strided: impl Fn(&[T], usize, &mut [T])) {
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
                strided(&from[self.modulo..], self.stride, into);
            } else {
                for i in 0..kept {
                    let row = (self.modulo + i * self.stride) * inner;
                    // f32 rows by the vector gather: `memory.copy` costs 100 instructions a call
                    // on the IC, more than a short row's vectors.
                    strided(&from[row..row + inner], 1, &mut into[i * inner..][..inner]);
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
        let dt = input.datum_type();
        ensure!([DatumType::F32, DatumType::U8, DatumType::I8].contains(&dt), "StridedCopy of {dt:?}");
        // SAFETY: f32, u8 and i8 are plain types; `copy` writes every element (each outer
        // index's `kept` rows of `inner` values: the whole output) before the tensor is read.
        let mut output = unsafe { Tensor::uninitialized_dt(dt, &shape)? };
        let view = input.try_as_plain_ram()?;
        let mut plain = output.try_as_plain_ram_mut()?;
        match dt {
            DatumType::F32 => self.copy(view.as_slice::<f32>()?, input.shape(), plain.as_slice_mut::<f32>()?),
            // An i8 tensor's bytes, copied as u8.
            _ => self.copy_bytes(view.as_bytes(), input.shape(), plain.as_bytes_mut()),
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for StridedCopy {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape = inputs[0].shape.clone();
        let len = shape[self.axis].clone();
        shape.set(self.axis, (len - self.modulo).divceil(self.stride));
        Ok(tvec!(inputs[0].datum_type.fact(shape)))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::ops::Downsample;

    use super::*;

    /// Every axis, stride and start of small 4-D tensors (f32, u8, i8) copies what tract's
    /// `Downsample` does; a last axis of 6 is whole strides of 2 and 3 (one gather over the
    /// whole tensor), one of 7 is not.
    #[test]
    fn copies_what_tracts_downsample_keeps() {
        for shape in [[2usize, 3, 5, 7], [2, 3, 5, 6]] {
            copies_what_tracts_downsample_keeps_of(shape);
        }
    }

    fn copies_what_tracts_downsample_keeps_of(shape: [usize; 4]) {
        let values: Vec<f32> = (0..shape.iter().product::<usize>()).map(|i| i as f32 * 0.5 - 3.0).collect();
        let floats = tensor1(&values).into_shape(&shape).unwrap();
        let bytes: Vec<u8> = (0..shape.iter().product::<usize>()).map(|i| (i * 37 % 251) as u8).collect();
        let bytes = tensor1(&bytes).into_shape(&shape).unwrap();
        let signed = bytes.clone().cast_to::<i8>().unwrap().into_owned();
        for x in [floats, bytes, signed] {
            for axis in 0..4 {
                for stride in 1..4 {
                    for modulo in 0..3 {
                        let theirs = Downsample { axis, stride: stride as isize, modulo };
                        let want =
                            theirs.eval(&EvalContext::out_of_plan(), tvec!(x.clone().into_tvalue())).unwrap().remove(0);
                        let ours = StridedCopy { axis, stride, modulo };
                        let got =
                            ours.eval(&EvalContext::out_of_plan(), tvec!(x.clone().into_tvalue())).unwrap().remove(0);
                        assert_eq!(got.shape(), want.shape(), "axis {axis} stride {stride} from {modulo}");
                        assert_eq!(got.datum_type(), want.datum_type());
                        assert_eq!(
                            got.try_as_plain_ram().unwrap().as_bytes(),
                            want.try_as_plain_ram().unwrap().as_bytes(),
                            "{:?}: axis {axis} stride {stride} from {modulo}",
                            x.datum_type()
                        );
                    }
                }
            }
        }
    }
}
