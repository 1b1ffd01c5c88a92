//! onnxruntime's QOperator contrib operators (`com.microsoft` domain), which its quantizer emits
//! with `quant_format=QOperator` next to the standard QLinearConv and QLinearMatMul that tract
//! already has.
//!
//! Each operator is wired as what it computes: `DequantizeLinear` on its quantized inputs, the
//! float operator, `QuantizeLinear` on its output. That is the graph the QDQ format spells out
//! node by node, so tract's declutter and optimiser treat both formats alike, and the results are
//! as deterministic as tract's f32 kernels. Weights and biases are dequantized once, when the
//! plan is built.
//!
//! Scales and zero points must be constants, as onnxruntime's quantizer always makes them;
//! activations are quantized per tensor, weights (QGemm's B) per tensor or per output column.

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};
use tract_onnx::tract_core::broadcast::multi_broadcast;
use tract_onnx::tract_core::ops::array::TypedConcat;
use tract_onnx::tract_core::ops::change_axes::wire_with_rank_broadcast;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec, SumPool};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::{DataFormat, Reduce, Reducer};
use tract_onnx::tract_core::ops::quant::{quantize_linear_i8, quantize_linear_u8, DequantizeLinearF32};
use tract_onnx::tract_core::ops::{math, nn};
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::ops::nn::{LayerSoftmax, Softmax};

/// The contrib operators this module implements, by ONNX `op_type`.
pub const OPERATORS: &[&str] = &[
    "QGemm",
    "QLinearAdd",
    "QLinearAveragePool",
    "QLinearConcat",
    "QLinearGlobalAveragePool",
    "QLinearLeakyRelu",
    "QLinearMul",
    "QLinearReduceMean",
    "QLinearSigmoid",
    "QLinearSoftmax",
];

pub fn register(register: &mut OnnxOpRegister) {
    register.insert("QGemm", qgemm);
    register.insert("QLinearAdd", |ctx, node| binary(ctx, node, Core::Add));
    register.insert("QLinearMul", |ctx, node| binary(ctx, node, Core::Mul));
    register.insert("QLinearConcat", qlinear_concat);
    register.insert("QLinearGlobalAveragePool", qlinear_global_average_pool);
    register.insert("QLinearAveragePool", qlinear_average_pool);
    register.insert("QLinearReduceMean", qlinear_reduce_mean);
    register.insert("QLinearLeakyRelu", |ctx, node| {
        let alpha = node.get_attr_opt("alpha")?.unwrap_or(0.01);
        unary(ctx, node, Core::LeakyRelu { alpha })
    });
    register.insert("QLinearSigmoid", |ctx, node| unary(ctx, node, Core::Sigmoid));
    register.insert("QLinearSoftmax", qlinear_softmax);
}

type Built = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

/// Where each of the node's declared inputs lands among the inputs tract wires (it drops the
/// empty names that stand for omitted optional inputs).
fn positions(node: &NodeProto) -> Vec<Option<usize>> {
    let mut next = 0;
    node.input
        .iter()
        .map(|name| {
            (!name.is_empty()).then(|| {
                next += 1;
                next - 1
            })
        })
        .collect()
}

/// The tensor, scale and zero point of the quantized input declared at slots `x`, `x + 1`,
/// `x + 2`.
fn quantized_input(node: &NodeProto, at: &[Option<usize>], x: usize) -> TractResult<Quantized> {
    let required = |slot: usize, what: &str| {
        at.get(slot).copied().flatten().with_context(|| format!("{}: input {slot} ({what}) is required", node.op_type))
    };
    Ok(Quantized {
        x: required(x, "tensor")?,
        scale: required(x + 1, "scale")?,
        zero_point: at.get(x + 2).copied().flatten(),
        axis: None,
    })
}

fn quantized_output(node: &NodeProto, at: &[Option<usize>], scale: usize) -> TractResult<Output> {
    Ok(Output::Quantized {
        scale: at
            .get(scale)
            .copied()
            .flatten()
            .with_context(|| format!("{}: the output scale (input {scale}) is required", node.op_type))?,
        zero_point: at.get(scale + 1).copied().flatten(),
    })
}

fn build(node: &NodeProto, core: Core, inputs: Vec<Quantized>, output: Output) -> Built {
    let arity = node.input.iter().filter(|name| !name.is_empty()).count();
    Ok((expand(QLinear { core, inputs, output, arity }), vec![]))
}

