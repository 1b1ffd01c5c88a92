//! Quantize and dequantize, four lanes at a time, and a quantize that only feeds a dequantize
//! fused with it into one pass.
//!
//! tract 0.23.9 computes `QuantizeLinearU8`/`I8` and `DequantizeLinearF32` one element at a time.
//! Under the IC's cost table that is expensive: its float→int conversion costs 20 instructions
//! and its rounding is a dozen more, so quantizing took about 55 instructions per element and
//! dequantizing about 15 — 60 to 72 % of a static int8 model's inference (the benchmark's
//! profile). With wasm simd128, rounding (`f32x4.nearest`), conversion (`i32x4.trunc_sat`) and
//! clamping (`i32x4.min/max`) cost one instruction per four lanes.
//!
//! The results are tract's, bit for bit: the same operations in the same order on each element
//! (multiply by the inverse scale, round half to even, saturate to i32, add the zero point
//! wrapping, clamp; subtract the zero point, convert, multiply by the scale). [`check_kernels`]
//! compares them with tract's own scalar functions on edge cases, natively and, through the
//! canister's self-test, on wasm.
//!
//! [`accelerate`] rewrites an optimised model: each quantize or dequantize becomes a [`Qdq`]
//! node, and a quantize whose only reader is a dequantize (possibly through reshapes) becomes a
//! single quantize-dequantize pass with no int8 tensor in between.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::change_axes::{AxisOp, IntoShape};
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::quant::{quantize_linear_f32_i8, quantize_linear_f32_u8, DequantizeLinearF32, QuantizeLinearI8, QuantizeLinearU8};

/// `q = clamp(round_half_even(x · inv_scale) + zero_point, min, max)`, as tract defines it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quantize {
    pub inv_scale: f32,
    pub zero_point: i32,
    /// u8 or i8: the output type and the clamping range.
    pub dt: DatumType,
}

impl Quantize {
    #[inline(always)]
    fn range(&self) -> (i32, i32) {
        if self.dt == u8::datum_type() {
            (0, 255)
        } else {
            (-128, 127)
        }
    }

    #[inline]
    fn scalar(&self, x: f32) -> i32 {
        let (lo, hi) = self.range();
        ((x * self.inv_scale).round_ties_even() as i32).wrapping_add(self.zero_point).clamp(lo, hi)
    }
}

/// `x = (q − zero_point) · scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dequantize {
    pub scale: f32,
    pub zero_point: i32,
}

impl Dequantize {
    #[inline]
    fn scalar(&self, q: i32) -> f32 {
        q.wrapping_sub(self.zero_point) as f32 * self.scale
    }
}

/// What a [`Qdq`] node computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Conversion {
    /// f32 → u8 or i8.
    Quantize(Quantize),
    /// u8 or i8 → f32.
    Dequantize(Dequantize),
    /// f32 → f32: the quantize, then the dequantize, with no int8 tensor in between.
    Both(Quantize, Dequantize),
}

/// One conversion pass over a tensor (see the module's documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct Qdq(pub Conversion);

impl Eq for Qdq {}

impl Op for Qdq {
    fn name(&self) -> StaticName {
        match self.0 {
            Conversion::Quantize(_) => "SimdQuantize",
            Conversion::Dequantize(_) => "SimdDequantize",
            Conversion::Both(..) => "SimdQuantizeDequantize",
        }
        .into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}", self.0)])
    }

    op_as_typed_op!();
}

