//! int8 matrix products by constant weights onto [`IntegerConv`]'s simd128 dot-product kernel,
//! as 1×1 convolutions: dynamic ones (`MatMulInteger`, what onnxruntime's `quantize_dynamic`
//! makes of every `MatMul` of a transformer's linear layers) and static QDQ ones (a `MatMul` of a
//! dequantized u8/i8 input by dequantized int8 weights, what `quantize_static` makes of them).
//!
//! tract 0.23.9 declutters `DynamicQuantizeLinear → MatMulInteger → Cast → Mul(scale)` into its
//! integer `EinSum` (`amk,kn,…->amn`, `q_params` i32) and runs it as an i8 matrix product with
//! an `OffsetU8asI8` copy, an i32 cast and row sums of the input, and zero-point corrections
//! around it: most of a text encoder's instructions (see `embed_text` in
//! `benchmarks/profile.md`).
//!
//! A product `A[…, m, k] · B[k, n]` is the 1×1 convolution of an image of `m · …` pixels of `k`
//! channels held channels-last, with `n` output channels: the input and output memory are the
//! same row-major arrays. The pass wires [`IntegerConv`] on that view, with the weights' own
//! zero point subtracted once at build and the input's zero point and the scale as inputs
//! (exactly as [`super::integer_conv`] does for `ConvInteger`), then reshapes back to the
//! product's output shape when it differs. For dynamic products the integer sums are exact and
//! the scale is applied as tract applies it, so the outputs are tract's bit for bit. For static
//! ones tract computes in f32 on the dequantized values; the kernel computes `Σ (x − x_zp)·w`
//! exactly and scales once, as onnxruntime's integer QDQ kernels do (the int8 weights come from
//! the ONNX graph, [`crate::onnx::quantized_weights`], and the rewrite fires only where tract's
//! f32 constant is exactly those weights dequantized).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::einsum::EinSum;

use super::integer_conv::{
    conv_integer, dequantized, operator, other_operand, scale_and_bias, shifted_kernel, tensor_floats, Side,
};
use super::{Context, Pass, Stage};
use crate::kernels::integer_conv::pack::{Epilogue, Geometry, Layout};
use crate::onnx::quantized_weights::{MatMulWeights, QuantizedWeights};
use crate::ops::integer_conv::Runtime;

/// The pass: [`rewrite`], after declutter.
pub struct IntegerMatMulRewrite;

impl Pass for IntegerMatMulRewrite {
    fn name(&self) -> &'static str {
        "integer matrix products"
    }

    fn stage(&self) -> Stage {
        Stage::Decluttered
    }

    fn run(&self, model: &mut TypedModel, context: &Context) -> TractResult<usize> {
        rewrite(model, context.weights)
    }
}

/// The largest K whose exact sums stay within i32: each product of a u8 input and a weight
/// minus its zero point is at most 255 · 255 in magnitude.
const MAX_DEPTH: usize = (i32::MAX / (255 * 255)) as usize;

/// How a product's einsum reads its operands.
#[derive(Debug, PartialEq, Eq)]
struct Product {
    /// Rows of the input: the product of its axes before K.
    rows: usize,
    depth: usize,
    /// Whether the weights' axes are `kn` (ONNX's `B`), so they need transposing to `[n, k]`;
    /// `nk` already is.
    transposed: bool,
}

/// `A[…, k] · B → O[…, n]` where `…` keeps the input's other axes in order (dropping or adding
/// some of size 1), so that input rows and output rows are the same rows of the same row-major
/// arrays.
fn product(expression: &str, input: &[usize], output: &[usize]) -> Option<Product> {
    let (operands, out) = expression.split_once("->")?;
    let operands: Vec<&str> = operands.split(',').collect();
    if operands.len() < 2 || operands[2..].iter().any(|axes| !axes.is_empty()) {
        return None;
    }
    let (a, b): (Vec<char>, Vec<char>) = (operands[0].chars().collect(), operands[1].chars().collect());
    let o: Vec<char> = out.chars().collect();
    let (&k, rows_a) = a.split_last()?;
    let (&n, rows_o) = o.split_last()?;
    let transposed = match b.as_slice() {
        [x, y] if *x == k && *y == n => true,
        [x, y] if *x == n && *y == k => false,
        _ => return None,
    };
    if a.len() != input.len() || o.len() != output.len() || a.contains(&n) || o.contains(&k) {
        return None;
    }
    // The rows' axes of more than one element are the same on both sides, in the same order
    // (axes of size 1, on either side, do not move a row in memory).
    let big = |axes: &[char], sizes: &[usize]| -> Vec<(char, usize)> {
        axes.iter().zip(sizes).filter(|(_, &size)| size != 1).map(|(&a, &size)| (a, size)).collect()
    };
    if big(rows_a, &input[..rows_a.len()]) != big(rows_o, &output[..rows_o.len()]) {
        return None;
    }
    let rows = input[..rows_a.len()].iter().product();
    Some(Product { rows, depth: input[rows_a.len()], transposed })
}