/// QLinearAdd, QLinearMul: `A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp`.
fn binary(_ctx: &ParsingContext, node: &NodeProto, core: Core) -> Built {
    let at = positions(node);
    let inputs = vec![quantized_input(node, &at, 0)?, quantized_input(node, &at, 3)?];
    build(node, core, inputs, quantized_output(node, &at, 6)?)
}

/// QLinearSigmoid, QLinearLeakyRelu: `X, X_scale, X_zp, Y_scale, Y_zp`.
fn unary(_ctx: &ParsingContext, node: &NodeProto, core: Core) -> Built {
    let at = positions(node);
    build(node, core, vec![quantized_input(node, &at, 0)?], quantized_output(node, &at, 3)?)
}

fn qlinear_global_average_pool(ctx: &ParsingContext, node: &NodeProto) -> Built {
    let channels_last = node.get_attr_opt::<i64>("channels_last")?.unwrap_or(0) != 0;
    unary(ctx, node, Core::GlobalAveragePool { channels_last })
}

/// `X, X_scale, X_zp, Y_scale, Y_zp` with AveragePool's attributes (no dilations).
fn qlinear_average_pool(ctx: &ParsingContext, node: &NodeProto) -> Built {
    let kernel_shape: TVec<usize> = node.get_attr_tvec("kernel_shape")?;
    let k = kernel_shape.len();
    // tract's pooling indexes these by spatial axis and divides by the strides: malformed
    // attributes are refused here rather than panicking there.
    ensure!(k > 0 && kernel_shape.iter().all(|&d| d > 0), "QLinearAveragePool: kernel_shape must be positive");
    if let Some(strides) = node.get_attr_opt_tvec::<usize>("strides")? {
        ensure!(
            strides.len() == k && strides.iter().all(|&s| s > 0),
            "QLinearAveragePool: one positive stride per axis"
        );
    }
    if let Some(pads) = node.get_attr_opt_tvec::<usize>("pads")? {
        ensure!(pads.len() == 2 * k, "QLinearAveragePool: pads must give a start and an end per axis");
    }
    let ceil_mode = node.get_attr_opt::<i64>("ceil_mode")?.unwrap_or(0) == 1;
    let zeros = || tvec!(0; kernel_shape.len());
    let padding = match node.get_attr_opt::<&str>("auto_pad")?.unwrap_or("NOTSET") {
        "SAME_UPPER" => PaddingSpec::SameUpper,
        "SAME_LOWER" => PaddingSpec::SameLower,
        "VALID" => PaddingSpec::Valid,
        _ => match node.get_attr_opt_tvec::<usize>("pads")? {
            Some(pads) => {
                let (left, right) = pads.split_at(pads.len() / 2);
                PaddingSpec::ExplicitOnnxPool(left.into(), right.into(), ceil_mode)
            }
            None => PaddingSpec::ExplicitOnnxPool(zeros(), zeros(), ceil_mode),
        },
    };
    let pool = AveragePool {
        kernel_shape: kernel_shape.clone(),
        padding,
        strides: node.get_attr_opt_tvec("strides")?,
        count_include_pad: node.get_attr_opt::<i64>("count_include_pad")?.unwrap_or(0) != 0,
        channels_last: node.get_attr_opt::<i64>("channels_last")?.unwrap_or(0) != 0,
    };
    unary(ctx, node, Core::AveragePool(pool))
}

/// `data, data_scale, data_zp, reduced_scale, reduced_zp` with ReduceMean's `axes` and
/// `keepdims`.
fn qlinear_reduce_mean(ctx: &ParsingContext, node: &NodeProto) -> Built {
    let axes: Vec<i64> = node.get_attr_vec("axes")?;
    let keepdims = node.get_attr_opt::<i64>("keepdims")?.unwrap_or(1) != 0;
    unary(ctx, node, Core::ReduceMean { axes, keepdims })
}

/// `opset` says which Softmax semantics the node keeps: before opset 13, Softmax flattens the
/// input to 2-D around `axis`; from 13 on it works along `axis` alone.
fn qlinear_softmax(ctx: &ParsingContext, node: &NodeProto) -> Built {
    let opset: i64 = node.get_attr("opset")?;
    let axis = node.get_attr_opt("axis")?.unwrap_or(if opset < 13 { 1 } else { -1 });
    unary(ctx, node, Core::Softmax { axis, coerce_to_2d: opset < 13 })
}

