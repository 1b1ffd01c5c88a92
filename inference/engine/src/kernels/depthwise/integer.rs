//! The int8 depthwise convolution of planar (CHW) images of bytes: each output
//! `Σ_{ky, kx} w[ky, kx] · (x[oy·sy + ky − top, ox·sx + kx − left] − zp)`, exact in i32 (the
//! padding reads as the zero point, a zero), then dequantized per channel as `sum · scale + bias`
//! and activated ([`Activation`]).
//!
//! An int8 model's depthwise convolution reads a quantized image (a static model's between a
//! dequantize and a quantize, a dynamic one's after its per-inference quantize); in f32
//! a tap costs a load, a multiply and an add for four outputs (`benchmarks/profile.md`,
//! `Depthwise`). `i32x4.dot_i16x8_s` sums two products a lane, eight multiply-accumulates an
//! instruction, when the two values of a lane are two taps of one output: two adjacent columns of
//! a window row, weighted by a pair of kernel columns `2j, 2j + 1` (an odd window's last pair has a
//! zero weight). Eight adjacent bytes of a row, widened to i16 as they are loaded, are four such
//! pairs: for four adjacent outputs at column stride two (a unit of eight takes two such loads
//! eight columns apart), for the even (or odd) ones of eight adjacent outputs at stride one,
//! whose two halves are then interleaved. So each channel is
//! copied into a [`BytePlane`], its padding the zero point's byte, and a window costs one load and
//! one dot per pair of kernel columns per window row; the zero point is subtracted once, as
//! `−zp · Σ w`, where each sum starts.
//!
//! [`Scalar`] computes the same integer sums straight from the image, so both are equal bit for
//! bit (checked by [`check`] in the canister's self-test, simd128 against the scalar kernel).

use super::padded_extent;
use crate::kernels::activation::Activation;
use crate::kernels::integer_conv::pack::Geometry;
use crate::kernels::qdq::{ByteLookup, Quantize};
use tract_onnx::prelude::DatumType;

/// A depthwise convolution's int8 filters, as the kernels read them.
#[derive(Clone, Debug, PartialEq)]
pub struct IntegerFilters {
    pub geometry: Geometry,
    /// The input's zero point (its bytes read as u8 or i8).
    pub zero_point: i32,
    /// Per channel, its window's `kh · kw` weights, row-major (the int8 weights less their zero
    /// point).
    pub weights: Vec<i16>,
    /// Per channel, per kernel row, per pair of kernel columns, the two weights as the two i16
    /// halves of an i32 (zero past the window), splatted across a vector by the kernel.
    pairs: Vec<i32>,
    /// Per channel, `Σ w`: what an i8 image's sums start from less `128 · Σ w` (read as u8 by
    /// the simd128 kernel), kept so that no channel sums its window again per image.
    sums: Vec<i32>,
    /// Per channel, `−zp · Σ w`: where its sums start, so that the zero point is subtracted once.
    start: Vec<i32>,
    /// Per channel, the product of the input's scale and its weights' (the sum's dequantize).
    pub scales: Vec<f32>,
    /// Per channel.
    pub bias: Vec<f32>,
    /// Applied to each dequantized output.
    pub activation: Activation,
}

impl IntegerFilters {
    /// The filters for `weights` (`[C, kh · kw]`), one scale and one bias per channel.
    pub fn new(geometry: Geometry, zero_point: i32, weights: Vec<i16>, scales: Vec<f32>, bias: Vec<f32>) -> Self {
        let ([kh, kw], c) = (geometry.kernel, geometry.channels);
        assert!(weights.len() == c * kh * kw && scales.len() == c && bias.len() == c);
        let column_pairs = kw.div_ceil(2);
        let weight = |ch: usize, ky: usize, kx: usize| if kx < kw { weights[(ch * kh + ky) * kw + kx] } else { 0 };
        let mut pairs = Vec::with_capacity(c * kh * column_pairs);
        for ch in 0..c {
            for ky in 0..kh {
                for j in 0..column_pairs {
                    let (a, b) = (weight(ch, ky, 2 * j) as u16 as u32, weight(ch, ky, 2 * j + 1) as u16 as u32);
                    pairs.push((a | b << 16) as i32);
                }
            }
        }
        let sums: Vec<i32> = weights.chunks(kh * kw).map(|w| w.iter().map(|v| *v as i32).sum()).collect();
        let start = sums.iter().map(|sum| -zero_point * sum).collect();
        IntegerFilters {
            geometry,
            zero_point,
            weights,
            pairs,
            sums,
            start,
            scales,
            bias,
            activation: Activation::Identity,
        }
    }

