//! [`IntegerConv`]: a convolution of an int8 model computed on the int8 values, with wasm
//! simd128's `i32x4.dot_i16x8_s`: static (QDQ) ones instead of on their dequantized f32 copies,
//! dynamic ones instead of on tract's integer path.
//!
//! tract 0.23.9 runs a QDQ convolution in f32: it folds the weights' dequantize into f32
//! constants, dequantizes the input on every inference, and runs its f32 kernel. Its own integer
//! kernel (the one `QLinearConv` would use) is slower still on wasm (widened 32-bit multiplies, a
//! scalar requantization). The IC charges one instruction for `i32x4.dot_i16x8_s`, eight
//! multiply-accumulates, so [`crate::kernels::integer_conv`] costs a fraction of either per MAC
//! on large convolutions (measured per operator in `benchmarks/profile.md` and per model in
//! `benchmarks/results.yml`).
//!
//! [`crate::passes::integer_conv`] wires it, after declutter, in place of tract's one-group 2-D
//! convolutions of static int8 models (whose int8 weights it reads from the ONNX graph,
//! [`crate::onnx::quantized_weights`]) and of dynamic ones (`ConvInteger`), in the layouts tract
//! chose for the input and the output. [`crate::passes::integer_matmul`] wires it as a 1×1
//! convolution in place of dynamic int8 matrix products by constant weights (`MatMulInteger`,
//! a text encoder's linear layers).
//!
//! The result is exact integer arithmetic, `Σ (x − x_zp)·w`, then one f32 multiply by
//! `x_scale·w_scale` and one add of the bias per output: deterministic, the same on wasm and
//! natively, and closer to onnxruntime's integer QDQ kernels than tract's f32 sums.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::activation::{activate_in_place, Activation};
use crate::kernels::integer_conv::pack::{self, Epilogue, Geometry, Layout, PackedWeights, Strides};
use crate::kernels::integer_conv::three_planes;
use crate::kernels::integer_conv::winograd::{self, WinogradWeights};
use crate::kernels::integer_conv::{Best, ConvKernels};
use crate::kernels::qdq::{ByteLookup, QdqKernels};
use crate::kernels::Int8;

/// The epilogue parameters a dynamic int8 convolution takes as inputs after the int8 tensor, in
/// this order: the input's zero point (from `DynamicQuantizeLinear`), then one scale for every
/// channel (its scale times the weights' scale).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Runtime {
    pub zero_point: bool,
    pub scale: bool,
}

/// A 2-D convolution over a u8 or i8 input, with int8 weights, to f32 (see the module's
/// documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct IntegerConv {
    /// Whether the input has a leading batch axis (NCHW) or is one image (CHW): tract's
    /// declutter drops a batch axis of 1 where it can, and a 1×1 convolution's einsum may drop
    /// it on the way.
    pub input_batch: bool,
    /// Whether the output has one (an output without it needs a batch of 1).
    pub output_batch: bool,
    pub input_layout: Layout,
    pub output_layout: Layout,
    /// Which of the epilogue's parameters are inputs computed per inference (dynamic int8).
    pub runtime: Runtime,
    pub geometry: Geometry,
    /// The packed weights of the direct path (their panels left empty when `winograd` is set).
    pub weights: Arc<PackedWeights>,
    /// The weights transformed for Winograd's F(2×2, 3×3), when the convolution is one it
    /// computes ([`winograd`]): 3×3 of stride 1, sixteen products a channel where the direct
    /// convolution takes thirty-six, with the same integer sums.
    pub winograd: Option<Arc<WinogradWeights>>,
    pub epilogue: Arc<Epilogue>,
    /// What followed the output in the graph (a ReLU or HardSwish), applied to it in place.
    pub activation: Activation,
    /// A quantize read through a table of bytes that followed the output (a static int8 model's
    /// HardSwish, [`crate::passes::conv_lookup`]): the output is then its bytes (u8, or i8 as the
    /// quantize's type), computed as the group's sums are finished (`benchmarks/NOTES.md`,
    /// "HardSwish tables in the integer convolution's epilogue").
    pub lookup: Option<Arc<ByteLookup>>,
}