/// `Y_scale, Y_zp`, then a `tensor, scale, zp` triple per concatenated input.
fn qlinear_concat(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let at = positions(node);
    let axis: i64 = node.get_attr("axis")?;
    ensure!(
        node.input.len() >= 5 && (node.input.len() - 2).is_multiple_of(3),
        "QLinearConcat: inputs must be Y_scale, Y_zp, then triples"
    );
    let inputs = (2..node.input.len()).step_by(3).map(|x| quantized_input(node, &at, x)).collect::<TractResult<_>>()?;
    build(node, Core::Concat { axis }, inputs, quantized_output(node, &at, 0)?)
}

/// `A, a_scale, a_zp, B, b_scale, b_zp, C, y_scale, y_zp`: `Y = alpha·A'·B' + C`, where the
/// int32 bias C is quantized with scale `alpha·a_scale·b_scale` (onnxruntime's contract with
/// beta = 1) and Y is float when `y_scale` is omitted.
fn qgemm(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let at = positions(node);
    let alpha = node.get_attr_opt("alpha")?.unwrap_or(1.0);
    let trans_a = node.get_attr_opt::<i64>("transA")?.unwrap_or(0) != 0;
    let trans_b = node.get_attr_opt::<i64>("transB")?.unwrap_or(0) != 0;
    let a = quantized_input(node, &at, 0)?;
    // B's per-column scales run along N: its second axis, or its first when stored transposed.
    let b = Quantized { axis: Some(if trans_b { 0 } else { 1 }), ..quantized_input(node, &at, 3)? };
    let bias = at.get(6).copied().flatten();
    let output = if at.get(7).copied().flatten().is_some() { quantized_output(node, &at, 7)? } else { Output::Float };
    build(node, Core::Gemm { alpha, trans_a, trans_b, bias }, vec![a, b], output)
}

/// A quantized input, by position among the node's wired inputs.
#[derive(Clone, Debug)]
struct Quantized {
    x: usize,
    scale: usize,
    zero_point: Option<usize>,
    /// The axis a per-axis scale runs along (only weights have one).
    axis: Option<usize>,
}

#[derive(Clone, Debug)]
enum Output {
    Quantized { scale: usize, zero_point: Option<usize> },
    Float,
}

/// The float computation between the dequantized inputs and the quantized output.
#[derive(Clone, Debug)]
enum Core {
    Add,
    Mul,
    Sigmoid,
    LeakyRelu { alpha: f32 },
    GlobalAveragePool { channels_last: bool },
    AveragePool(AveragePool),
    ReduceMean { axes: Vec<i64>, keepdims: bool },
    Softmax { axis: i64, coerce_to_2d: bool },
    Concat { axis: i64 },
    Gemm { alpha: f32, trans_a: bool, trans_b: bool, bias: Option<usize> },
}

/// QLinearAveragePool's window: tract's `SumPool`, normalised, once the channels are known.
#[derive(Clone, Debug)]
struct AveragePool {
    kernel_shape: TVec<usize>,
    padding: PaddingSpec,
    strides: Option<TVec<usize>>,
    count_include_pad: bool,
    channels_last: bool,
}

impl AveragePool {
    fn spec(&self, shape: &[TDim]) -> TractResult<PoolSpec> {
        let format = if self.channels_last { DataFormat::NHWC } else { DataFormat::NCHW };
        let channels = format.shape(shape.to_vec())?.c().to_usize()?;
        Ok(PoolSpec {
            data_format: format,
            kernel_shape: self.kernel_shape.clone(),
            padding: self.padding.clone(),
            dilations: None,
            strides: self.strides.clone(),
            input_channels: channels,
            output_channels: channels,
        })
    }
}

/// The axes a ReduceMean reduces, resolved for `rank`, ascending.
fn reduced_axes(axes: &[i64], rank: usize) -> TractResult<TVec<usize>> {
    let mut resolved = axes.iter().map(|&a| resolve_axis(a, rank)).collect::<TractResult<TVec<_>>>()?;
    resolved.sort_unstable();
    resolved.dedup();
    Ok(resolved)
}

/// One QOperator node: dequantize, compute in f32, quantize.
#[derive(Clone, Debug)]
struct QLinear {
    core: Core,
    inputs: Vec<Quantized>,
    output: Output,
    /// How many inputs tract wires to the node.
    arity: usize,
}

