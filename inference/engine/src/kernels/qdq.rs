//! Quantize and dequantize, four lanes at a time, and a quantize that only feeds a dequantize
//! fused with it into one pass.
//!
//! tract 0.23.9 computes `QuantizeLinearU8`/`I8` and `DequantizeLinearF32` one element at a time.
//! Under the IC's cost table that is expensive: its float→int conversion and its rounding take
//! tens of instructions per element, and quantizing and dequantizing were most of a static int8
//! model's inference (see `benchmarks/profile.md` for the current shares). With wasm simd128,
//! clamping (`f32x4.pmax/pmin`), rounding (an addition, [`QuantizeLanes`]) and conversion
//! (the sum's bits) cost one instruction per four lanes each.
//!
//! The results are tract's, bit for bit, wherever tract's own formula does not overflow
//! (multiply by the inverse scale, round half to even, add the zero point, clamp; subtract the
//! zero point, convert, multiply by the scale); beyond i32's range and for NaN they are
//! [`Quantize::scalar`]'s. [`check`] compares them with tract's own scalar functions
//! ([`reference`]) on edge cases, natively and, through the canister's self-test, on wasm.

use tract_onnx::prelude::*;

use super::Int8;

/// `q = clamp(round_half_even(x · inv_scale) + zero_point, min, max)`, as tract defines it
/// (beyond i32's range and for NaN, see [`Quantize::scalar`]).
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

    /// Where `x · inv_scale` is below 2^31 − 2^8 in magnitude, tract's formula exactly. Beyond,
    /// tract saturates to i32 and then adds the zero point wrapping (its `+` overflows), which
    /// can send a huge value to the other end of the range; this clamps it to the end its sign
    /// names, as onnxruntime does, and a NaN gives the type's least value (tract's: the zero
    /// point). Clamping before the rounding is the same as after it, both bounds being whole:
    /// that is the order the kernels' lanes take ([`QuantizeLanes`]).
    #[inline]
    pub(crate) fn scalar(&self, x: f32) -> i32 {
        let (lo, hi) = self.range();
        let y = x * self.inv_scale;
        if y.is_nan() {
            return lo;
        }
        let bounds = ((lo - self.zero_point) as f32, (hi - self.zero_point) as f32);
        y.clamp(bounds.0, bounds.1).round_ties_even() as i32 + self.zero_point
    }
}

/// A quantize read through a table of bytes (u8 values, or i8 ones as their bytes), indexed by
/// the quantized value's byte: a static int8 model's HardSwish ([`crate::ops::lookup`]), fused
/// into the integer convolution or int8 depthwise convolution before it
/// ([`crate::passes::conv_lookup`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ByteLookup {
    pub quantize: Quantize,
    pub table: Vec<u8>,
}

impl ByteLookup {
    /// One value quantized and read through the table.
    #[inline]
    pub fn scalar(&self, x: f32) -> u8 {
        self.table[(self.quantize.scalar(x) & 255) as usize]
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
    pub(crate) fn scalar(&self, q: i32) -> f32 {
        q.wrapping_sub(self.zero_point) as f32 * self.scale
    }
}

/// One operand of [`QdqKernels::residual_add`] and how it becomes f32.
#[derive(Clone, Copy)]
pub enum Operand<'a> {
    /// f32 values, quantized then dequantized (a QDQ pair with no int8 tensor between).
    FakeQuantized(&'a [f32], Quantize, Dequantize),
    /// The bytes of u8 (`unsigned`) or i8 values, dequantized.
    Dequantized(&'a [u8], bool, Dequantize),
}

impl Operand<'_> {
    fn len(&self) -> usize {
        match self {
            Operand::FakeQuantized(xs, ..) => xs.len(),
            Operand::Dequantized(xs, ..) => xs.len(),
        }
    }

    /// Element `i` as f32, as the separate quantize, dequantize, or fused pass computes it.
    #[inline]
    fn scalar(&self, i: usize) -> f32 {
        match *self {
            Operand::FakeQuantized(xs, q, d) => d.scalar(q.scalar(xs[i])),
            Operand::Dequantized(xs, unsigned, d) => d.scalar(if unsigned { xs[i] as i32 } else { xs[i] as i8 as i32 }),
        }
    }
}

/// The family's interface. Each function converts `min(xs.len(), ys.len())` elements.
pub trait QdqKernels {
    /// f32 → u8 or i8 (`T` must be `q.dt`).
    fn quantize<T: Int8>(q: &Quantize, xs: &[f32], ys: &mut [T]);
    /// u8 or i8 → f32.
    fn dequantize<T: Int8>(d: &Dequantize, xs: &[T], ys: &mut [f32]);
    /// f32 → f32: the quantize, then the dequantize, with no int8 value stored in between.
    fn quantize_dequantize(q: &Quantize, d: &Dequantize, xs: &[f32], ys: &mut [f32]);
    /// f32 → a table's type: the quantize, then the 256-entry `table` read at the value's byte
    /// (an i8's two's complement), with no int8 value stored in between.
    fn quantize_look_up<T: Copy>(q: &Quantize, xs: &[f32], table: &[T], ys: &mut [T]);
    /// A residual add of a QDQ model in one pass: `ys[i]` = the bytes of `q` (u8 or i8) of
    /// `left[i] + right[i]` (each operand as f32, [`Operand`]), for the elements all three
    /// hold, with no f32 tensor stored between.
    fn residual_add(left: Operand, right: Operand, q: &Quantize, ys: &mut [u8]);
}

/// One element at a time.
pub struct Scalar;

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

/// [`QdqKernels::residual_add`] from element `done` on.
fn residual_add_scalar(left: Operand, right: Operand, q: &Quantize, ys: &mut [u8], done: usize) {
    let len = left.len().min(right.len()).min(ys.len());
    let mut i = done;
    while i < len {
        ys[i] = q.scalar(left.scalar(i) + right.scalar(i)) as u8;
        i += 1;
    }
}

fn quantize_look_up_scalar<T: Copy>(q: &Quantize, xs: &[f32], table: &[T], ys: &mut [T]) {
    assert!(table.len() == 256);
    for (x, y) in xs.iter().zip(ys) {
        *y = table[(q.scalar(*x) & 255) as usize];
    }
}

impl QdqKernels for Scalar {
    fn quantize<T: Int8>(q: &Quantize, xs: &[f32], ys: &mut [T]) {
        quantize_scalar(q, xs, ys)
    }