impl Eq for IntegerConv {}

impl Op for IntegerConv {
    fn name(&self) -> StaticName {
        "IntegerConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![
            format!(
                "{:?} → {:?}, {:?}, {} output channels, {:?}{}",
                self.input_layout,
                self.output_layout,
                self.geometry,
                self.weights.channels,
                self.activation,
                if self.winograd.is_some() { ", Winograd F(2×2, 3×3)" } else { "" }
            ) + if self.lookup.is_some() { ", then a table of bytes" } else { "" },
        ])
    }

    op_as_typed_op!();
}

impl IntegerConv {
    /// One image: im2col from the input's layout, then the kernel (or Winograd's transforms
    /// around it).
    fn image<T: Int8>(&self, x: &[T], epilogue: &Epilogue, out: &mut [f32]) {
        let (geometry, weights) = (&self.geometry, &*self.weights);
        let strides = Strides::of(self.output_layout, weights.channels, geometry.pixels());
        if let Some(winograd) = &self.winograd {
            winograd::convolve::<Best, T>(x, self.input_layout, geometry, winograd, epilogue, strides, out);
            activate_in_place(out, self.activation);
            return;
        }
        if self.three_planes() {
            let out = three_planes::Out::Floats(out, self.activation);
            return three_planes::convolve(weights, T::bytes(x), T::UNSIGNED, geometry, epilogue, out);
        }
        let packed = match self.input_layout {
            Layout::Planar => pack::pack_planar::<Best, T>(x, geometry, epilogue.zero_point),
            Layout::Interleaved => pack::pack_interleaved::<Best, T>(x, geometry, epilogue.zero_point),
        };
        Best::multiply(weights, &packed, geometry.pixels(), epilogue, strides, out);
        activate_in_place(out, self.activation);
    }

    /// Whether this is a colour image's first layer that [`three_planes`] computes without
    /// im2col (planar in and out).
    pub(crate) fn three_planes(&self) -> bool {
        self.input_layout == Layout::Planar
            && self.output_layout == Layout::Planar
            && three_planes::covered(&self.geometry, self.weights.channels)
    }

    /// One image's outputs through `lookup`: in the kernel's epilogue on the direct path of an
    /// output without an activation, else from the f32 outputs.
    fn image_looked_up<T: Int8>(&self, x: &[T], epilogue: &Epilogue, lookup: &ByteLookup, out: &mut [u8]) {
        let (geometry, weights) = (&self.geometry, &*self.weights);
        if self.winograd.is_some() || self.activation != Activation::Identity {
            let mut floats = vec![0f32; out.len()];
            self.image(x, epilogue, &mut floats);
            return crate::kernels::qdq::Best::quantize_look_up(&lookup.quantize, &floats, &lookup.table, out);
        }
        if self.three_planes() {
            let out = three_planes::Out::Bytes(out, lookup);
            return three_planes::convolve(weights, T::bytes(x), T::UNSIGNED, geometry, epilogue, out);
        }
        let strides = Strides::of(self.output_layout, weights.channels, geometry.pixels());
        let packed = match self.input_layout {
            Layout::Planar => pack::pack_planar::<Best, T>(x, geometry, epilogue.zero_point),
            Layout::Interleaved => pack::pack_interleaved::<Best, T>(x, geometry, epilogue.zero_point),
        };
        Best::multiply_looked_up(weights, &packed, geometry.pixels(), epilogue, lookup, strides, out);
    }

    /// The output's element type: f32, or the lookup's bytes.
    fn output_type(&self) -> DatumType {
        self.lookup.as_ref().map_or(DatumType::F32, |l| l.quantize.dt)
    }