impl Expansion for QLinear {
    fn name(&self) -> StaticName {
        format!("QLinear{:?}", self.core).into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, self.arity)?;
        check_output_arity(outputs, 1)?;
        let y = &outputs[0];
        match self.output {
            Output::Quantized { zero_point: Some(zp), .. } => s.equals(&y.datum_type, &inputs[zp].datum_type)?,
            Output::Quantized { zero_point: None, .. } => s.equals(&y.datum_type, u8::datum_type())?,
            Output::Float => s.equals(&y.datum_type, f32::datum_type())?,
        }
        let x: Vec<&'p TensorProxy> = self.inputs.iter().map(|q| &inputs[q.x]).collect();
        match self.core {
            Core::Add | Core::Mul => {
                s.given_2(&x[0].shape, &x[1].shape, move |s, a, b| s.equals(&y.shape, multi_broadcast(&[a, b])?))?
            }
            Core::Sigmoid | Core::LeakyRelu { .. } | Core::Softmax { .. } => s.equals(&y.shape, &x[0].shape)?,
            Core::GlobalAveragePool { channels_last } => {
                let x = x[0];
                s.equals(&y.rank, &x.rank)?;
                s.equals(&y.shape[0], &x.shape[0])?;
                s.given(&x.rank, move |s, rank| {
                    let channel = if channels_last { rank as usize - 1 } else { 1 };
                    for axis in 1..rank as usize {
                        if axis == channel {
                            s.equals(&y.shape[axis], &x.shape[axis])?;
                        } else {
                            s.equals(&y.shape[axis], TDim::from(1))?;
                        }
                    }
                    Ok(())
                })?
            }
            Core::AveragePool(ref pool) => {
                let x = x[0];
                s.equals(&y.rank, &x.rank)?;
                s.given(&x.shape, move |s, shape| {
                    let out = pool.spec(&shape)?.output_shape(&shape)?;
                    s.equals(&y.shape, out.shape)
                })?
            }
            Core::ReduceMean { ref axes, keepdims } => {
                let x = x[0];
                s.given(&x.shape, move |s, shape| {
                    let reduced = reduced_axes(axes, shape.len())?;
                    let out: TVec<TDim> = (0..shape.len())
                        .filter_map(|a| match (reduced.contains(&a), keepdims) {
                            (false, _) => Some(shape[a].clone()),
                            (true, true) => Some(1.into()),
                            (true, false) => None,
                        })
                        .collect();
                    s.equals(&y.shape, out)
                })?
            }
            Core::Concat { axis } => {
                s.equals(&y.rank, &x[0].rank)?;
                s.equals_all(x.iter().map(|x| x.rank.bex()).collect())?;
                s.given(&x[0].rank, move |s, rank| {
                    let axis = resolve_axis(axis, rank as usize)?;
                    let summed = x.iter().map(|x| x.shape[axis].bex()).collect();
                    s.equals(rules::expr::SumExp::new(summed), &y.shape[axis])?;
                    for other in (0..rank as usize).filter(|a| *a != axis) {
                        s.equals_all(x.iter().map(|x| x.shape[other].bex()).chain([y.shape[other].bex()]).collect())?;
                    }
                    Ok(())
                })?
            }
            Core::Gemm { trans_a, trans_b, .. } => {
                let (a, b) = (x[0], x[1]);
                s.equals(&a.rank, 2)?;
                s.equals(&b.rank, 2)?;
                s.equals(&y.rank, 2)?;
                let (m, k) = if trans_a { (1, 0) } else { (0, 1) };
                let (kb, n) = if trans_b { (1, 0) } else { (0, 1) };
                s.equals(&a.shape[m], &y.shape[0])?;
                s.equals(&a.shape[k], &b.shape[kb])?;
                s.equals(&b.shape[n], &y.shape[1])?;
            }
        }
        Ok(())
    }

    fn wire(&self, prefix: &str, target: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let floats = self
            .inputs
            .iter()
            .enumerate()
            .map(|(ix, q)| dequantize(&format!("{prefix}.dequantize{ix}"), target, inputs, q))
            .collect::<TractResult<Vec<_>>>()?;
        let name = format!("{prefix}.f32");
        let y = match self.core {
            Core::Add => wire_with_rank_broadcast(&name, target, math::add(), &floats)?[0],
            Core::Mul => wire_with_rank_broadcast(&name, target, math::mul(), &floats)?[0],
            Core::Sigmoid => target.wire_node(&name, nn::sigmoid(), &floats)?[0],
            Core::LeakyRelu { alpha } => target.wire_node(&name, nn::leaky_relu(alpha), &floats)?[0],
            Core::GlobalAveragePool { channels_last } => global_average_pool(&name, target, floats[0], channels_last)?,
            Core::AveragePool(ref pool) => {
                let shape = target.outlet_fact(floats[0])?.shape.to_tvec();
                let op = SumPool {
                    pool_spec: pool.spec(&shape)?,
                    count_include_pad: pool.count_include_pad,
                    normalize: true,
                };
                target.wire_node(&name, op, &floats)?[0]
            }
            Core::ReduceMean { ref axes, keepdims } => reduce_mean(&name, target, floats[0], axes, keepdims)?,
            Core::Softmax { axis, coerce_to_2d: true } => {
                LayerSoftmax::new(axis as isize, true).wire(&name, target, &floats)?[0]
            }
            Core::Softmax { axis, coerce_to_2d: false } => Softmax::new(axis as isize).wire(&name, target, &floats)?[0],
            Core::Concat { axis } => {
                let axis = resolve_axis(axis, target.outlet_fact(floats[0])?.rank())?;
                target.wire_node(&name, TypedConcat::new(axis), &floats)?[0]
            }
            Core::Gemm { alpha, trans_a, trans_b, bias } => {
                let axes = AxesMapping::for_numpy_matmul(2, trans_a, trans_b, false)?;
                let mut y = target.wire_node(&name, EinSum::new(axes, f32::datum_type()), &floats)?[0];
                if let Some(bias) = bias {
                    let bias = gemm_bias(&format!("{prefix}.bias"), target, inputs, bias, &self.inputs)?;
                    y = wire_with_rank_broadcast(format!("{prefix}.add_bias"), target, math::add(), &[y, bias])?[0];
                }
                if alpha != 1.0 {
                    let alpha = target.add_const(format!("{prefix}.alpha"), tensor2(&[[alpha]]))?;
                    y = target.wire_node(format!("{prefix}.times_alpha"), math::mul(), &[y, alpha])?[0];
                }
                y
            }
        };
        match self.output {
            Output::Float => Ok(tvec![y]),
            Output::Quantized { scale, zero_point } => {
                quantize(prefix, target, y, inputs[scale], zero_point.map(|z| inputs[z]))
            }
        }
    }
}