    /// These filters with `activation` applied to each output.
    pub fn activated(self, activation: Activation) -> IntegerFilters {
        IntegerFilters { activation, ..self }
    }

    /// These filters for an input whose zero point and scale are computed per inference (a
    /// dynamic int8 model's): every channel's sum dequantized by `scale` (the input's scale
    /// times the weights' one).
    pub fn at_run_time(&self, zero_point: i32, scale: f32) -> IntegerFilters {
        let start = self.sums.iter().map(|sum| -zero_point * sum).collect();
        let scales = vec![scale; self.geometry.channels];
        IntegerFilters { zero_point, start, scales, ..self.clone() }
    }
}

/// One channel's image with the zero point's byte around it, as far as any load of the kernel
/// reads (the window's reach, then a vector's width beyond). The padding is written when the
/// buffer is made; [`BytePlane::fill`] writes only the channel's values, so one buffer serves
/// every channel of an image.
#[cfg_attr(not(all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))]
pub struct BytePlane {
    rows: usize,
    columns: usize,
    values: Vec<u8>,
}

impl BytePlane {
    /// A buffer for the channels of a convolution of `g`, padded with `padding` (the zero
    /// point's byte).
    pub fn new(g: &Geometry, padding: u8) -> BytePlane {
        let [rows, reach] = padded_extent(g);
        // The last vector of a row (or the only one, of a row shorter than a vector) loads eight
        // bytes from each pair's first column: up to column ow.max(8) · sx + kw + 8.
        let columns = reach.max(g.output[1].max(8) * g.strides[1] + g.kernel[1]) + 8;
        BytePlane { rows, columns, values: vec![padding; rows * columns] }
    }

    /// Bytes from one row's start to the next's.
    #[cfg_attr(not(all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))]
    pub(crate) fn columns(&self) -> usize {
        self.columns
    }

    /// The plane's bytes, row by row.
    #[cfg_attr(not(all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))]
    pub(crate) fn values(&self) -> &[u8] {
        &self.values
    }

    /// Copies one `[h, w]` channel, the first `h · w` bytes of `channel`, into the interior,
    /// each byte's top bit flipped if `FLIP` (an i8 image, read as u8 by the simd128 kernel).
    ///
    /// The bounds are checked once, not per row: a row's two slicings were two calls at the
    /// canister's opt-level, some 100 instructions a row, which on 14-row planes was most of a
    /// channel's set-up (`benchmarks/NOTES.md`, "The int8 depthwise kernel's set-up per channel").
    pub fn fill<const FLIP: bool>(&mut self, g: &Geometry, channel: &[u8]) {
        let ([h, w], [top, left], columns) = (g.input, g.pad_before, self.columns);
        assert!(channel.len() >= h * w && (top + h) * columns <= self.values.len() && left + w <= columns);
        let (from, to) = (channel.as_ptr(), self.values.as_mut_ptr());
        for iy in 0..h {
            // SAFETY: row iy < h of the channel, channel[iy · w..][..w], is within its first
            // h · w bytes; the row's interior, values[(top + iy) · columns + left..][..w], ends
            // within row top + iy (left + w <= columns), which is within the buffer (asserted).
            unsafe { copy_row::<FLIP>(from.add(iy * w), to.add((top + iy) * columns + left), w) };
        }
    }
}