    /// The output's shape: `[N,] M, OH, OW` or `[N,] OH, OW, M`.
    fn output_shape<D: Clone + From<usize>>(&self, batch: D) -> TVec<D> {
        let [oh, ow] = self.geometry.output;
        let m = self.weights.channels;
        let image: TVec<D> = match self.output_layout {
            Layout::Planar => tvec!(m.into(), oh.into(), ow.into()),
            Layout::Interleaved => tvec!(oh.into(), ow.into(), m.into()),
        };
        if self.output_batch {
            std::iter::once(batch).chain(image).collect()
        } else {
            image
        }
    }
}

impl EvalOp for IntegerConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let mut epilogue = std::borrow::Cow::Borrowed(&*self.epilogue);
        let mut next = 1;
        if self.runtime.zero_point {
            epilogue.to_mut().zero_point = inputs[next].cast_to_scalar::<i32>()?;
            next += 1;
        }
        if self.runtime.scale {
            ensure!(inputs[next].len() == 1, "IntegerConv: one runtime scale, not {:?}", inputs[next].shape());
            let scale = inputs[next].cast_to_scalar::<f32>()?;
            epilogue.to_mut().scales.iter_mut().for_each(|s| *s = scale);
        }
        let epilogue = &*epilogue;
        let batch = if self.input_batch { input.shape()[0] } else { 1 };
        ensure!(batch == 1 || self.output_batch, "IntegerConv: a batch of {batch} into an output without a batch axis");
        let [oh, ow] = self.geometry.output;
        // SAFETY: f32, u8 and i8 are plain types; each of the `batch` images' `image_out`
        // outputs (channels × pixels: the whole tensor) is written by the kernel below, which
        // writes every (channel, pixel) of its image, before the tensor is read (or the eval
        // fails and drops it).
        let mut output = unsafe { Tensor::uninitialized_dt(self.output_type(), &self.output_shape(batch))? };
        let image_in = self.geometry.channels * self.geometry.input[0] * self.geometry.input[1];
        let image_out = self.weights.channels * oh * ow;
        let view = input.try_as_plain_ram()?;
        let mut plain = output.try_as_plain_ram_mut()?;
        if let Some(lookup) = &self.lookup {
            // The bytes of u8 or i8 outputs (the table's entries are the bytes of the type).
            let out = plain.as_bytes_mut();
            for n in 0..batch {
                let out = &mut out[n * image_out..(n + 1) * image_out];
                match input.datum_type() {
                    DatumType::U8 => {
                        self.image_looked_up(&view.as_slice::<u8>()?[n * image_in..][..image_in], epilogue, lookup, out)
                    }
                    DatumType::I8 => {
                        self.image_looked_up(&view.as_slice::<i8>()?[n * image_in..][..image_in], epilogue, lookup, out)
                    }
                    dt => bail!("IntegerConv reads u8 or i8, not {dt:?}"),
                }
            }
        } else {
            let out = plain.as_slice_mut::<f32>()?;
            for n in 0..batch {
                let out = &mut out[n * image_out..(n + 1) * image_out];
                match input.datum_type() {
                    DatumType::U8 => self.image(&view.as_slice::<u8>()?[n * image_in..][..image_in], epilogue, out),
                    DatumType::I8 => self.image(&view.as_slice::<i8>()?[n * image_in..][..image_in], epilogue, out),
                    dt => bail!("IntegerConv reads u8 or i8, not {dt:?}"),
                }
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for IntegerConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let batch: TDim = if self.input_batch { inputs[0].shape[0].clone() } else { 1.into() };
        Ok(tvec!(self.output_type().fact(self.output_shape(batch))))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let macs = self.weights.channels * self.geometry.depth() * self.geometry.pixels();
        let batch = if self.input_batch { inputs[0].shape[0].clone() } else { 1.into() };
        Ok(tvec!((Cost::FMA(i32::datum_type()), batch * macs)))
    }

    as_op!();
}