fn resolve_axis(axis: i64, rank: usize) -> TractResult<usize> {
    let resolved = if axis < 0 { axis + rank as i64 } else { axis };
    ensure!((0..rank as i64).contains(&resolved), "axis {axis} out of range for rank {rank}");
    Ok(resolved as usize)
}

fn konst(target: &TypedModel, outlet: OutletId, what: &str) -> TractResult<Arc<Tensor>> {
    target.outlet_fact(outlet)?.konst.clone().with_context(|| format!("{what} must be a constant"))
}

/// `values` laid along `axis` of an array of `shape` (a single value fills it all), or an error
/// when their count does not match that axis.
fn along(values: &Tensor, axis: Option<usize>, shape: &[usize]) -> TractResult<ArrayD<f32>> {
    let values = values.cast_to::<f32>()?.to_plain_array_view::<f32>()?.iter().copied().collect::<Vec<f32>>();
    let mut laid = vec![1; shape.len()];
    if values.len() > 1 {
        let axis = axis.context("a per-axis scale or zero point on a tensor quantized per tensor")?;
        ensure!(axis < shape.len(), "quantization axis {axis} out of range for rank {}", shape.len());
        laid[axis] = values.len();
    }
    let laid = ArrayD::from_shape_vec(IxDyn(&laid), values)?;
    let broadcast = laid.broadcast(IxDyn(shape));
    Ok(broadcast
        .with_context(|| format!("{:?} values do not fit a tensor of shape {shape:?}", laid.shape()))?
        .to_owned())
}

fn dequantize(name: &str, target: &mut TypedModel, inputs: &[OutletId], q: &Quantized) -> TractResult<OutletId> {
    let scale = konst(target, inputs[q.scale], "a scale")?;
    let zero_point = match q.zero_point {
        Some(zp) => konst(target, inputs[zp], "a zero point")?,
        None => rctensor0(0i32),
    };
    let fact = target.outlet_fact(inputs[q.x])?.clone();
    if let Some(weights) = fact.konst {
        let values = weights.cast_to::<f32>()?.to_plain_array_view::<f32>()?.to_owned();
        let dequantized =
            (values - along(&zero_point, q.axis, weights.shape())?) * along(&scale, q.axis, weights.shape())?;
        return target.add_const(name, dequantized.into_tensor());
    }
    ensure!(scale.len() == 1 && zero_point.len() == 1, "{name}: computed tensors must be quantized per tensor");
    let op = DequantizeLinearF32::new(scale.cast_to_scalar::<f32>()?, zero_point.cast_to_scalar::<i32>()?);
    Ok(target.wire_node(name, op, &[inputs[q.x]])?[0])
}