/// The geometry of `rows` rows of `k` values: one line of pixels of an image held channels-last.
fn line(k: usize, rows: usize) -> Geometry {
    Geometry {
        channels: k,
        input: [1, rows],
        kernel: [1, 1],
        strides: [1, 1],
        dilations: [1, 1],
        pad_before: [0, 0],
        output: [1, rows],
    }
}

/// Wires `op` over `inputs` in place of `replaces`, reshaped back from `[1, rows, n]` to its
/// shape.
fn wire(
    model: &TypedModel,
    node: &TypedNode,
    op: crate::ops::integer_conv::IntegerConv,
    inputs: &[OutletId],
    replaces: OutletId,
    rows: usize,
    n: usize,
) -> TractResult<TypedModelPatch> {
    let mut patch = TypedModelPatch::new(format!("integer matrix product {}", node.name));
    let wires = inputs.iter().map(|i| patch.tap_model(model, *i)).collect::<TractResult<TVec<_>>>()?;
    let mut out = patch.wire_node(&node.name, op, &wires)?[0];
    let target: TVec<TDim> = model.outlet_fact(replaces)?.shape.to_tvec();
    let ours: TVec<TDim> = tvec!(1.into(), rows.into(), n.into());
    if target != ours {
        out = patch.wire_node(format!("{}.reshape", node.name), AxisOp::Reshape(0, ours, target), &[out])?[0];
    }
    patch.shunt_outside(model, replaces, out)?;
    Ok(patch)
}

/// The concrete shapes of `node`'s first input and of its output.
fn shapes(model: &TypedModel, node: &TypedNode) -> TractResult<Option<(Vec<usize>, Vec<usize>)>> {
    let input = model.outlet_fact(node.inputs[0])?.shape.as_concrete().map(|s| s.to_vec());
    let output = model.outlet_fact(OutletId::new(node.id, 0))?.shape.as_concrete().map(|s| s.to_vec());
    Ok(input.zip(output))
}

/// A static (QDQ) product: tract's f32 `EinSum` of a dequantized u8/i8 input by a constant that
/// is exactly the ONNX graph's int8 weights of this `MatMul` dequantized; with the bias `Add`
/// that follows it when it adds one constant per column.
fn static_patch(
    model: &TypedModel,
    node: &TypedNode,
    weights: &QuantizedWeights,
) -> TractResult<Option<TypedModelPatch>> {
    let Some(einsum) = node.op_as::<EinSum>().filter(|e| e.q_params.is_none() && node.inputs.len() == 2) else {
        return Ok(None);
    };
    let Some(onnx) = weights.matmul(&node.name) else { return Ok(None) };
    let Some((x, dequantize)) = dequantized(model, node.inputs[0])? else { return Ok(None) };
    let Some((input, output)) = shapes(model, node)? else { return Ok(None) };
    let Some(product) = product(&einsum.axes.to_string(), &input, &output) else { return Ok(None) };
    let MatMulWeights { values, shape: [k, n], scales } = onnx;
    let Some(kernel) = model.outlet_fact(node.inputs[1])?.konst.clone() else { return Ok(None) };
    let scale = |column: usize| scales[if scales.len() == 1 { 0 } else { column }];
    // tract's constant, in its own layout ([k, n], or [n, k] when transposed to `nk`).
    let expected: Vec<f32> = if product.transposed {
        (0..k * n).map(|i| values[i] as f32 * scale(i % n)).collect()
    } else {
        (0..n * k).map(|i| values[(i % k) * n + i / k] as f32 * scale(i / k)).collect()
    };
    let kernel_shape = if product.transposed { [*k, *n] } else { [*n, *k] };
    if product.depth != *k
        || product.depth > MAX_DEPTH
        || kernel.datum_type() != f32::datum_type()
        || kernel.shape() != kernel_shape
        || tensor_floats(&kernel)? != expected
    {
        return Ok(None);
    }
    let side = Side { batch: false, layout: Layout::Interleaved };
    let out = OutletId::new(node.id, 0);
    // The bias add, when it is the product's only reader and adds one constant per column.
    let bias_add = model.single_succ(node.id)?.and_then(|add| {
        let b = model.outlet_fact(other_operand(add, "Add", out)?).ok()?.konst.clone()?;
        let fits = b.datum_type() == f32::datum_type() && (b.len() == *n || b.len() == 1) && side.along_channels(&b);
        let same_shape = model.outlet_fact(OutletId::new(add.id, 0)).ok()?.shape == model.outlet_fact(out).ok()?.shape;
        (fits && same_shape).then_some((add.id, b))
    });
    let (bias, replaces) = match bias_add {
        Some((add, b)) => {
            let b = tensor_floats(&b)?;
            (if b.len() == 1 { vec![b[0]; *n] } else { b }, OutletId::new(add, 0))
        }
        None => (vec![0.0; *n], out),
    };
    let epilogue = Epilogue {
        zero_point: dequantize.zero_point,
        scales: (0..*n).map(|column| dequantize.scale * scale(column)).collect(),
        bias,
        raw: false,
    };
    // The kernel's weights are [n, k].
    let columns: Vec<i16> = (0..n * k).map(|i| values[(i % k) * n + i / k] as i16).collect();
    let op = operator(&columns, line(*k, product.rows), epilogue, [side, side], Runtime::default());
    Ok(Some(wire(model, node, op, &[x], replaces, product.rows, *n)?))
}