/// `n` bytes copied from `from` to `to`, each byte's top bit flipped if `FLIP`, without a
/// `memory.copy` for short rows (which costs 100 of the IC's instructions before its bytes):
/// sixteen bytes a vector on wasm simd128, the last vector overlapping the ones before; shorter
/// rows by two overlapping copies of eight or four bytes, or byte by byte.
///
/// # Safety
/// `n` bytes must be readable at `from` and writable at `to`, the two not overlapping.
#[inline(always)]
unsafe fn copy_row<const FLIP: bool>(from: *const u8, to: *mut u8, n: usize) {
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    // SAFETY: the caller's.
    unsafe {
        core::ptr::copy_nonoverlapping(from, to, n);
        if FLIP {
            for i in 0..n {
                *to.add(i) ^= 0x80;
            }
        }
    };
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::*;
        let (src, dst) = (from, to);
        // The top bits, or nothing.
        let (flip, flip64, flip32, flip8) = if FLIP {
            (u8x16_splat(0x80), 0x8080_8080_8080_8080u64, 0x8080_8080u32, 0x80u8)
        } else {
            (u8x16_splat(0), 0, 0, 0)
        };
        // SAFETY: every vector (or word, or byte) read or written lies within the n bytes of
        // both (the caller's): the sixteen-byte copies for n >= 16, the eight-byte ones for
        // n >= 8, the four-byte ones for n >= 4, else bytes 0 to n - 1; each branch returns.
        unsafe {
            if n >= 16 {
                let mut i = 0;
                while i + 16 < n {
                    v128_store(dst.add(i) as *mut v128, v128_xor(v128_load(src.add(i) as *const v128), flip));
                    i += 16;
                }
                v128_store(dst.add(n - 16) as *mut v128, v128_xor(v128_load(src.add(n - 16) as *const v128), flip));
                return;
            }
            if n >= 8 {
                (dst as *mut u64).write_unaligned((src as *const u64).read_unaligned() ^ flip64);
                (dst.add(n - 8) as *mut u64).write_unaligned((src.add(n - 8) as *const u64).read_unaligned() ^ flip64);
                return;
            }
            if n >= 4 {
                (dst as *mut u32).write_unaligned((src as *const u32).read_unaligned() ^ flip32);
                (dst.add(n - 4) as *mut u32).write_unaligned((src.add(n - 4) as *const u32).read_unaligned() ^ flip32);
                return;
            }
            // Written out: a loop here is a `memory.copy` again.
            if n > 0 {
                *dst = *src ^ flip8;
            }
            if n > 1 {
                *dst.add(1) = *src.add(1) ^ flip8;
            }
            if n > 2 {
                *dst.add(2) = *src.add(2) ^ flip8;
            }
        }
    }
}

/// Whether the kernels below compute a convolution of `g` (windows of 3 and 5 without dilation,
/// column stride 1 or 2); the operator is wired only there.
pub fn covered(g: &Geometry) -> bool {
    super::vectorised(g) && g.channels > 0 && g.pixels() > 0
}

/// A byte of an image: u8 or i8.
pub trait Byte: Copy {
    const SIGNED: bool;
    fn value(self) -> i32;
}

impl Byte for u8 {
    const SIGNED: bool = false;
    fn value(self) -> i32 {
        self as i32
    }
}

impl Byte for i8 {
    const SIGNED: bool = true;
    fn value(self) -> i32 {
        self as i32
    }
}

/// The family's interface.
pub trait IntegerDepthwiseKernels {
    /// The `[C, oh, ow]` outputs of one `[C, h, w]` image.
    fn image<T: Byte>(filters: &IntegerFilters, image: &[T], out: &mut [f32]);

    /// [`IntegerDepthwiseKernels::image`] with each output then quantized and read through
    /// `lookup`'s table (a static int8 model's HardSwish after the convolution): the bytes out
    /// are the table's entries. The same f32 operations in the same order as the image and a
    /// separate lookup, so the same bytes; by default that is what it does, through an f32
    /// buffer.
    fn image_looked_up<T: Byte>(filters: &IntegerFilters, image: &[T], lookup: &ByteLookup, out: &mut [u8]) {
        looked_up_through_floats::<Self, T>(filters, image, lookup, out)
    }
}

/// [`IntegerDepthwiseKernels::image_looked_up`] through an f32 buffer: `K`'s outputs, then each
/// looked up.
fn looked_up_through_floats<K: IntegerDepthwiseKernels + ?Sized, T: Byte>(
    filters: &IntegerFilters,
    image: &[T],
    lookup: &ByteLookup,
    out: &mut [u8],
) {
    let mut floats = vec![0f32; out.len()];
    K::image(filters, image, &mut floats);
    for (y, x) in out.iter_mut().zip(&floats) {
        *y = lookup.scalar(*x);
    }
}

/// One output at a time, straight from the image.
pub struct Scalar;