fn quantize(
    name: &str,
    target: &mut TypedModel,
    y: OutletId,
    scale: OutletId,
    zero_point: Option<OutletId>,
) -> TractResult<TVec<OutletId>> {
    let scale = konst(target, scale, "the output scale")?;
    let zero_point = match zero_point {
        Some(zp) => konst(target, zp, "the output zero point")?,
        None => rctensor0(0u8),
    };
    ensure!(scale.len() == 1 && zero_point.len() == 1, "{name}: outputs must be quantized per tensor");
    let inverse_scale = scale.cast_to_scalar::<f32>()?.recip();
    let op: Box<dyn TypedOp> = match zero_point.datum_type() {
        DatumType::U8 => Box::new(quantize_linear_u8(inverse_scale, zero_point.cast_to_scalar::<u8>()?)),
        DatumType::I8 => Box::new(quantize_linear_i8(inverse_scale, zero_point.cast_to_scalar::<i8>()?)),
        other => bail!("{name}: output type {other:?} is neither u8 nor i8"),
    };
    target.wire_node(name, op, &[y])
}

/// Averages over the spatial axes: all but the batch and channel axes.
fn global_average_pool(name: &str, target: &mut TypedModel, x: OutletId, channels_last: bool) -> TractResult<OutletId> {
    let shape = target.outlet_fact(x)?.shape.clone();
    let spatial: TVec<usize> =
        if channels_last { (1..shape.rank() - 1).collect() } else { (2..shape.rank()).collect() };
    let count =
        spatial.iter().map(|axis| shape[*axis].to_i64().map_err(TractError::from)).product::<TractResult<i64>>()?;
    let sum = target.wire_node(format!("{name}.sum"), Reduce::new(spatial, Reducer::Sum), &[x])?;
    let count = target.add_const(format!("{name}.count"), tensor0(count as f32))?;
    Ok(wire_with_rank_broadcast(name, target, math::div(), &[sum[0], count])?[0])
}

/// The mean over `axes`: a sum, divided by the count, then the reduced axes dropped unless
/// kept.
fn reduce_mean(
    name: &str,
    target: &mut TypedModel,
    x: OutletId,
    axes: &[i64],
    keepdims: bool,
) -> TractResult<OutletId> {
    let shape = target.outlet_fact(x)?.shape.clone();
    let axes = reduced_axes(axes, shape.rank())?;
    let count =
        axes.iter().map(|axis| shape[*axis].to_i64().map_err(TractError::from)).product::<TractResult<i64>>()?;
    let sum = target.wire_node(format!("{name}.sum"), Reduce::new(axes.clone(), Reducer::Sum), &[x])?;
    let count = target.add_const(format!("{name}.count"), tensor0(count as f32))?;
    let mut y = wire_with_rank_broadcast(format!("{name}.mean"), target, math::div(), &[sum[0], count])?[0];
    if !keepdims {
        for &axis in axes.iter().rev() {
            y = target.wire_node(format!("{name}.rm{axis}"), AxisOp::Rm(axis), &[y])?[0];
        }
    }
    Ok(y)
}

/// QGemm's int32 bias in f32: `C · a_scale · b_scale` (b_scale per output column or not).
fn gemm_bias(
    name: &str,
    target: &mut TypedModel,
    inputs: &[OutletId],
    bias: usize,
    ab: &[Quantized],
) -> TractResult<OutletId> {
    let c = konst(target, inputs[bias], "QGemm's bias")?;
    let (a, b) = (&ab[0], &ab[1]);
    let a_scale = konst(target, inputs[a.scale], "a scale")?.cast_to_scalar::<f32>()?;
    let b_scale = along(&*konst(target, inputs[b.scale], "a scale")?, c.rank().checked_sub(1), c.shape())?;
    let values = c.cast_to::<f32>()?.to_plain_array_view::<f32>()?.to_owned();
    target.add_const(name, (values * a_scale * b_scale).into_tensor())
}