/// The patch for one integer `EinSum` that is a matrix product by constant weights, if `node`
/// is one (the checks of [`conv_integer`]: what `MatMulInteger` becomes, read by a `Cast` to
/// f32).
fn dynamic_patch(model: &TypedModel, node: &TypedNode) -> TractResult<Option<TypedModelPatch>> {
    let Some(einsum) = node.op_as::<EinSum>().filter(|e| e.q_params == Some(i32::datum_type())) else {
        return Ok(None);
    };
    let Some(cast) = conv_integer(model, node)? else { return Ok(None) };
    let x = node.inputs[0];
    let Some((input, output)) = shapes(model, node)? else { return Ok(None) };
    let Some(product) = product(&einsum.axes.to_string(), &input, &output) else { return Ok(None) };
    let Some(kernel) = shifted_kernel(model, node)? else { return Ok(None) };
    if kernel.rank() != 2 || product.depth == 0 || product.depth > MAX_DEPTH || product.rows == 0 {
        return Ok(None);
    }
    let kernel = if product.transposed { kernel.permute_axes(&[1, 0])? } else { kernel };
    let [n, k] = [kernel.shape()[0], kernel.shape()[1]];
    if k != product.depth || n == 0 {
        return Ok(None);
    }
    let values: Vec<i16> = kernel.try_as_plain_ram()?.as_slice::<i32>()?.iter().map(|v| *v as i16).collect();
    let side = Side { batch: false, layout: Layout::Interleaved };
    let mut inputs = vec![x, node.inputs[3]];
    let mut runtime = Runtime { zero_point: true, scale: false };
    let (bias, replaces) = match scale_and_bias(model, cast, n, side)? {
        Some((scale, bias, replaces)) => {
            inputs.push(scale);
            runtime.scale = true;
            (bias, replaces)
        }
        None => (vec![0.0; n], OutletId::new(cast.id, 0)),
    };
    let epilogue = Epilogue { zero_point: 0, scales: vec![1.0; n], bias, raw: false };
    let op = operator(&values, line(k, product.rows), epilogue, [side, side], runtime);
    Ok(Some(wire(model, node, op, &inputs, replaces, product.rows, n)?))
}

/// Replaces each int8 matrix product by constant weights (dynamic, or static with its int8
/// weights in `weights`) with [`IntegerConv`]; returns how many.
pub fn rewrite(model: &mut TypedModel, weights: &QuantizedWeights) -> TractResult<usize> {
    let mut patches = vec![];
    for node in model.nodes() {
        let found = match dynamic_patch(model, node)? {
            Some(patch) => Some(patch),
            None => static_patch(model, node, weights)?,
        };
        patches.extend(found);
    }
    super::apply_all(model, patches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_reads_its_rows_in_place_or_is_not_one() {
        let p = |e: &str, i: &[usize], o: &[usize]| product(e, i, o);
        let rows = |rows, depth, transposed| Some(Product { rows, depth, transposed });
        assert_eq!(p("amk,kn,,,,,,,->amn", &[2, 128, 384], &[2, 128, 1536]), rows(256, 384, true));
        // A batch axis of 1 dropped from the output, or added to it.
        assert_eq!(p("amk,kn,,,,,,,->mn", &[1, 128, 384], &[128, 384]), rows(128, 384, true));
        assert_eq!(p("mk,kn->amn", &[128, 384], &[1, 128, 384]), rows(128, 384, true));
        assert_eq!(p("mk,nk,,,,,,,->mn", &[7, 16], &[7, 3]), rows(7, 16, false));
        // Dropping an axis of more than one row, reordering rows, or K not last: not in place.
        assert_eq!(p("amk,kn,,,,,,,->mn", &[2, 128, 384], &[128, 384]), None);
        assert_eq!(p("amk,kn,,,,,,,->man", &[2, 3, 4], &[3, 2, 5]), None);
        assert_eq!(p("akm,kn,,,,,,,->amn", &[1, 4, 3], &[1, 3, 5]), None);
        // A product of two runtime operands (attention's) has no weights axis pair.
        assert_eq!(p("mbk,nbk->abmn", &[128, 12, 32], &[1, 12, 128, 128]), None);
    }
}
