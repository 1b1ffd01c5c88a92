//! Dynamic int8 matrix products (`MatMulInteger` with constant weights, what onnxruntime's
//! `quantize_dynamic` makes of every `MatMul` of a transformer's linear layers) onto
//! [`IntegerConv`]'s simd128 dot-product kernel, as 1×1 convolutions.
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
//! product's output shape when it differs. The integer sums are exact, so the outputs are
//! tract's bit for bit.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::einsum::EinSum;

use super::integer_conv::{conv_integer, operator, scale_and_bias, shifted_kernel, Side};
use super::{Context, Pass, Stage};
use crate::kernels::integer_conv::pack::{Epilogue, Geometry, Layout};
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

    fn run(&self, model: &mut TypedModel, _context: &Context) -> TractResult<usize> {
        rewrite(model)
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

/// `A[…, k] · B → O[…, n]` where `…` keeps the input's other axes in order (or drops some of
/// size 1), so that input rows and output rows are the same rows of the same row-major arrays.
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
    // Every output row axis is an input row axis of the same size, in the same order; the
    // input's others have size 1.
    let mut kept = rows_o.iter().zip(&output[..rows_o.len()]).peekable();
    for (axis, size) in rows_a.iter().zip(&input[..rows_a.len()]) {
        match kept.peek() {
            Some((o_axis, o_size)) if *o_axis == axis && *o_size == size => {
                kept.next();
            }
            _ if *size == 1 => {}
            _ => return None,
        }
    }
    if kept.next().is_some() {
        return None;
    }
    let rows = input[..rows_a.len()].iter().product();
    Some(Product { rows, depth: input[rows_a.len()], transposed })
}

/// The patch for one integer `EinSum` that is a matrix product by constant weights, if `node`
/// is one (the checks of [`conv_integer`]: what `MatMulInteger` becomes, read by a `Cast` to
/// f32).
fn patch(model: &TypedModel, node: &TypedNode) -> TractResult<Option<TypedModelPatch>> {
    let Some(einsum) = node.op_as::<EinSum>().filter(|e| e.q_params == Some(i32::datum_type())) else {
        return Ok(None);
    };
    let Some(cast) = conv_integer(model, node)? else { return Ok(None) };
    let x = node.inputs[0];
    let (Some(input), Some(output)) = (
        model.outlet_fact(x)?.shape.as_concrete().map(|s| s.to_vec()),
        model.outlet_fact(OutletId::new(node.id, 0))?.shape.as_concrete().map(|s| s.to_vec()),
    ) else {
        return Ok(None);
    };
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
    // The rows as one line of pixels of an image held channels-last.
    let side = Side { batch: false, layout: Layout::Interleaved };
    let geometry = Geometry {
        channels: k,
        input: [1, product.rows],
        kernel: [1, 1],
        strides: [1, 1],
        dilations: [1, 1],
        pad_before: [0, 0],
        output: [1, product.rows],
    };
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
    let epilogue = Epilogue { zero_point: 0, scales: vec![1.0; n], bias };
    let op = operator(&values, geometry, epilogue, [side, side], runtime);

    let mut patch = TypedModelPatch::new(format!("integer matrix product {}", node.name));
    let wires = inputs.iter().map(|i| patch.tap_model(model, *i)).collect::<TractResult<TVec<_>>>()?;
    let mut out = patch.wire_node(&node.name, op, &wires)?[0];
    let target: TVec<TDim> = model.outlet_fact(replaces)?.shape.to_tvec();
    let ours: TVec<TDim> = tvec!(1.into(), product.rows.into(), n.into());
    if target != ours {
        out = patch.wire_node(format!("{}.reshape", node.name), AxisOp::Reshape(0, ours, target), &[out])?[0];
    }
    patch.shunt_outside(model, replaces, out)?;
    Ok(Some(patch))
}

/// Replaces each integer matrix product by constant weights with [`IntegerConv`]; returns how
/// many.
pub fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut patches = vec![];
    for node in model.nodes() {
        if let Some(patch) = patch(model, node)? {
            patches.push(patch);
        }
    }
    let count = patches.len();
    for patch in patches {
        patch.apply(model)?;
    }
    if count > 0 {
        *model = model.clone().into_compact()?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_reads_its_rows_in_place_or_is_not_one() {
        let p = |e: &str, i: &[usize], o: &[usize]| product(e, i, o);
        let rows = |rows, depth, transposed| Some(Product { rows, depth, transposed });
        assert_eq!(p("amk,kn,,,,,,,->amn", &[2, 128, 384], &[2, 128, 1536]), rows(256, 384, true));
        // A batch axis of 1 dropped from the output.
        assert_eq!(p("amk,kn,,,,,,,->mn", &[1, 128, 384], &[128, 384]), rows(128, 384, true));
        assert_eq!(p("mk,nk,,,,,,,->mn", &[7, 16], &[7, 3]), rows(7, 16, false));
        // Dropping an axis of more than one row, reordering rows, or K not last: not in place.
        assert_eq!(p("amk,kn,,,,,,,->mn", &[2, 128, 384], &[128, 384]), None);
        assert_eq!(p("amk,kn,,,,,,,->man", &[2, 3, 4], &[3, 2, 5]), None);
        assert_eq!(p("akm,kn,,,,,,,->amn", &[1, 4, 3], &[1, 3, 5]), None);
        // A product of two runtime operands (attention's) has no weights axis pair.
        assert_eq!(p("mbk,nbk->abmn", &[128, 12, 32], &[1, 12, 128, 128]), None);
    }
}