    fn dequantize<T: Int8>(d: &Dequantize, xs: &[T], ys: &mut [f32]) {
        dequantize_scalar(d, xs, ys)
    }

    fn quantize_dequantize(q: &Quantize, d: &Dequantize, xs: &[f32], ys: &mut [f32]) {
        quantize_dequantize_scalar(q, d, xs, ys)
    }

    fn quantize_look_up<T: Copy>(q: &Quantize, xs: &[f32], table: &[T], ys: &mut [T]) {
        quantize_look_up_scalar(q, xs, table, ys)
    }

    fn residual_add(left: Operand, right: Operand, q: &Quantize, ys: &mut [u8]) {
        residual_add_scalar(left, right, q, ys, 0)
    }
}

/// What the operators call: [`Simd128`] in a wasm simd128 build, else [`Scalar`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub type Best = Simd128;
/// What the operators call: `Simd128` in a wasm simd128 build, else [`Scalar`].
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub type Best = Scalar;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use simd::Simd128;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) use simd::{fixed_byte_table, looked_up, DequantizeLanes, QuantizeLanes};

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    use super::{
        dequantize_scalar, quantize_dequantize_scalar, quantize_look_up_scalar, quantize_scalar, residual_add_scalar,
        Dequantize, Int8, Operand, QdqKernels, Quantize,
    };

    /// Four lanes at a time, with a scalar tail.
    pub struct Simd128;

    /// A [`Quantize`]'s parameters splatted once per tensor (at the canister's opt-level
    /// LLVM would not hoist them out of the loop).
    ///
    /// The lanes round by addition: `x · inv_scale`, clamped to the range less the zero point
    /// (±255 at most), plus 1.5 · 2^23 lies in [2^23, 2^24), where an f32's unit in the last
    /// place is 1, so the addition itself rounds half to even, and the sum's bits are
    /// [`ROUNDING_BITS`] plus the rounded value. One addition and one integer addition (which
    /// also adds the zero point, or makes a table address) replace a rounding, a conversion,
    /// the zero point's addition and an integer clamp: three instructions fewer for every four
    /// looked-up outputs on the IC's cost table (`benchmarks/NOTES.md`, "Rounding by
    /// addition"). The clamp comes first, as `f32x4.pmax/pmin` with the bound as the first
    /// operand, so a NaN gives the least value ([`Quantize::scalar`]).
    #[derive(Clone, Copy)]
    pub(crate) struct QuantizeLanes {
        inv_scale: v128,
        /// The type's range less the zero point, as f32: where `x · inv_scale` is clamped.
        low: v128,
        high: v128,
        rounding: v128,
        /// The zero point less [`ROUNDING_BITS`]: what turns a rounded sum's bits into the
        /// quantized value.
        offset: v128,
        /// [`QuantizeLanes::bytes`]'s shift into i8's range and back: 128 and 0x80 for u8, zeros
        /// for i8.
        bias: v128,
        flip: v128,
        /// The static byte table's address less `lo`, plus `offset` ([`fixed_byte_table`]).
        table: v128,
    }

    /// 1.5 · 2^23: a value in (−2^22, 2^22) added to it is rounded half to even, its bits
    /// [`ROUNDING_BITS`] plus the rounded value.
    const ROUNDING: f32 = 12_582_912.0;
    const ROUNDING_BITS: i32 = 0x4B40_0000;

    impl QuantizeLanes {
        pub(crate) fn new(q: &Quantize) -> Self {
            let (lo, hi) = q.range();
            let offset = q.zero_point.wrapping_sub(ROUNDING_BITS);
            QuantizeLanes {
                inv_scale: f32x4_splat(q.inv_scale),
                low: f32x4_splat((lo - q.zero_point) as f32),
                high: f32x4_splat((hi - q.zero_point) as f32),
                rounding: f32x4_splat(ROUNDING),
                offset: i32x4_splat(offset),
                bias: i16x8_splat(if lo == 0 { 128 } else { 0 }),
                flip: u8x16_splat(if lo == 0 { 0x80 } else { 0 }),
                table: i32x4_splat((byte_table() as i32).wrapping_sub(lo).wrapping_add(offset)),
            }
        }

        /// Four lanes of `x · inv_scale` clamped and rounded: the rounded value plus
        /// [`ROUNDING_BITS`], as i32 lanes.
        #[inline(always)]
        fn rounded(&self, x: v128) -> v128 {
            let clamped = f32x4_pmin(self.high, f32x4_pmax(self.low, f32x4_mul(x, self.inv_scale)));
            f32x4_add(clamped, self.rounding)
        }

        /// Four lanes of `Quantize::scalar` as the addresses of their entries in the static
        /// byte table ([`fixed_byte_table`]).
        #[inline(always)]
        pub(crate) fn addresses(&self, x: v128) -> v128 {
            i32x4_add(self.rounded(x), self.table)
        }

        /// Four lanes of `Quantize::scalar`, as i32.
        #[inline(always)]
        pub(crate) fn quantized(&self, x: v128) -> v128 {
            i32x4_add(self.rounded(x), self.offset)
        }

        /// Four lanes of `Quantize::scalar` before their clamp to the type's greatest value,
        /// as i32: what [`QuantizeLanes::bytes`] narrows (its saturating narrows are that
        /// clamp). Only the least bound is applied: above it the sum is a positive f32, whose
        /// bits grow with its value, so a lane past the greatest value (an infinity or a NaN
        /// included) stays past it, where a negative sum's bits would wrap.
        #[inline(always)]
        pub(crate) fn narrowable(&self, x: v128) -> v128 {
            let bounded = f32x4_pmax(self.low, f32x4_mul(x, self.inv_scale));
            i32x4_add(f32x4_add(bounded, self.rounding), self.offset)
        }

        /// Sixteen lanes of [`QuantizeLanes::narrowable`] (four vectors) narrowed to their
        /// type's bytes: i32 to i16 by a saturating narrow, less the bias (saturating), to i8 by
        /// a saturating narrow, then the bias's bit flipped back. For u8 that is
        /// `clamp(v, 0, 255)` shifted by 128 into i8 and back; for i8 the bias is zero.
        /// (`u8x16_narrow_i16x8` would be one instruction, but LLVM spells it as a clamp, an
        /// `and` and the narrow, and merges that clamp into the narrow before it as i32 minima,
        /// maxima and a shuffle: some twenty instructions where these are six.)
        #[inline(always)]
        pub(crate) fn bytes(&self, a: v128, b: v128, c: v128, d: v128) -> v128 {
            let low = i16x8_sub_sat(i16x8_narrow_i32x4(a, b), self.bias);
            let high = i16x8_sub_sat(i16x8_narrow_i32x4(c, d), self.bias);
            v128_xor(i8x16_narrow_i16x8(low, high), self.flip)
        }

        /// The addresses in a 256-entry table of `2^shift`-byte entries at `table` (splatted)
        /// of four lanes of `Quantize::scalar`: each lane's byte (an i8's two's complement)
        /// shifted, plus the table's address (wasm32's addresses are 32 bits).
        #[inline(always)]
        fn entries(&self, x: v128, shift: u32, table: v128) -> v128 {
            i32x4_add(i32x4_shl(v128_and(self.quantized(x), i32x4_splat(255)), shift), table)
        }
    }

    /// The table the byte lookups read ([`look_up_bytes`], the integer convolution's and the int8
    /// depthwise convolution's looked-up epilogues), at an address fixed at link time.
    struct ByteTable(core::cell::UnsafeCell<[u8; 256]>);

    // A build with threads would make the table below a data race: refused, not assumed away.
    #[cfg(target_feature = "atomics")]
    compile_error!("the byte lookups' static table assumes a wasm module without threads");

    // SAFETY: the canister's wasm has one thread (no atomics, refused above); the table is
    // filled by `fixed_byte_table` and read by the kernel that called it before any other call
    // fills it (`look_up_bytes`, the integer convolution's and the depthwise convolution's
    // looked-up epilogues), none re-entering.
    unsafe impl Sync for ByteTable {}

    static BYTE_TABLE: ByteTable = ByteTable(core::cell::UnsafeCell::new([0; 256]));

    /// `table` (256 bytes, indexed by a byte: an i8's two's complement) copied into the static
    /// table, rotated so that the entry of value `v` of `quantize`'s type is at `v − lo` (`lo` the
    /// type's least value): [`QuantizeLanes::addresses`] then makes each lane's address with
    /// one addition. Valid until the next call, which the caller makes only after its reads
    /// (one kernel call at a time, none re-entering).
    pub(crate) fn fixed_byte_table(table: &[u8], quantize: &Quantize) {
        assert!(table.len() == 256);
        let fixed = BYTE_TABLE.0.get() as *mut u8;
        // The first entry's byte: 0 for u8, 128 (-128's) for i8.
        let first = quantize.range().0 as u8 as usize;
        // SAFETY: 256 bytes each, the two copies' ranges within both; the static is this call's
        // alone (ByteTable's Sync).
        unsafe {
            core::ptr::copy_nonoverlapping(table.as_ptr().add(first), fixed, 256 - first);
            core::ptr::copy_nonoverlapping(table.as_ptr(), fixed.add(256 - first), first);
        }
    }

    /// The static table's address.
    #[inline(always)]
    fn byte_table() -> *const u8 {
        BYTE_TABLE.0.get() as *const u8
    }

    /// The static table's entries ([`fixed_byte_table`]) at the addresses in the i32 lanes of
    /// address vectors made by [`QuantizeLanes::addresses`] (of the `Quantize` the table was
    /// filled for: the macro's callers' obligation), as the byte lanes of one vector starting as
    /// `$first`: lane `$to` gets the entry at lane `$lane` of vector `$v`. `v128.load8_lane`
    /// reads an entry straight into its lane: an extract and that load a lane, and one store
    /// for the vector, where a byte load and a byte store cost five a lane with their addresses
    /// (`benchmarks/NOTES.md`, "Table entries loaded into lanes"). The lanes may be permuted on
    /// the way at no cost.
    macro_rules! looked_up {
        ($first:ident, $($to:literal <- $v:ident [$lane:literal]),+) => {{
            let mut entries = $first;
            $(
                // The block is redundant where the macro is used inside one.
                #[allow(unused_unsafe)]
                // SAFETY: each address is the static table's plus an index clamped to 0..=255
                // (made by `QuantizeLanes::addresses`, the callers' obligation above).
                let entry = unsafe {
                    v128_load8_lane::<$to>(entries, i32x4_extract_lane::<$lane>($v) as usize as *const u8)
                };
                entries = entry;
            )+
            entries
        }};
    }
    pub(crate) use looked_up;

    /// [`QdqKernels::quantize_look_up`] of a table of bytes for the first `n` elements (a
    /// multiple of sixteen): sixteen values a turn quantized and clamped as
    /// [`QdqKernels::quantize`] does, each lane made the address of its entry in a copy of the
    /// table in a static ([`fixed_byte_table`], [`QuantizeLanes::addresses`]), each entry read
    /// into its lane ([`looked_up`]) and the sixteen stored at once (`benchmarks/NOTES.md`, "Byte
    /// tables at a fixed address", "Table entries loaded into lanes").
    ///
    /// # Safety
    /// `n` must be a multiple of sixteen, at most `xs.len()` and `ys.len()`.
    unsafe fn look_up_bytes(q: &Quantize, xs: &[f32], table: &[u8], ys: &mut [u8], n: usize) {
        fixed_byte_table(table, q);
        let lanes = QuantizeLanes::new(q);
        let (x, y) = (xs.as_ptr() as *const v128, ys.as_mut_ptr());
        let mut i = 0;
        while i < n {
            // SAFETY: i + 16 <= n: xs[i..i + 16] is readable and ys[i..i + 16] writable (the
            // caller's), no alignment needed; each index is a byte, within the 256 of the table.
            unsafe {
                let (v, yi) = core::hint::black_box((x.add(i / 4), y.add(i)));
                let a = lanes.addresses(v128_load(v));
                let b = lanes.addresses(v128_load(v.add(1)));
                let c = lanes.addresses(v128_load(v.add(2)));
                let d = lanes.addresses(v128_load(v.add(3)));
                let entries = looked_up!(a, 0 <- a[0], 1 <- a[1], 2 <- a[2], 3 <- a[3], 4 <- b[0], 5 <- b[1],
                    6 <- b[2], 7 <- b[3], 8 <- c[0], 9 <- c[1], 10 <- c[2], 11 <- c[3], 12 <- d[0], 13 <- d[1],
                    14 <- d[2], 15 <- d[3]);
                v128_store(yi as *mut v128, entries);
            }
            i += 16;
        }
    }

    #[derive(Clone, Copy)]
    pub(crate) struct DequantizeLanes {
        scale: v128,
        zero_point: v128,
    }

    impl DequantizeLanes {
        pub(crate) fn new(d: &Dequantize) -> Self {
            DequantizeLanes { scale: f32x4_splat(d.scale), zero_point: i32x4_splat(d.zero_point) }
        }

        /// Four lanes of `Dequantize::scalar`, from i32.
        #[inline(always)]
        pub(crate) fn apply(&self, q: v128) -> v128 {
            f32x4_mul(f32x4_convert_i32x4(i32x4_sub(q, self.zero_point)), self.scale)
        }
    }

    // The loops below index with plain counters: at the canister's opt-level ("s") LLVM leaves
    // iterator adaptors such as `chunks_exact().zip()` as calls, which cost more than the work.
    impl QdqKernels for Simd128 {
        fn quantize<T: Int8>(q: &Quantize, xs: &[f32], ys: &mut [T]) {
            let len = xs.len().min(ys.len());
            let n = len / 16 * 16;
            let lanes = QuantizeLanes::new(q);
            let (x, y) = (xs.as_ptr() as *const v128, ys.as_mut_ptr() as *mut u8);
            let mut i = 0;
            while i < n {
                // SAFETY: i + 16 <= n <= len, the length of both slices' prefixes we touch: the
                // four vectors read at x + i / 4 are xs[i..i + 16] (16 f32), and the 16 bytes
                // written at y + i are ys[i..i + 16] (`T` is one byte: u8 or i8). v128 loads and
                // stores have no alignment requirement.
                unsafe {
                    // Opaque once a turn, so that the four loads keep their constant offsets
                    // (LLVM's loop strength reduction otherwise computes each address apart).
                    let v = core::hint::black_box(x.add(i / 4));
                    let (a, b) = (lanes.narrowable(v128_load(v)), lanes.narrowable(v128_load(v.add(1))));
                    let (c, d) = (lanes.narrowable(v128_load(v.add(2))), lanes.narrowable(v128_load(v.add(3))));
                    v128_store(y.add(i) as *mut v128, lanes.bytes(a, b, c, d));
                }
                i += 16;
            }
            quantize_scalar(q, &xs[n..len], &mut ys[n..len]);
        }

        fn dequantize<T: Int8>(d: &Dequantize, xs: &[T], ys: &mut [f32]) {
            let len = xs.len().min(ys.len());
            let n = len / 8 * 8;
            let unsigned = T::from_clamped(255).to_i32() == 255;
            let lanes = DequantizeLanes::new(d);
            let (x, y) = (xs.as_ptr() as *const u8, ys.as_mut_ptr() as *mut v128);
            let mut i = 0;
            while i < n {
                // SAFETY: i + 8 <= n <= len: the 8 bytes read at x + i are xs[i..i + 8] (`T` is
                // one byte), the two vectors written at y + i / 4 are ys[i..i + 8]. No alignment
                // is required.
                unsafe {
                    let p = x.add(i);
                    let wide =
                        if unsigned { u16x8_load_extend_u8x8(p) } else { i16x8_load_extend_i8x8(p as *const i8) };
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

        fn quantize_dequantize(q: &Quantize, d: &Dequantize, xs: &[f32], ys: &mut [f32]) {
            let len = xs.len().min(ys.len());
            let n = len / 4 * 4;
            let (quantize, dequantize) = (QuantizeLanes::new(q), DequantizeLanes::new(d));
            let (x, y) = (xs.as_ptr() as *const v128, ys.as_mut_ptr() as *mut v128);
            let mut i = 0;
            while i < n / 4 {
                // SAFETY: vector i covers elements 4i..4i + 4 <= n <= len of both slices; no
                // alignment is required.
                unsafe {
                    v128_store(y.add(i), dequantize.apply(quantize.quantized(v128_load(x.add(i)))));
                }
                i += 1;
            }
            quantize_dequantize_scalar(q, d, &xs[n..len], &mut ys[n..len]);
        }

        /// Sixteen values a turn: four vectors quantized and clamped, each lane turned into
        /// the address of its byte's entry (`& 255`: an i8's two's complement) in the vector,
        /// then each entry read at its lane's address and stored: a lane costs an extract, a
        /// load and a store. The turn's pointers pass through `black_box` so that the loads and
        /// stores keep constant offsets (LLVM's loop strength reduction otherwise computes each
        /// address apart).
        fn quantize_look_up<T: Copy>(q: &Quantize, xs: &[f32], table: &[T], ys: &mut [T]) {
            assert!(table.len() == 256);
            let len = xs.len().min(ys.len());
            let n = len / 16 * 16;
            let lanes = QuantizeLanes::new(q);
            if core::mem::size_of::<T>() == 1 {
                // SAFETY: T is one byte, so both slices are their bytes; every byte written to
                // `ys` is a copy of an entry's, a value of T.
                unsafe {
                    let table = core::slice::from_raw_parts(table.as_ptr() as *const u8, 256);
                    let out = core::slice::from_raw_parts_mut(ys.as_mut_ptr() as *mut u8, ys.len());
                    look_up_bytes(q, xs, table, out, n);
                }
                return quantize_look_up_scalar(q, &xs[n..len], table, &mut ys[n..len]);
            }
            let shift = core::mem::size_of::<T>().trailing_zeros();
            let base = i32x4_splat(table.as_ptr() as i32);
            let (x, y) = (xs.as_ptr(), ys.as_mut_ptr());
            /// Lane `$l` of `$at`, an entry's address, read into `$y[$k]`.
            macro_rules! entry {
                ($at:ident, $y:ident, $($l:literal $k:literal)*) => {
                    $( *$y.add($k) = *(i32x4_extract_lane::<$l>($at) as usize as *const T); )*
                };
            }
            let mut i = 0;
            while i < n {
                // SAFETY: i + 16 <= n <= len: xs[i..i + 16] is readable and ys[i..i + 16]
                // writable (no alignment needed for the vector loads). Each address is the
                // table's plus a byte (0..=255, by the mask) times size_of::<T>(): an entry of
                // the 256-entry table, aligned as `T`.
                unsafe {
                    let (xi, yi) = core::hint::black_box((x.add(i), y.add(i)));
                    let a = lanes.entries(v128_load(xi as *const v128), shift, base);
                    entry!(a, yi, 0 0 1 1 2 2 3 3);
                    let b = lanes.entries(v128_load(xi.add(4) as *const v128), shift, base);
                    entry!(b, yi, 0 4 1 5 2 6 3 7);
                    let c = lanes.entries(v128_load(xi.add(8) as *const v128), shift, base);
                    entry!(c, yi, 0 8 1 9 2 10 3 11);
                    let d = lanes.entries(v128_load(xi.add(12) as *const v128), shift, base);
                    entry!(d, yi, 0 12 1 13 2 14 3 15);
                }
                i += 16;
            }
            quantize_look_up_scalar(q, &xs[n..len], table, &mut ys[n..len]);
        }

        /// Sixteen elements a turn: each operand's four vectors as f32 (the same lane
        /// operations as the separate passes), added, quantized and narrowed to one vector of
        /// bytes. One loop per pair of operand kinds, their parameters in locals: matched once
        /// a turn on an enum, they stayed in memory at the canister's opt-level and were loaded
        /// at every use, twice the instructions an element (`benchmarks/NOTES.md`). An f32 add
        /// is commutative, so a dequantized left operand swaps sides.
        fn residual_add(left: Operand, right: Operand, q: &Quantize, ys: &mut [u8]) {
            let len = left.len().min(right.len()).min(ys.len());
            let n = len / 16 * 16;
            let sum = QuantizeLanes::new(q);
            match (left, right) {
                (Operand::FakeQuantized(a, qa, da), Operand::FakeQuantized(b, qb, db)) => {
                    let (a, b) = (Fake::new(a, &qa, &da), Fake::new(b, &qb, &db));
                    // SAFETY: n <= both operands' and `ys`'s lengths.
                    unsafe { residual_loop(&a, &b, &sum, ys, n) }
                }
                (Operand::FakeQuantized(a, qa, da), Operand::Dequantized(b, unsigned, db))
                | (Operand::Dequantized(b, unsigned, db), Operand::FakeQuantized(a, qa, da)) => {
                    let (a, b) = (Fake::new(a, &qa, &da), Bytes::new(b, unsigned, &db));
                    // SAFETY: as above.
                    unsafe { residual_loop(&a, &b, &sum, ys, n) }
                }
                (Operand::Dequantized(a, ua, da), Operand::Dequantized(b, ub, db)) => {
                    let (a, b) = (Bytes::new(a, ua, &da), Bytes::new(b, ub, &db));
                    // SAFETY: as above.
                    unsafe { residual_loop(&a, &b, &sum, ys, n) }
                }
            }
            residual_add_scalar(left, right, q, ys, n);
        }
    }

    /// One kind of residual-add operand: sixteen of its elements as four f32 vectors.
    trait Four {
        /// # Safety
        /// The operand holds at least i + 16 elements.
        unsafe fn four(&self, i: usize) -> [v128; 4];
    }

    /// f32 values quantized then dequantized.
    struct Fake {
        x: *const f32,
        q: QuantizeLanes,
        d: DequantizeLanes,
    }

    impl Fake {
        fn new(xs: &[f32], q: &Quantize, d: &Dequantize) -> Fake {
            Fake { x: xs.as_ptr(), q: QuantizeLanes::new(q), d: DequantizeLanes::new(d) }
        }
    }

    impl Four for Fake {
        #[inline(always)]
        unsafe fn four(&self, i: usize) -> [v128; 4] {
            let v = self.x.add(i) as *const v128;
            macro_rules! lanes {
                ($k:expr) => {
                    self.d.apply(self.q.quantized(v128_load(v.add($k))))
                };
            }
            [lanes!(0), lanes!(1), lanes!(2), lanes!(3)]
        }
    }

    /// u8 or i8 values dequantized. u8 ones are read as i8 with their top bit flipped (b − 128)
    /// and the zero point taken 128 lower, which is the same integer `b − zero_point`: one
    /// sign extension whatever the type, with no branch in the loop.
    struct Bytes {
        x: *const u8,
        flip: v128,
        d: DequantizeLanes,
    }

    impl Bytes {
        fn new(xs: &[u8], unsigned: bool, d: &Dequantize) -> Bytes {
            let shift = if unsigned { 128 } else { 0 };
            let d = Dequantize { scale: d.scale, zero_point: d.zero_point.wrapping_sub(shift) };
            Bytes { x: xs.as_ptr(), flip: u8x16_splat(shift as u8), d: DequantizeLanes::new(&d) }
        }
    }

    impl Four for Bytes {
        #[inline(always)]
        unsafe fn four(&self, i: usize) -> [v128; 4] {
            let bytes = v128_xor(v128_load(self.x.add(i) as *const v128), self.flip);
            let (low, high) = (i16x8_extend_low_i8x16(bytes), i16x8_extend_high_i8x16(bytes));
            let words = [
                i32x4_extend_low_i16x8(low),
                i32x4_extend_high_i16x8(low),
                i32x4_extend_low_i16x8(high),
                i32x4_extend_high_i16x8(high),
            ];
            [self.d.apply(words[0]), self.d.apply(words[1]), self.d.apply(words[2]), self.d.apply(words[3])]
        }
    }

    /// The first `n` (a multiple of sixteen) sums of `a` and `b`, quantized into `ys`.
    ///
    /// # Safety
    /// Both operands hold at least `n` elements, and `ys` is at least `n` long.
    #[inline(always)]
    unsafe fn residual_loop<A: Four, B: Four>(a: &A, b: &B, quantize: &QuantizeLanes, ys: &mut [u8], n: usize) {
        assert!(n <= ys.len());
        let y = ys.as_mut_ptr();
        let mut i = 0;
        while i < n {
            // SAFETY: i + 16 <= n, within both operands (the caller's contract) and `ys`: the
            // 16 bytes written at y + i are ys[i..i + 16]. No alignment is required.
            unsafe {
                let ([l0, l1, l2, l3], [r0, r1, r2, r3]) = (a.four(i), b.four(i));
                // A macro, not a closure: at the canister's opt-level a closure stays a call.
                macro_rules! sum {
                    ($l:expr, $r:expr) => {
                        quantize.narrowable(f32x4_add($l, $r))
                    };
                }
                let bytes = quantize.bytes(sum!(l0, r0), sum!(l1, r1), sum!(l2, r2), sum!(l3, r3));
                v128_store(y.add(i) as *mut v128, bytes);
            }
            i += 16;
        }
    }
}

/// tract's own scalar functions, which the kernels must equal.
pub mod reference {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::internal::*;
    use tract_onnx::tract_core::ops::quant::{quantize_linear_f32_i8, quantize_linear_f32_u8, DequantizeLinearF32};

    use super::{Dequantize, Quantize};

    /// Whether `x · inv_scale` saturates i32 (or is NaN). There tract's `+ zero_point` overflows
    /// (it wraps in release builds and panics in checked ones), so the reference is the
    /// documented formula, [`Quantize::scalar`]: clamped to the end the sign names, a NaN to the
    /// type's least value.
    fn saturates(q: &Quantize, x: f32) -> bool {
        x.is_nan() || (x * q.inv_scale).abs() >= 2147483520.0
    }

    /// tract's `quantize_linear_f32_u8` (`q.dt` u8).
    pub fn quantize_u8(q: &Quantize, xs: &[f32]) -> Vec<u8> {
        xs.iter()
            .map(
                |&x| {
                    if saturates(q, x) {
                        q.scalar(x) as u8
                    } else {
                        quantize_linear_f32_u8(x, q.inv_scale, q.zero_point)
                    }
                },
            )
            .collect()
    }

    /// tract's `quantize_linear_f32_i8` (`q.dt` i8).
    pub fn quantize_i8(q: &Quantize, xs: &[f32]) -> Vec<i8> {
        xs.iter()
            .map(
                |&x| {
                    if saturates(q, x) {
                        q.scalar(x) as i8
                    } else {
                        quantize_linear_f32_i8(x, q.inv_scale, q.zero_point)
                    }
                },
            )
            .collect()
    }

    /// tract's `DequantizeLinearF32` operator, evaluated on `xs`.
    pub fn dequantize<T: Datum + Copy>(d: &Dequantize, xs: &[T]) -> Result<Vec<f32>, String> {
        let op = DequantizeLinearF32 { scale: d.scale, zero_point: d.zero_point };
        let input = Tensor::from_shape(&[xs.len()], xs).map_err(|e| e.to_string())?;
        let out = op.eval(&EvalContext::out_of_plan(), tvec!(input.into_tvalue())).map_err(|e| e.to_string())?;
        let view = out[0].try_as_plain_ram().map_err(|e| e.to_string())?;
        Ok(view.as_slice::<f32>().map_err(|e| e.to_string())?.to_vec())
    }
}

/// Compares [`Best`] with [`reference`] on edge cases (ties, signed zeros, saturation, NaN,
/// infinities, every tail length): an error names the first difference.
pub fn check() -> Result<(), String> {
    check_kernels::<Best>()
}

/// [`check`] for any implementation of the family.
pub fn check_kernels<K: QdqKernels>() -> Result<(), String> {
    let specials = [
        0.0,
        -0.0,
        0.5,
        1.5,
        2.5,
        -0.5,
        -1.5,
        -2.5,
        126.5,
        127.5,
        128.5,
        254.5,
        255.5,
        -127.5,
        -128.5,
        -129.5,
        1e9,
        -1e9,
        3e38,
        -3e38,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e-40,
        0.49999997,
    ];
    let xs: Vec<f32> = specials.iter().copied().chain((0..200).map(|i| (i as f32 - 100.0) * 1.37 + 0.25)).collect();
    for (inv_scale, zero_point) in [(1.0f32, 0i32), (1.0, 128), (0.37, 3), (41.7, 255), (2.0, -128), (0.5, 127)] {
        for len in [xs.len(), 1, 3, 7, 15, 17, 33] {
            let xs = &xs[xs.len() - len..];
            let qu = Quantize { inv_scale, zero_point: zero_point.clamp(0, 255), dt: u8::datum_type() };
            let qi = Quantize { inv_scale, zero_point: zero_point.clamp(-128, 127), dt: i8::datum_type() };
            let mut u = vec![0u8; len];
            let mut i = vec![0i8; len];
            K::quantize(&qu, xs, &mut u);
            K::quantize(&qi, xs, &mut i);
            if u != reference::quantize_u8(&qu, xs) || i != reference::quantize_i8(&qi, xs) {
                return Err(format!(
                    "quantize differs from tract's at scale 1/{inv_scale}, zero point {zero_point}, length {len}"
                ));
            }
            let d = Dequantize { scale: 1.0 / inv_scale, zero_point: qu.zero_point };
            let want = reference::dequantize(&d, &u)?;
            let mut got = vec![0f32; len];
            K::dequantize(&d, &u, &mut got);
            let mut fused = vec![0f32; len];
            K::quantize_dequantize(&qu, &d, xs, &mut fused);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            if bits(&got) != bits(&want) || bits(&fused) != bits(&want) {
                return Err(format!(
                    "dequantize differs from tract's at scale {}, zero point {}, length {len}",
                    d.scale, d.zero_point
                ));
            }
            // Tables of every entry type, read at tract's quantized bytes (an i8's two's
            // complement), each entry distinct.
            let floats: Vec<f32> = (0..256).map(|b| b as f32 * 1.5 - 7.25).collect();
            let small: Vec<u8> = (0..256).map(|b| (b as u8).wrapping_mul(7).wrapping_add(3)).collect();
            let (ui, ii) = (reference::quantize_u8(&qu, xs), reference::quantize_i8(&qi, xs));
            let signed: Vec<i8> = small.iter().map(|b| b.wrapping_add(101) as i8).collect();
            let (mut f, mut b, mut s) = (vec![0f32; len], vec![0u8; len], vec![0i8; len]);
            for (q, index) in [(&qu, ui.clone()), (&qi, ii.iter().map(|v| *v as u8).collect())] {
                K::quantize_look_up(q, xs, &floats, &mut f);
                K::quantize_look_up(q, xs, &small, &mut b);
                K::quantize_look_up(q, xs, &signed, &mut s);
                let want_f: Vec<f32> = index.iter().map(|i| floats[*i as usize]).collect();
                let want_b: Vec<u8> = index.iter().map(|i| small[*i as usize]).collect();
                let want_s: Vec<i8> = index.iter().map(|i| signed[*i as usize]).collect();
                if bits(&f) != bits(&want_f) || b != want_b || s != want_s {
                    return Err(format!(
                        "a quantize and table read differs from tract's quantize at scale 1/{inv_scale}, zero point {}, {:?}, length {len}",
                        q.zero_point, q.dt
                    ));
                }
            }
            // A residual add: the fake-quantized values plus the dequantized bytes of the values
            // reversed (u8 and i8), or plus themselves fake-quantized, quantized to u8 and i8,
            // as tract's separate passes and its f32 add compute it.
            let reversed: Vec<f32> = xs.iter().rev().copied().collect();
            let (ur, ir) = (reference::quantize_u8(&qu, &reversed), reference::quantize_i8(&qi, &reversed));
            let di = Dequantize { scale: 0.75 / inv_scale, zero_point: qi.zero_point };
            let fake = reference::dequantize(&d, &ui)?;
            let cases: [(Operand, Vec<f32>); 3] = [
                (Operand::Dequantized(&ur, true, d), reference::dequantize(&d, &ur)?),
                (Operand::Dequantized(i8::bytes(&ir), false, di), reference::dequantize(&di, &ir)?),
                (Operand::FakeQuantized(xs, qu, d), fake.clone()),
            ];
            for (case, (right, right_values)) in cases.into_iter().enumerate() {
                let sums: Vec<f32> = fake.iter().zip(&right_values).map(|(a, b)| a + b).collect();
                for q in [&qu, &qi] {
                    let want: Vec<u8> = if q.dt == u8::datum_type() {
                        reference::quantize_u8(q, &sums)
                    } else {
                        reference::quantize_i8(q, &sums).iter().map(|v| *v as u8).collect()
                    };
                    let left = Operand::FakeQuantized(xs, qu, d);
                    // Either order: the kernel swaps a dequantized left operand to the right.
                    for (swapped, (a, b)) in [(false, (left, right)), (true, (right, left))] {
                        let mut got = vec![0u8; len];
                        K::residual_add(a, b, q, &mut got);
                        if got != want {
                            return Err(format!(
                                "a residual add (case {case}, swapped {swapped}) differs from tract's passes at scale 1/{inv_scale}, zero point {}, {:?}, length {len}",
                                q.zero_point, q.dt
                            ));
                        }
                    }
                }
            }
            // Both operands dequantized bytes, u8 plus i8.
            let both: Vec<f32> = reference::dequantize(&d, &ur)?
                .iter()
                .zip(&reference::dequantize(&di, &ir)?)
                .map(|(a, b)| a + b)
                .collect();
            let want = reference::quantize_u8(&qu, &both);
            let mut got = vec![0u8; len];
            K::residual_add(
                Operand::Dequantized(&ur, true, d),
                Operand::Dequantized(i8::bytes(&ir), false, di),
                &qu,
                &mut got,
            );
            if got != want {
                return Err(format!("a residual add of two dequantized operands differs from tract's, length {len}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_equal_tracts_scalar_functions() {
        check().unwrap();
        check_kernels::<Scalar>().unwrap();
    }

    #[test]
    fn signed_dequantize_equals_tracts() {
        let d = Dequantize { scale: 0.37, zero_point: -3 };
        let xs: Vec<i8> = (-128..=127).collect();
        let mut got = vec![0f32; xs.len()];
        Best::dequantize(&d, &xs, &mut got);
        let want = reference::dequantize(&d, &xs).unwrap();
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
}