impl EvalOp for Qdq {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let view = input.try_as_plain_ram()?;
        let output = match self.0 {
            Conversion::Quantize(q) => {
                let xs = view.as_slice::<f32>()?;
                let mut out = unsafe { Tensor::uninitialized_dt(q.dt, input.shape())? };
                let mut plain = out.try_as_plain_ram_mut()?;
                if q.dt == u8::datum_type() {
                    kernels::quantize(&q, xs, plain.as_slice_mut::<u8>()?);
                } else {
                    kernels::quantize(&q, xs, plain.as_slice_mut::<i8>()?);
                }
                out
            }
            Conversion::Dequantize(d) => {
                let mut out = unsafe { Tensor::uninitialized::<f32>(input.shape())? };
                let mut plain = out.try_as_plain_ram_mut()?;
                let ys = plain.as_slice_mut::<f32>()?;
                match input.datum_type() {
                    DatumType::U8 => kernels::dequantize(&d, view.as_slice::<u8>()?, ys),
                    DatumType::I8 => kernels::dequantize(&d, view.as_slice::<i8>()?, ys),
                    dt => bail!("SimdDequantize reads u8 or i8, not {dt:?}"),
                }
                out
            }
            Conversion::Both(q, d) => {
                let mut out = unsafe { Tensor::uninitialized::<f32>(input.shape())? };
                let mut plain = out.try_as_plain_ram_mut()?;
                kernels::quantize_dequantize(&q, &d, view.as_slice::<f32>()?, plain.as_slice_mut::<f32>()?);
                out
            }
        };
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Qdq {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let dt = match self.0 {
            Conversion::Quantize(q) => q.dt,
            Conversion::Dequantize(_) | Conversion::Both(..) => f32::datum_type(),
        };
        Ok(tvec!(dt.fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// A value the kernels convert from or to: u8 or i8.
pub trait Int8: Copy + 'static {
    fn to_i32(self) -> i32;
    /// From a value already clamped into this type's range.
    fn from_clamped(v: i32) -> Self;
}

impl Int8 for u8 {
    fn to_i32(self) -> i32 {
        self as i32
    }
    fn from_clamped(v: i32) -> Self {
        v as u8
    }
}

impl Int8 for i8 {
    fn to_i32(self) -> i32 {
        self as i32
    }
    fn from_clamped(v: i32) -> Self {
        v as i8
    }
}

/// The loops: simd128 on wasm (with a scalar tail), scalar elsewhere.
pub mod kernels {
    use super::{Dequantize, Int8, Quantize};

    fn quantize_scalar<T: Int8>(q: &Quantize, xs: &[f32], ys: &mut [T]) {
        for (x, y) in xs.iter().zip(ys) {
            *y = T::from_clamped(q.scalar(*x));
        }
    }

    fn dequantize_scalar<T: Int8>(d: &Dequantize, xs: &[T], ys: &mut [f32]) {
        for (x, y) in xs.iter().zip(ys) {
            *y = d.scalar(x.to_i32());
        }
    }

    fn quantize_dequantize_scalar(q: &Quantize, d: &Dequantize, xs: &[f32], ys: &mut [f32]) {
        for (x, y) in xs.iter().zip(ys) {
            *y = d.scalar(q.scalar(*x));
        }
    }

    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    pub fn quantize<T: Int8>(q: &Quantize, xs: &[f32], ys: &mut [T]) {
        quantize_scalar(q, xs, ys)
    }

    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    pub fn dequantize<T: Int8>(d: &Dequantize, xs: &[T], ys: &mut [f32]) {
        dequantize_scalar(d, xs, ys)
    }

    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    pub fn quantize_dequantize(q: &Quantize, d: &Dequantize, xs: &[f32], ys: &mut [f32]) {
        quantize_dequantize_scalar(q, d, xs, ys)
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    mod simd {
        use core::arch::wasm32::*;

        use super::super::{Dequantize, Quantize};

        /// A [`Quantize`]'s parameters splatted once per tensor (at the canister's opt-level
        /// LLVM would not hoist them out of the loop).
        pub struct QuantizeLanes {
            inv_scale: v128,
            zero_point: v128,
            lo: v128,
            hi: v128,
        }

        impl QuantizeLanes {
            pub fn new(q: &Quantize) -> Self {
                let (lo, hi) = q.range();
                QuantizeLanes { inv_scale: f32x4_splat(q.inv_scale), zero_point: i32x4_splat(q.zero_point), lo: i32x4_splat(lo), hi: i32x4_splat(hi) }
            }

            /// Four lanes of `Quantize::scalar`, as i32.
            #[inline(always)]
            pub fn apply(&self, x: v128) -> v128 {
                let rounded = f32x4_nearest(f32x4_mul(x, self.inv_scale));
                let shifted = i32x4_add(i32x4_trunc_sat_f32x4(rounded), self.zero_point);
                i32x4_min(i32x4_max(shifted, self.lo), self.hi)
            }
        }

        pub struct DequantizeLanes {
            scale: v128,
            zero_point: v128,
        }

        impl DequantizeLanes {
            pub fn new(d: &Dequantize) -> Self {
                DequantizeLanes { scale: f32x4_splat(d.scale), zero_point: i32x4_splat(d.zero_point) }
            }

            /// Four lanes of `Dequantize::scalar`, from i32.
            #[inline(always)]
            pub fn apply(&self, q: v128) -> v128 {
                f32x4_mul(f32x4_convert_i32x4(i32x4_sub(q, self.zero_point)), self.scale)
            }
        }
    }

    // The loops below index with plain counters: at the canister's opt-level ("s") LLVM leaves
    // iterator adaptors such as `chunks_exact().zip()` as calls, which cost more than the work.

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    pub fn quantize<T: Int8>(q: &Quantize, xs: &[f32], ys: &mut [T]) {
        use core::arch::wasm32::*;
        let len = xs.len().min(ys.len());
        let n = len / 16 * 16;
        let unsigned = q.dt == tract_onnx::prelude::DatumType::U8;
        let lanes = simd::QuantizeLanes::new(q);
        let (x, y) = (xs.as_ptr() as *const v128, ys.as_mut_ptr() as *mut u8);
        let mut i = 0;
        while i < n {
            // SAFETY: i + 16 <= len: 16 f32 read from `xs` (4 vectors at i / 4), 16 bytes written
            // to `ys` at i; v128 loads and stores need no alignment.
            unsafe {
                let v = x.add(i / 4);
                let (a, b) = (lanes.apply(v128_load(v)), lanes.apply(v128_load(v.add(1))));
                let (c, d) = (lanes.apply(v128_load(v.add(2))), lanes.apply(v128_load(v.add(3))));
                // Values are clamped into the type's range already: the saturating narrows are exact.
                let (low, high) = (i16x8_narrow_i32x4(a, b), i16x8_narrow_i32x4(c, d));
                let bytes = if unsigned { u8x16_narrow_i16x8(low, high) } else { i8x16_narrow_i16x8(low, high) };
                v128_store(y.add(i) as *mut v128, bytes);
            }
            i += 16;
        }
        quantize_scalar(q, &xs[n..len], &mut ys[n..len]);
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    pub fn dequantize<T: Int8>(d: &Dequantize, xs: &[T], ys: &mut [f32]) {
        use core::arch::wasm32::*;
        let len = xs.len().min(ys.len());
        let n = len / 8 * 8;
        let unsigned = T::from_clamped(255).to_i32() == 255;
        let lanes = simd::DequantizeLanes::new(d);
        let (x, y) = (xs.as_ptr() as *const u8, ys.as_mut_ptr() as *mut v128);
        let mut i = 0;
        while i < n {
            // SAFETY: i + 8 <= len: 8 bytes read from `xs` at i, 8 f32 (2 vectors at i / 4)
            // written to `ys`.
            unsafe {
                let p = x.add(i);
                let wide = if unsigned { u16x8_load_extend_u8x8(p) } else { i16x8_load_extend_i8x8(p as *const i8) };
                let (low, high) = if unsigned {
                    (u32x4_extend_low_u16x8(wide), u32x4_extend_high_u16x8(wide))
                } else {
                    (i32x4_extend_low_i16x8(wide), i32x4_extend_high_i16x8(wide))
                };
                let out = y.add(i / 4);
                v128_store(out, lanes.apply(low));
                v128_store(out.add(1), lanes.apply(high));
            }
            i += 8;
        }
        dequantize_scalar(d, &xs[n..len], &mut ys[n..len]);
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    pub fn quantize_dequantize(q: &Quantize, d: &Dequantize, xs: &[f32], ys: &mut [f32]) {
        use core::arch::wasm32::*;
        let len = xs.len().min(ys.len());
        let n = len / 4 * 4;
        let (quantize, dequantize) = (simd::QuantizeLanes::new(q), simd::DequantizeLanes::new(d));
        let (x, y) = (xs.as_ptr() as *const v128, ys.as_mut_ptr() as *mut v128);
        let mut i = 0;
        while i < n / 4 {
            // SAFETY: vector i covers elements 4i..4i + 4 <= n <= len of both slices.
            unsafe {
                v128_store(y.add(i), dequantize.apply(quantize.apply(v128_load(x.add(i)))));
            }
            i += 1;
        }
        quantize_dequantize_scalar(q, d, &xs[n..len], &mut ys[n..len]);
    }
}

/// The quantize of an optimised-model node, if it is tract's f32 → u8/i8 quantize.
fn as_quantize(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Quantize>> {
    let Some(op) = node.op_as::<ElementWiseOp>() else { return Ok(None) };
    if model.outlet_fact(node.inputs[0])?.datum_type != f32::datum_type() {
        return Ok(None);
    }
    Ok(if let Some(q) = op.0.downcast_ref::<QuantizeLinearU8>() {
        Some(Quantize { inv_scale: q.scale, zero_point: q.zero_point as i32, dt: u8::datum_type() })
    } else {
        op.0.downcast_ref::<QuantizeLinearI8>().map(|q| Quantize { inv_scale: q.scale, zero_point: q.zero_point as i32, dt: i8::datum_type() })
    })
}

/// The dequantize of an optimised-model node, if it is tract's u8/i8 → f32 dequantize.
fn as_dequantize(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Dequantize>> {
    let Some(op) = node.op_as::<DequantizeLinearF32>() else { return Ok(None) };
    let dt = model.outlet_fact(node.inputs[0])?.datum_type;
    Ok((dt == u8::datum_type() || dt == i8::datum_type()).then_some(Dequantize { scale: op.scale, zero_point: op.zero_point }))
}

/// Replaces tract's quantize and dequantize nodes of an optimised model with [`Qdq`] nodes,
/// fusing each quantize whose only reader is a dequantize (directly or through reshapes).
/// Returns how many nodes it replaced or fused.
pub fn accelerate(model: &mut TypedModel) -> TractResult<usize> {
    let mut changed = 0;
    // Fuse first: one patch per pair, each on the model as the previous left it.
    while let Some(patch) = next_fusion(model)? {
        patch.apply(model)?;
        changed += 1;
    }
    for id in 0..model.nodes().len() {
        let conversion = match (as_quantize(model, model.node(id))?, as_dequantize(model, model.node(id))?) {
            (Some(q), _) => Conversion::Quantize(q),
            (_, Some(d)) => Conversion::Dequantize(d),
            _ => continue,
        };
        model.node_mut(id).op = Box::new(Qdq(conversion));
        changed += 1;
    }
    if changed > 0 {
        *model = model.clone().into_compact()?;
    }
    Ok(changed)
}

/// A patch fusing the first quantize → [reshapes] → dequantize chain whose intermediate values
/// nothing else reads, into one quantize-dequantize pass followed by the same reshapes.
fn next_fusion(model: &TypedModel) -> TractResult<Option<TypedModelPatch>> {
    let outputs: Vec<OutletId> = model.output_outlets()?.to_vec();
    for &id in model.eval_order()?.iter() {
        let node = model.node(id);
        let Some(q) = as_quantize(model, node)? else { continue };
        let mut chain = vec![];
        let mut current = node;
        let dequantize = loop {
            if outputs.contains(&OutletId::new(current.id, 0)) {
                break None;
            }
            let Some(next) = model.single_succ(current.id)? else { break None };
            if let Some(d) = as_dequantize(model, next)? {
                break Some((d, next));
            }
            if next.op_as::<AxisOp>().is_some() || next.op_as::<IntoShape>().is_some() {
                chain.push(next);
                current = next;
            } else {
                break None;
            }
        };
        let Some((d, dq)) = dequantize else { continue };
        let mut patch = TypedModelPatch::new(format!("fuse {} into {}", node.name, dq.name));
        let mut wire = patch.tap_model(model, node.inputs[0])?;
        wire = patch.wire_node(&dq.name, Qdq(Conversion::Both(q, d)), &[wire])?[0];
        for reshape in chain {
            wire = patch.wire_node(&reshape.name, reshape.op.clone(), &[wire])?[0];
        }
        patch.shunt_outside(model, OutletId::new(dq.id, 0), wire)?;
        return Ok(Some(patch));
    }
    Ok(None)
}

/// Compares the kernels with tract's scalar functions on edge cases (ties, signed zeros,
/// saturation, NaN, infinities, every tail length): an error names the first difference.
pub fn check_kernels() -> Result<(), String> {
    let specials = [0.0, -0.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.5, 128.5, 254.5, 255.5, -127.5, -128.5, -129.5, 1e9, -1e9, 3e38, -3e38, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-40, 0.49999997];
    let xs: Vec<f32> = specials.iter().copied().chain((0..200).map(|i| (i as f32 - 100.0) * 1.37 + 0.25)).collect();
    for (inv_scale, zero_point) in [(1.0f32, 0i32), (1.0, 128), (0.37, 3), (41.7, 255), (2.0, -128), (0.5, 127)] {
        for len in [xs.len(), 1, 3, 7, 15, 17, 33] {
            let xs = &xs[xs.len() - len..];
            let qu = Quantize { inv_scale, zero_point: zero_point.clamp(0, 255), dt: u8::datum_type() };
            let qi = Quantize { inv_scale, zero_point: zero_point.clamp(-128, 127), dt: i8::datum_type() };
            let mut u = vec![0u8; len];
            let mut i = vec![0i8; len];
            kernels::quantize(&qu, xs, &mut u);
            kernels::quantize(&qi, xs, &mut i);
            // Where x · inv_scale saturates i32, tract's `+ zero_point` overflows (it wraps in
            // release builds, and panics in checked ones): compare with our own scalar there.
            let saturates = |x: f32| x.is_nan() || (x * inv_scale).abs() >= 2147483520.0;
            let want_u: Vec<u8> = xs.iter().map(|&x| if saturates(x) { qu.scalar(x) as u8 } else { quantize_linear_f32_u8(x, qu.inv_scale, qu.zero_point) }).collect();
            let want_i: Vec<i8> = xs.iter().map(|&x| if saturates(x) { qi.scalar(x) as i8 } else { quantize_linear_f32_i8(x, qi.inv_scale, qi.zero_point) }).collect();
            if u != want_u || i != want_i {
                return Err(format!("quantize differs from tract's at scale 1/{inv_scale}, zero point {zero_point}, length {len}"));
            }
            let d = Dequantize { scale: 1.0 / inv_scale, zero_point: qu.zero_point };
            let reference = DequantizeLinearF32 { scale: d.scale, zero_point: d.zero_point };
            let want = reference.eval(&EvalContext::out_of_plan(), tvec!(Tensor::from_shape(&[len], &u).map_err(|e| e.to_string())?.into_tvalue())).map_err(|e| e.to_string())?;
            let want = want[0].try_as_plain_ram().map_err(|e| e.to_string())?.as_slice::<f32>().map_err(|e| e.to_string())?.to_vec();
            let mut got = vec![0f32; len];
            kernels::dequantize(&d, &u, &mut got);
            let mut fused = vec![0f32; len];
            kernels::quantize_dequantize(&qu, &d, xs, &mut fused);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            if bits(&got) != bits(&want) || bits(&fused) != bits(&want) {
                return Err(format!("dequantize differs from tract's at scale {}, zero point {}, length {len}", d.scale, d.zero_point));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernels_equal_tracts_scalar_functions() {
        super::check_kernels().unwrap();
    }
}