impl IntegerDepthwiseKernels for Scalar {
    fn image<T: Byte>(filters: &IntegerFilters, image: &[T], out: &mut [f32]) {
        let g = &filters.geometry;
        let ([h, w], [oh, ow], [kh, kw], c) = (g.input, g.output, g.kernel, g.channels);
        assert!(image.len() >= c * h * w && out.len() >= c * oh * ow);
        for ch in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut sum = 0i32;
                    for ky in 0..kh {
                        let Some(iy) = g.input_row(oy, ky) else { continue };
                        for kx in 0..kw {
                            let ix = (ox * g.strides[1] + kx * g.dilations[1]) as isize - g.pad_before[1] as isize;
                            if ix < 0 || ix as usize >= w {
                                continue;
                            }
                            let x = image[(ch * h + iy) * w + ix as usize].value() - filters.zero_point;
                            sum += x * filters.weights[(ch * kh + ky) * kw + kx] as i32;
                        }
                    }
                    out[(ch * oh + oy) * ow + ox] =
                        filters.activation.apply(sum as f32 * filters.scales[ch] + filters.bias[ch]);
                }
            }
        }
    }
}

/// What the operator calls: [`Simd128`] in a wasm simd128 build, else [`Scalar`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub type Best = Simd128;
/// What the operator calls: `Simd128` in a wasm simd128 build, else [`Scalar`].
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub type Best = Scalar;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use simd::Simd128;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;
    use core::hint::black_box;

    use super::*;
    use crate::kernels::activation::{activate_each, LaneActivation};
    use crate::kernels::qdq::{looked_up, QuantizeLanes};

    /// Each channel through a [`BytePlane`], eight outputs a turn; a geometry not [`covered`],
    /// as [`Scalar`].
    pub struct Simd128;

    impl IntegerDepthwiseKernels for Simd128 {
        fn image<T: Byte>(filters: &IntegerFilters, image: &[T], out: &mut [f32]) {
            if !covered(&filters.geometry) {
                return Scalar::image(filters, image, out);
            }
            assert!(out.len() >= filters.geometry.channels * filters.geometry.pixels());
            // `out` holds every channel's output plane (asserted).
            channels(filters, image, &Sink::Floats(out.as_mut_ptr()));
        }

        /// Each unit's outputs quantized and read from the table as they are finished (no f32
        /// output between). The fused lookups follow convolutions without an activation
        /// ([`crate::passes::conv_lookup`]), so the units' byte outputs apply none; filters with
        /// one go through an f32 buffer.
        fn image_looked_up<T: Byte>(filters: &IntegerFilters, image: &[T], lookup: &ByteLookup, out: &mut [u8]) {
            if !covered(&filters.geometry) {
                return Scalar::image_looked_up(filters, image, lookup, out);
            }
            if filters.activation != Activation::Identity {
                return looked_up_through_floats::<Self, T>(filters, image, lookup, out);
            }
            assert!(out.len() >= filters.geometry.channels * filters.geometry.pixels());
            crate::kernels::qdq::fixed_byte_table(&lookup.table, &lookup.quantize);
            let lanes = QuantizeLanes::new(&lookup.quantize);
            // `out` holds every channel's output plane (asserted).
            channels(filters, image, &Sink::Bytes(out.as_mut_ptr(), lanes, lookup));
        }
    }

    /// Where the output planes go: f32 outputs, or their bytes through a lookup (the first
    /// channel's first output at the pointer, `[C, oh, ow]` of them writable).
    #[derive(Clone, Copy)]
    enum Sink<'a> {
        Floats(*mut f32),
        Bytes(*mut u8, QuantizeLanes, &'a ByteLookup),
    }

    impl Sink<'_> {
        /// This sink from its `offset`th output on.
        ///
        /// # Safety
        /// `offset` outputs are within the sink's.
        #[inline(always)]
        unsafe fn from(&self, offset: usize) -> Self {
            // SAFETY: the caller's.
            unsafe {
                match *self {
                    Sink::Floats(out) => Sink::Floats(out.add(offset)),
                    Sink::Bytes(out, lanes, lookup) => Sink::Bytes(out.add(offset), lanes, lookup),
                }
            }
        }
    }

    /// Each channel of a [`covered`] geometry through a [`BytePlane`] into its plane of `sink`.
    ///
    /// The sink is made once and passed by reference with each channel's first output: made per
    /// channel and passed by value, its quantize's constants were copied by a `memory.copy` of
    /// 128 bytes a channel (`benchmarks/NOTES.md`, "The int8 depthwise kernel's channels").
    fn channels<T: Byte>(filters: &IntegerFilters, image: &[T], sink: &Sink) {
        let g = &filters.geometry;
        let ([h, w], c) = (g.input, g.channels);
        let (kh, column_pairs) = (g.kernel[0], g.kernel[1].div_ceil(2));
        assert!(image.len() >= c * h * w);
        assert!(filters.pairs.len() >= c * kh * column_pairs && filters.start.len() >= c && filters.sums.len() >= c);
        assert!(filters.scales.len() >= c && filters.bias.len() >= c);
        // An i8 image is read as u8 with each byte's top bit flipped, that is plus 128: then
        // x − zp = (x + 128) − (zp + 128), so the kernels see u8 values, a zero point of zp + 128
        // (the padding's byte) and sums that start at −(zp + 128) · Σw. One kernel per window
        // and stride, where the signed ones were as many again (about 6.6 KB of code).
        let padding = if T::SIGNED { filters.zero_point as i8 as u8 ^ 0x80 } else { filters.zero_point as u8 };
        let pixels = g.pixels();
        let mut plane = BytePlane::new(g, padding);
        // Every row a window reads is in the plane (padded_extent's reach).
        assert!(
            plane.rows >= (g.output[0] - 1) * g.strides[0] + kh && plane.values.len() >= plane.rows * plane.columns
        );
        // SAFETY: T is u8 or i8, one byte with every bit pattern valid as u8.
        let bytes = unsafe { core::slice::from_raw_parts(image.as_ptr() as *const u8, image.len()) };
        // Made once for every channel: its opaque constants cost a store and a load each.
        let a = filters.activation.lanes();
        for ch in 0..c {
            // SAFETY: ch < c: the channel's bytes, weight pairs, start, scale and bias are in
            // bounds by the asserts above (indexing them cost a call each at the canister's
            // opt-level).
            let (channel, weights, start, scale, bias) = unsafe {
                (
                    bytes.get_unchecked(ch * h * w..),
                    filters.pairs.get_unchecked(ch * kh * column_pairs..),
                    *filters.start.get_unchecked(ch),
                    *filters.scales.get_unchecked(ch),
                    *filters.bias.get_unchecked(ch),
                )
            };
            let start = if T::SIGNED {
                plane.fill::<true>(g, channel);
                // SAFETY: ch < c, in bounds by the assert above.
                start.wrapping_sub(128 * unsafe { *filters.sums.get_unchecked(ch) })
            } else {
                plane.fill::<false>(g, channel);
                start
            };
            let first = ch * pixels;
            // SAFETY: the plane was made for g (every load of every output is inside it:
            // BytePlane::new), the channel's weight pairs are in bounds by the assert, and its
            // output plane is the sink's from `first` (the callers').
            unsafe {
                match (g.kernel[0], g.strides[1]) {
                    (3, 1) => plane_3::<1>(g, &plane, weights, start, scale, bias, &a, sink, first),
                    (3, _) => plane_3::<2>(g, &plane, weights, start, scale, bias, &a, sink, first),
                    (5, 1) => plane_5::<1>(g, &plane, weights, start, scale, bias, &a, sink, first),
                    _ => plane_5::<2>(g, &plane, weights, start, scale, bias, &a, sink, first),
                }
            }
        }
    }

    /// Four sums dequantized: `sum · scale + bias`.
    #[inline(always)]
    fn dequantized(scale: v128, bias: v128, sum: v128) -> v128 {
        f32x4_add(f32x4_mul(f32x4_convert_i32x4(sum), scale), bias)
    }

    /// Eight bytes at `from`, widened to i16.
    #[inline(always)]
    unsafe fn widened(from: *const u8) -> v128 {
        // SAFETY: the caller's: eight bytes are readable at `from`.
        unsafe { u16x8_load_extend_u8x8(from) }
    }

    /// Four outputs' window sums from `$start`: `$rows[ky]` point at window row `ky`'s first
    /// column for the first output, `$shift` bytes on; pair `j` is `2j` columns on.
    macro_rules! window {
        ($start:ident, $rows:ident, $shift:literal, $w:ident, $j:literal, [$($ky:literal)*], $ps:tt) => {{
            let mut acc = $start;
            $( window!(@row acc, $rows, $shift, $w, $j, $ky, $ps); )*
            acc
        }};
        (@row $acc:ident, $rows:ident, $shift:literal, $w:ident, $j:literal, $ky:literal, [$($p:literal)*]) => {
            $(
                let pair = widened($rows[$ky].add($shift + 2 * $p));
                $acc = i32x4_add($acc, i32x4_dot_i16x8(pair, $w[$ky * $j + $p]));
            )*
        };
    }

    /// One unit of eight outputs (at column stride one the even and the odd ones, interleaved;
    /// at two the first four and the next) from output column `$at` of the row whose window starts at `$first`, written
    /// into `$sink`'s plane from output `$index`: as f32, activated, or quantized as the
    /// addresses of their entries in the table, each entry read into its output's lane and the
    /// unit's bytes stored at once (without an activation: see `image_looked_up`).
    macro_rules! output_unit {
        ($first:ident, $at:expr, $sink:ident, $index:expr, $offsets:ident, $start:ident, $w:ident, $j:literal, $kys:tt, $ps:tt, $scale:ident, $bias:ident, $activation:ident) => {{
            let index = $index;
            let p = black_box($first.add($at * S));
            let rows = plane_window!(@rows p, $offsets, $kys);
            if S == 1 {
                let mut even = dequantized($scale, $bias, window!($start, rows, 0, $w, $j, $kys, $ps));
                let mut odd = dequantized($scale, $bias, window!($start, rows, 1, $w, $j, $kys, $ps));
                match $sink {
                    Sink::Floats(out) => {
                        activate_each!(*$activation, even, odd);
                        let to = out.add(index);
                        v128_store(to as *mut v128, i32x4_shuffle::<0, 4, 1, 5>(even, odd));
                        v128_store(to.add(4) as *mut v128, i32x4_shuffle::<2, 6, 3, 7>(even, odd));
                    }
                    Sink::Bytes(out, q, _) => {
                        let (e, o) = (q.addresses(even), q.addresses(odd));
                        // The even and odd outputs' entries interleaved into the first eight lanes.
                        let entries = looked_up!(e, 0 <- e[0], 1 <- o[0], 2 <- e[1], 3 <- o[1], 4 <- e[2], 5 <- o[2],
                            6 <- e[3], 7 <- o[3]);
                        v128_store64_lane::<0>(entries, out.add(index) as *mut u64);
                    }
                }
            } else {
                // Stride two: a load's four pairs are four adjacent outputs' (their columns two
                // apart), so the next four outputs' pairs are eight columns on.
                let mut low = dequantized($scale, $bias, window!($start, rows, 0, $w, $j, $kys, $ps));
                let mut high = dequantized($scale, $bias, window!($start, rows, 8, $w, $j, $kys, $ps));
                match $sink {
                    Sink::Floats(out) => {
                        activate_each!(*$activation, low, high);
                        let to = out.add(index);
                        v128_store(to as *mut v128, low);
                        v128_store(to.add(4) as *mut v128, high);
                    }
                    Sink::Bytes(out, q, _) => {
                        let (l, h) = (q.addresses(low), q.addresses(high));
                        let entries = looked_up!(l, 0 <- l[0], 1 <- l[1], 2 <- l[2], 3 <- l[3], 4 <- h[0], 5 <- h[1],
                            6 <- h[2], 7 <- h[3]);
                        v128_store64_lane::<0>(entries, out.add(index) as *mut u64);
                    }
                }
            }
        }};
    }

    /// One channel's output plane for a k×k window at column stride `S`: per output row, units
    /// of eight outputs, the last ending at the row's end (overlapping those before: the same
    /// values written twice); a row shorter than a unit written whole (its outputs past the row
    /// rewritten by the rows below), or through a scratch unit at the plane's end. At stride
    /// two a unit was four outputs: eight share the loop's turn, the row pointers and one
    /// store (`benchmarks/NOTES.md`, "The int8 depthwise kernel's channels").
    macro_rules! plane_window {
        ($name:ident, $j:literal, $kys:tt, $ps:tt, [$($i:literal)*]) => {
            /// # Safety
            /// `plane` holds the channel for `g` ([`BytePlane::new`]), `weights` its pairs, and
            /// the sink's `[oh, ow]` outputs from `first_output` are its output plane.
            #[allow(clippy::too_many_arguments)]
            unsafe fn $name<const S: usize>(
                g: &Geometry,
                plane: &BytePlane,
                weights: &[i32],
                start: i32,
                scale: f32,
                bias: f32,
                activation: &LaneActivation,
                sink: &Sink,
                first_output: usize,
            ) {
                let ([oh, ow], sy) = (g.output, g.strides[0]);
                let unit = 8;
                let (columns, values) = (plane.columns, plane.values.as_ptr());
                // SAFETY: (for the block) the caller's conditions.
                unsafe {
                    // A copy, so that the quantize's constants are locals.
                    let sink = sink.from(first_output);
                    let wp = weights.as_ptr();
                    let w = [$( v128_load32_splat(wp.add($i) as *const u32) ),*];
                    let (start, scale, bias) = (i32x4_splat(start), f32x4_splat(scale), f32x4_splat(bias));
                    let offsets = plane_window!(@offsets columns, $kys);
                    // Only a unit's first ow < unit values are read, after the unit wrote them.
                    let mut scratch = core::mem::MaybeUninit::<[f32; 8]>::uninit();
                    let scratch = scratch.as_mut_ptr() as *mut f32;
                    for oy in 0..oh {
                        let first = values.add(oy * sy * columns);
                        let row = oy * ow;
                        if ow >= unit {
                            let mut ox = 0;
                            while ox < ow {
                                let at = ox.min(ow - unit);
                                output_unit!(first, at, sink, row + at, offsets, start, w, $j, $kys, $ps, scale, bias, activation);
                                ox = at + unit;
                            }
                        } else if row + unit <= oh * ow {
                            // A row shorter than a unit, written whole: its outputs past the
                            // row's end fall in the rows below, which are written after it. (The
                            // plane's columns reach a unit's loads: `BytePlane::new`.)
                            output_unit!(first, 0, sink, row, offsets, start, w, $j, $kys, $ps, scale, bias, activation);
                        } else {
                            // The plane's last rows: their unit computed into a scratch one,
                            // then copied (or looked up).
                            let to_scratch = Sink::Floats(scratch);
                            output_unit!(first, 0, to_scratch, 0, offsets, start, w, $j, $kys, $ps, scale, bias, activation);
                            // Plain loops: an iterator with a match inside stayed a call a value.
                            let mut i = 0;
                            match sink {
                                Sink::Floats(out) => {
                                    while i < ow {
                                        *out.add(row + i) = *scratch.add(i);
                                        i += 1;
                                    }
                                }
                                Sink::Bytes(out, _, lookup) => {
                                    while i < ow {
                                        *out.add(row + i) = lookup.scalar(*scratch.add(i));
                                        i += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        (@offsets $columns:ident, [$($ky:literal)*]) => {
            [$( $ky * $columns ),*]
        };
        (@rows $p:expr, $offsets:ident, [$($ky:literal)*]) => {{
            let p = $p;
            [$( p.add($offsets[$ky]) ),*]
        }};
    }

    plane_window!(plane_3, 2, [0 1 2], [0 1], [0 1 2 3 4 5]);
    plane_window!(plane_5, 3, [0 1 2 3 4], [0 1 2], [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14]);
}

/// [`Best`] against [`Scalar`] bit for bit over windows of 3 and 5 (and 2, not covered), strides
/// 1 and 2 per axis, paddings of none to the window's reach, widths odd and even, u8 and i8
/// images with zero points across their range; an error names the first case that differs.
pub fn check() -> Result<(), String> {
    check_kernels::<Best>()
}

/// [`check`] for kernel family `K` (with each output looked up through a table of bytes too).
pub fn check_kernels<K: IntegerDepthwiseKernels>() -> Result<(), String> {
    for (k, pad) in [(3, 1), (5, 2), (3, 0), (5, 1), (2, 0)] {
        for strides in [[1, 1], [2, 2], [2, 1], [1, 2]] {
            for (channels, [h, w]) in [
                (3, [5, 5]),
                (8, [7, 6]),
                (4, [6, 9]),
                (2, [9, 13]),
                (12, [5, 8]),
                (2, [4, 23]),
                (4, [3, 17]),
                (1, [8, 32]),
            ] {
                if h + 2 * pad < k || w + 2 * pad < k {
                    continue;
                }
                let g = super::reference::geometry(channels, [h, w], k, strides, pad);
                let taps = k * k;
                // Within ±255: a dynamic model's weights less their zero point.
                let weights: Vec<i16> = (0..channels * taps).map(|i| ((i * 37 + 11) % 511) as i16 - 255).collect();
                let scales: Vec<f32> = (0..channels).map(|c| 0.0125 + c as f32 * 0.003).collect();
                let bias: Vec<f32> = (0..channels).map(|c| c as f32 * 0.25 - 1.0).collect();
                for zero_point in [0, 3, 128, 255] {
                    let filters =
                        IntegerFilters::new(g.clone(), zero_point, weights.clone(), scales.clone(), bias.clone());
                    let bytes: Vec<u8> = (0..h * w * channels).map(|i| ((i * 97 + 13) % 256) as u8).collect();
                    compare::<K, u8>(
                        &filters,
                        &bytes,
                        &format!("u8 k {k} pad {pad} strides {strides:?} {channels}×{h}×{w} zp {zero_point}"),
                    )?;
                    // The same filters activated (the outputs a fused table then reads).
                    if zero_point == 3 {
                        let activated = filters.clone().activated(Activation::HardSwish);
                        compare::<K, u8>(&activated, &bytes, &format!("HardSwish, {k}×{k} strides {strides:?}"))?;
                    }
                    // The same filters with the zero point and scale given per inference.
                    let at_run_time = filters.at_run_time(zero_point, 0.0375);
                    compare::<K, u8>(&at_run_time, &bytes, &format!("at run time, {k}×{k} zp {zero_point}"))?;
                    let signed: Vec<i8> = bytes.iter().map(|b| *b as i8).collect();
                    let filters =
                        IntegerFilters::new(g.clone(), zero_point - 128, weights.clone(), scales.clone(), bias.clone());
                    compare::<K, i8>(
                        &filters,
                        &signed,
                        &format!("i8 k {k} pad {pad} strides {strides:?} {channels}×{h}×{w} zp {}", zero_point - 128),
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn compare<K: IntegerDepthwiseKernels, T: Byte>(
    filters: &IntegerFilters,
    image: &[T],
    case: &str,
) -> Result<(), String> {
    let g = &filters.geometry;
    let n = g.pixels() * g.channels;
    // Outputs start as NaN, so one left unwritten differs.
    let (mut ours, mut reference) = (vec![f32::NAN; n], vec![f32::NAN; n]);
    K::image(filters, image, &mut ours);
    Scalar::image(filters, image, &mut reference);
    if let Some(i) = (0..n).find(|&i| ours[i].to_bits() != reference[i].to_bits()) {
        return Err(format!(
            "int8 depthwise, {case}: output {i} is {} where the reference has {}",
            ours[i], reference[i]
        ));
    }
    // The outputs quantized (u8 and i8, some past either end) and read through a table of
    // distinct bytes.
    for (dt, zero_point) in [(DatumType::U8, 120), (DatumType::I8, -7)] {
        let lookup = ByteLookup {
            quantize: Quantize { inv_scale: 3.1, zero_point, dt },
            table: (0..=255u8).map(|b| b.wrapping_mul(59).wrapping_add(17)).collect(),
        };
        // Outputs starting as 0 and as 255: a byte left unwritten differs in one of the two.
        for initial in [0u8, 255] {
            let mut bytes = vec![initial; n];
            K::image_looked_up(filters, image, &lookup, &mut bytes);
            if let Some(i) = (0..n).find(|&i| bytes[i] != lookup.scalar(reference[i])) {
                return Err(format!(
                    "int8 depthwise through a table ({dt:?}), {case}: output {i} is {} where the reference's looks up {}",
                    bytes[i],
                    lookup.scalar(reference[i])
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scalar kernel against the convolution written out for one small case: a 3×3 window
    /// of ones over a 3×3 image of one value per channel, padded by one, zero point 2.
    #[test]
    fn the_scalar_kernel_sums_the_window_less_the_zero_point() {
        let g = super::super::reference::geometry(4, [3, 3], 3, [1, 1], 1);
        let filters = IntegerFilters::new(g, 2, vec![1; 4 * 9], vec![0.5; 4], vec![1.0; 4]);
        let image: Vec<u8> = (0..4u8).flat_map(|ch| [ch + 2; 9]).collect();
        let mut out = vec![0.0; 4 * 9];
        Scalar::image(&filters, &image, &mut out);
        // Channel c's values less the zero point are c everywhere; the centre's window holds
        // nine of them, a corner's four.
        for ch in 0..4 {
            assert_eq!(out[ch * 9 + 4], (9 * ch) as f32 * 0.5 + 1.0);
            assert_eq!(out[ch * 9], (4 * ch) as f32 * 0.5 + 1.0);
        }
    }

    #[test]
    fn the_kernels_agree() {
        check().unwrap();
    }
}
