//! The integer convolution's kernel: widening int8 values to i16, and the multiply of packed
//! weights by a packed im2col matrix ([`pack`]) with the epilogue that makes each integer sum an
//! f32 output. simd128 on wasm, scalar elsewhere; [`reference`] is a direct convolution of the
//! unpacked values, which packing then multiplying must equal bit for bit.
//!
//! The simd128 kernel accumulates `Σ x·w` exactly in i32 lanes with `i32x4.dot_i16x8_s`, eight
//! multiply-accumulates for one instruction under the IC's cost table. Lanes are four output
//! channels. Each step covers four K pairs of four pixels: it loads the block's weight vectors,
//! splats each pixel's pairs, and adds a pixel's four dot products before touching its
//! accumulator, since reading and writing a local costs as much as the dot product itself. With
//! sixteen-channel blocks (channel counts that are multiples of 16) each splat feeds four dot
//! products, which is markedly cheaper per MAC than four-channel blocks on large convolutions
//! (per-operator figures in `benchmarks/profile.md`); with two such blocks at once (32
//! channels) each splat feeds eight, half the splats per MAC again.
//!
//! Loops index with plain counters, as in [`super::qdq`]: at the canister's opt-level,
//! iterator adaptors stay calls. LLVM's loop strength reduction costs the loads their constant
//! offsets (an `i32.const` and an `i32.add` each); `-C llvm-args=-disable-lsr` would remove
//! those but slows tract's f32 kernels, so the kernel's pointers pass through
//! `core::hint::black_box` once per step instead, as in [`super::float_conv`].

pub mod pack;
pub mod reference;
pub mod three_planes;
pub mod winograd;

pub use reference::{check, check_kernels};

use std::mem::MaybeUninit;

use pack::{Epilogue, PackedWeights, Strides};

use crate::kernels::qdq::{ByteLookup, QdqKernels};

/// The family's interface.
pub trait ConvKernels {
    /// Values widened to i16 (`min(xs.len(), ys.len())` of them, each slot written): the bytes
    /// of u8 values if `unsigned`, else of i8 ones.
    fn widen(xs: &[u8], unsigned: bool, ys: &mut [MaybeUninit<i16>]);
    /// A planar (CHW) image of `channels × pixels` values (the bytes of u8 values if `unsigned`,
    /// else of i8 ones) widened to i16 and interleaved (HWC): `ys[p·C + c] = xs[c·P + p]`, each
    /// of the first `C·P` slots written. The packing's transposition, so that each kernel row
    /// of each output pixel copies a contiguous run of values.
    fn interleave(xs: &[u8], unsigned: bool, ys: &mut [MaybeUninit<i16>], channels: usize, pixels: usize);
    /// `ys[i] = xs[from + i·step]` for every i of `ys`: a row segment of a planar image, every
    /// `step`-th column, for the planar im2col matrix of small channel counts ([`pack`]).
    fn gather(xs: &[u8], from: usize, step: usize, ys: &mut [u8]);
    /// One kernel row's runs for a row of output pixels ([`pack`]): for each of `runs.count`
    /// pixels i, the `runs.len` values at `src[runs.from + i · runs.step..]` written to
    /// `dst[i · runs.stride..]`.
    fn copy_pixels(src: &[i16], dst: &mut [MaybeUninit<i16>], runs: Runs);
    /// The outputs of one image from its packed im2col matrix ([`pack`]): output (channel m,
    /// pixel p) at `out[m · strides.channel + p · strides.pixel]`.
    fn multiply(
        weights: &PackedWeights,
        input: &[i16],
        pixels: usize,
        epilogue: &Epilogue,
        strides: Strides,
        out: &mut [f32],
    );
    /// [`ConvKernels::multiply`] with each output then quantized and read through `lookup`'s
    /// table (a static int8 model's HardSwish after the convolution, [`crate::ops::lookup`]): the
    /// bytes out are the table's entries, at the same places. The same f32 operations in the same
    /// order as the multiply and a separate [`crate::kernels::qdq::QdqKernels::quantize_look_up`],
    /// so the same bytes; by default that is what it does, through an f32 buffer.
    fn multiply_looked_up(
        weights: &PackedWeights,
        input: &[i16],
        pixels: usize,
        epilogue: &Epilogue,
        lookup: &ByteLookup,
        strides: Strides,
        out: &mut [u8],
    ) {
        looked_up_through_floats::<Self>(weights, input, pixels, epilogue, lookup, strides, out)
    }

    /// Winograd's input transform ([`winograd`]): for each tile t (`tiles[0]` rows of
    /// `tiles[1]`) of a padded interleaved image (`2 · tiles[0] + 2` rows of `width ≥ 2 ·
    /// tiles[1] + 2` pixels, C = `channels` values a pixel, a multiple of eight), `Bᵀ d B` of
    /// each channel c of its 4×4 window, value (i, j) written at
    /// `v[(4i + j) · stride + t · C + c]`, the (1, 1) one less `4 · zero_point` (the transform
    /// of a window of zero points is that alone).
    fn winograd_input(
        image: &[i16],
        width: usize,
        channels: usize,
        tiles: [usize; 2],
        zero_point: i16,
        v: &mut [MaybeUninit<i16>],
        stride: usize,
    );
    /// Winograd's output transform ([`winograd`]): for each tile t (of T = `tiles[0] ·
    /// tiles[1]`) and channel m (of `channels`), its sixteen products (position ξ at
    /// `products[ξ · stride + m · T + t]`, with three values more after the last, which a
    /// vector step may read) to `Aᵀ M A / 4`, each output through the
    /// epilogue (without weight sums) and written, as [`ConvKernels::multiply`] does, for the
    /// pixels inside `output`.
    #[allow(clippy::too_many_arguments)]
    fn winograd_output(
        products: &[i32],
        stride: usize,
        channels: usize,
        tiles: [usize; 2],
        output: [usize; 2],
        epilogue: &Epilogue,
        strides: Strides,
        out: &mut [f32],
    );
}

/// [`ConvKernels::multiply_looked_up`] through an f32 buffer: `K`'s multiply, then the lookup of
/// every output (the default, and the simd128 kernel's where its epilogue does not look up).
fn looked_up_through_floats<K: ConvKernels + ?Sized>(
    weights: &PackedWeights,
    input: &[i16],
    pixels: usize,
    epilogue: &Epilogue,
    lookup: &ByteLookup,
    strides: Strides,
    out: &mut [u8],
) {
    let mut floats = vec![0f32; out.len()];
    K::multiply(weights, input, pixels, epilogue, strides, &mut floats);
    crate::kernels::qdq::Best::quantize_look_up(&lookup.quantize, &floats, &lookup.table, out);
}

/// Where [`ConvKernels::copy_pixels`] reads and writes: `count` runs of `len` values, the i-th
/// read from `from + i · step` and written at `i · stride`.
#[derive(Clone, Copy, Debug)]
pub struct Runs {
    pub from: usize,
    pub step: usize,
    pub stride: usize,
    pub count: usize,
    pub len: usize,
}

/// One multiply-accumulate at a time.
pub struct Scalar;

/// What the operator and the packing call: [`Simd128`] in a wasm simd128 build, else [`Scalar`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub type Best = Simd128;
/// What the operator and the packing call: `Simd128` in a wasm simd128 build, else [`Scalar`].
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub type Best = Scalar;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use simd::Simd128;

fn widen_scalar(xs: &[u8], unsigned: bool, ys: &mut [MaybeUninit<i16>]) {
    let (len, mut i) = (xs.len().min(ys.len()), 0);
    while i < len {
        ys[i].write(if unsigned { xs[i] as i16 } else { xs[i] as i8 as i16 });
        i += 1;
    }
}

/// [`ConvKernels::interleave`] for channels `channels.0..channels.1` of pixels
/// `pixels.0..pixels.1` (the simd128 version's edges).
///
/// An empty range returns at once: the simd128 version's edge of channels is empty for every
/// channel count that is a multiple of eight, and iterating its pixels anyway cost some forty
/// instructions a pixel at the canister's opt-level (`benchmarks/NOTES.md`, "Empty edges").
fn interleave_scalar(
    xs: &[u8],
    unsigned: bool,
    ys: &mut [MaybeUninit<i16>],
    count: [usize; 2],
    channels: [usize; 2],
    pixels: [usize; 2],
) {
    if channels[0] >= channels[1] || pixels[0] >= pixels[1] {
        return;
    }
    let [c_count, p_count] = count;
    for p in pixels[0]..pixels[1] {
        for c in channels[0]..channels[1] {
            let x = xs[c * p_count + p];
            ys[p * c_count + c].write(if unsigned { x as i16 } else { x as i8 as i16 });
        }
    }
}

/// [`ConvKernels::gather`] from `ys[done]` on (the simd128 version's tail).
fn gather_scalar(xs: &[u8], from: usize, step: usize, ys: &mut [u8], done: usize) {
    let mut i = done;
    while i < ys.len() {
        ys[i] = xs[from + i * step];
        i += 1;
    }
}

/// The two i16 of a packed pair.
fn halves(w: u32) -> (i32, i32) {
    (w as u16 as i16 as i32, (w >> 16) as u16 as i16 as i32)
}

fn multiply_scalar(
    weights: &PackedWeights,
    input: &[i16],
    pixels: usize,
    epilogue: &Epilogue,
    strides: Strides,
    out: &mut [f32],
) {
    let (pairs, rows) = (weights.pairs, weights.rows);
    for m in 0..weights.channels {
        let (block, r) = (m / rows, m % rows);
        for p in 0..pixels {
            let mut acc = 0i32;
            for q in 0..pairs {
                let (w0, w1) = halves(weights.panels[(block * pairs + q) * rows + r]);
                let x = &input[(p * pairs + q) * 2..][..2];
                acc = acc.wrapping_add(x[0] as i32 * w0 + x[1] as i32 * w1);
            }
            out[m * strides.channel + p * strides.pixel] = epilogue.scalar(m, acc, weights.sums[m]);
        }
    }
}

impl ConvKernels for Scalar {
    fn widen(xs: &[u8], unsigned: bool, ys: &mut [MaybeUninit<i16>]) {
        widen_scalar(xs, unsigned, ys)
    }

    fn interleave(xs: &[u8], unsigned: bool, ys: &mut [MaybeUninit<i16>], channels: usize, pixels: usize) {
        interleave_scalar(xs, unsigned, ys, [channels, pixels], [0, channels], [0, pixels])
    }

    fn gather(xs: &[u8], from: usize, step: usize, ys: &mut [u8]) {
        gather_scalar(xs, from, step, ys, 0)
    }

    fn copy_pixels(src: &[i16], dst: &mut [MaybeUninit<i16>], runs: Runs) {
        let Runs { from, step, stride, count, len } = runs;
        for i in 0..count {
            for (slot, value) in dst[i * stride..][..len].iter_mut().zip(&src[from + i * step..][..len]) {
                slot.write(*value);
            }
        }
    }

    fn multiply(
        weights: &PackedWeights,
        input: &[i16],
        pixels: usize,
        epilogue: &Epilogue,
        strides: Strides,
        out: &mut [f32],
    ) {
        multiply_scalar(weights, input, pixels, epilogue, strides, out)
    }

    fn winograd_input(
        image: &[i16],
        width: usize,
        channels: usize,
        tiles: [usize; 2],
        zero_point: i16,
        v: &mut [MaybeUninit<i16>],
        stride: usize,
    ) {
        winograd::input_scalar(image, width, channels, tiles, zero_point, v, stride)
    }

    fn winograd_output(
        products: &[i32],
        stride: usize,
        channels: usize,
        tiles: [usize; 2],
        output: [usize; 2],
        epilogue: &Epilogue,
        strides: Strides,
        out: &mut [f32],
    ) {
        winograd::output_scalar(products, stride, channels, tiles, output, epilogue, strides, out)
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;
    use core::hint::black_box;

    use super::pack::{PIXELS, ROWS, STEP, WIDE_ROWS};
    use super::*;
    use crate::kernels::qdq::{looked_up, QuantizeLanes};

    /// Where the wide kernel writes: f32 outputs, or bytes read through a table.
    enum Sink<'a> {
        Floats(&'a mut [f32]),
        Bytes(&'a mut [u8], &'a LookedUp<'a>),
    }

    /// A [`ByteLookup`] as the wide kernel's epilogue reads it: its quantize as lanes, its table
    /// copied to the fixed address ([`crate::kernels::qdq::fixed_byte_table`]).
    struct LookedUp<'a> {
        lanes: QuantizeLanes,
        lookup: &'a ByteLookup,
    }

    impl LookedUp<'_> {
        /// A group's outputs (`acc[j][g]`: pixel j, channels 4g..4g + 4 of the block) through the
        /// lookup, written at `out[at + m · channel + j]` for the block's sixteen channels m and
        /// its first `valid` pixels. A whole group: each quarter's four pixels quantized and
        /// clamped as the addresses of their entries (`p_j`, lane r: pixel j, channel r), each
        /// entry read into a vector transposed on the way (lanes 4r..4r + 4: channel r's four
        /// pixels, [`looked_up`]), and each channel's four stored at once.
        #[inline(always)]
        fn group(
            &self,
            acc: [[v128; 4]; 4],
            lanes: &[Lanes; 4],
            out: &mut [u8],
            at: usize,
            channel: usize,
            valid: usize,
        ) {
            // Copies, so that the parameters stay in locals: the byte stores below may alias any
            // memory, and a parameter read through a reference would be loaded again after each.
            let (q, lanes) = (self.lanes, *lanes);
            if valid == PIXELS {
                assert!(at + 15 * channel + PIXELS <= out.len());
                let to = out.as_mut_ptr();
                macro_rules! quarter {
                    ($g:literal) => {{
                        let l = &lanes[$g];
                        // Written out: a closure here stayed a call, its captures in memory.
                        let p0 = q.addresses(l.converted(acc[0][$g]));
                        let p1 = q.addresses(l.converted(acc[1][$g]));
                        let p2 = q.addresses(l.converted(acc[2][$g]));
                        let p3 = q.addresses(l.converted(acc[3][$g]));
                        let row = at + 4 * $g * channel;
                        // Channel r's four pixels are lane r of p0 to p3: their entries go to
                        // lanes 4r to 4r + 3, one store for the channel's four.
                        let entries = looked_up!(p0, 0 <- p0[0], 1 <- p1[0], 2 <- p2[0], 3 <- p3[0], 4 <- p0[1],
                            5 <- p1[1], 6 <- p2[1], 7 <- p3[1], 8 <- p0[2], 9 <- p1[2], 10 <- p2[2], 11 <- p3[2],
                            12 <- p0[3], 13 <- p1[3], 14 <- p2[3], 15 <- p3[3]);
                        // SAFETY: out[row + r · channel..][..4] is in bounds for r < 4 (asserted
                        // above: 4g + r <= 15).
                        unsafe {
                            v128_store32_lane::<0>(entries, to.add(row) as *mut u32);
                            v128_store32_lane::<1>(entries, to.add(row + channel) as *mut u32);
                            v128_store32_lane::<2>(entries, to.add(row + 2 * channel) as *mut u32);
                            v128_store32_lane::<3>(entries, to.add(row + 3 * channel) as *mut u32);
                        }
                    }};
                }
                quarter!(0);
                quarter!(1);
                quarter!(2);
                quarter!(3);
                return;
            }
            self.partial(acc, &lanes, out, at, channel, valid);
        }

        /// [`LookedUp::group`] of fewer than four pixels, one value at a time: a function of its
        /// own, which the wide kernel's two epilogues share (its code is not needed twice).
        #[inline(never)]
        fn partial(
            &self,
            acc: [[v128; 4]; 4],
            lanes: &[Lanes; 4],
            out: &mut [u8],
            at: usize,
            channel: usize,
            valid: usize,
        ) {
            for (j, pixel) in acc.iter().enumerate().take(valid) {
                for (g, l) in lanes.iter().enumerate() {
                    let v = l.converted(pixel[g]);
                    let values = [
                        f32x4_extract_lane::<0>(v),
                        f32x4_extract_lane::<1>(v),
                        f32x4_extract_lane::<2>(v),
                        f32x4_extract_lane::<3>(v),
                    ];
                    for (r, x) in values.into_iter().enumerate() {
                        out[at + (4 * g + r) * channel + j] = self.lookup.scalar(x);
                    }
                }
            }
        }
    }

    /// `i32x4.dot_i16x8_s` over four- or sixteen-channel blocks of four pixels.
    pub struct Simd128;

    impl ConvKernels for Simd128 {
        fn widen(xs: &[u8], unsigned: bool, ys: &mut [MaybeUninit<i16>]) {
            widen(xs, unsigned, ys)
        }

        fn interleave(xs: &[u8], unsigned: bool, ys: &mut [MaybeUninit<i16>], channels: usize, pixels: usize) {
            interleave(xs, unsigned, ys, channels, pixels)
        }

        fn gather(xs: &[u8], from: usize, step: usize, ys: &mut [u8]) {
            gather(xs, from, step, ys)
        }

        fn copy_pixels(src: &[i16], dst: &mut [MaybeUninit<i16>], runs: Runs) {
            copy_pixels(src, dst, runs)
        }

        fn multiply(
            weights: &PackedWeights,
            input: &[i16],
            pixels: usize,
            epilogue: &Epilogue,
            strides: Strides,
            out: &mut [f32],
        ) {
            multiply(weights, input, pixels, epilogue, strides, out)
        }

        /// The wide kernel's outputs quantized and looked up as each group's accumulators are
        /// finished, without an f32 output (planar outputs of sixteen-channel blocks; others
        /// through an f32 buffer).
        fn multiply_looked_up(
            weights: &PackedWeights,
            input: &[i16],
            pixels: usize,
            epilogue: &Epilogue,
            lookup: &ByteLookup,
            strides: Strides,
            out: &mut [u8],
        ) {
            if weights.rows != WIDE_ROWS || strides.pixel != 1 || epilogue.raw {
                return looked_up_through_floats::<Self>(weights, input, pixels, epilogue, lookup, strides, out);
            }
            crate::kernels::qdq::fixed_byte_table(&lookup.table, &lookup.quantize);
            let bytes = LookedUp { lanes: QuantizeLanes::new(&lookup.quantize), lookup };
            multiply_wide(weights, input, pixels, epilogue, strides, Sink::Bytes(out, &bytes))
        }

        fn winograd_input(
            image: &[i16],
            width: usize,
            channels: usize,
            tiles: [usize; 2],
            zero_point: i16,
            v: &mut [MaybeUninit<i16>],
            stride: usize,
        ) {
            winograd::simd::input(image, width, channels, tiles, zero_point, v, stride)
        }

        fn winograd_output(
            products: &[i32],
            stride: usize,
            channels: usize,
            tiles: [usize; 2],
            output: [usize; 2],
            epilogue: &Epilogue,
            strides: Strides,
            out: &mut [f32],
        ) {
            winograd::simd::output(products, stride, channels, tiles, output, epilogue, strides, out)
        }
    }

    fn widen(xs: &[u8], unsigned: bool, ys: &mut [MaybeUninit<i16>]) {
        let len = xs.len().min(ys.len());
        let n = len / 8 * 8;
        let (x, y) = (xs.as_ptr(), ys.as_mut_ptr() as *mut i16);
        let mut i = 0;
        while i < n {
            // SAFETY: i + 8 <= n <= len: the 8 bytes read at x + i are xs[i..i + 8], the 8 i16
            // written at y + i are ys[i..i + 8]; no alignment is required.
            unsafe { v128_store(y.add(i) as *mut v128, load_widened(x.add(i), unsigned)) };
            i += 8;
        }
        widen_scalar(&xs[n..len], unsigned, &mut ys[n..len]);
    }

    /// Eight values from `at`, widened to i16 lanes.
    ///
    /// # Safety
    /// `at..at + 8` must be readable.
    #[inline(always)]
    unsafe fn load_widened(at: *const u8, unsigned: bool) -> v128 {
        // SAFETY: the caller's contract.
        unsafe {
            if unsigned {
                u16x8_load_extend_u8x8(at)
            } else {
                i16x8_load_extend_i8x8(at as *const i8)
            }
        }
    }

    /// The 16-bit lanes of `a` and `b` interleaved, `a` first: from their lanes 0–3, then 4–7.
    #[inline(always)]
    fn zip16(a: v128, b: v128) -> (v128, v128) {
        (i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(a, b), i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(a, b))
    }

    /// The 32-bit lanes of `a` and `b` interleaved, `a` first: from their lanes 0–1, then 2–3.
    #[inline(always)]
    fn zip32(a: v128, b: v128) -> (v128, v128) {
        (i32x4_shuffle::<0, 4, 1, 5>(a, b), i32x4_shuffle::<2, 6, 3, 7>(a, b))
    }

    /// Blocks of eight channels by sixteen pixels transposed as bytes, then eight by eight
    /// widened as they load for the pixels left, then the edges (channel and pixel counts beyond
    /// those blocks) one at a time.
    ///
    /// A block of sixteen pixels: each channel's sixteen bytes in one load, the 8 × 16 bytes
    /// transposed in three rounds of shuffles (8-, 16-, then 32-bit units: 24 shuffles), which
    /// leaves two pixels' eight channels a vector, each half widened to i16 and stored. The
    /// 8 × 8 blocks of widened values took as many shuffles for half the values (4.5
    /// instructions a value against about 2.3: `benchmarks/NOTES.md`, "The packing's
    /// transposition on bytes").
    fn interleave(xs: &[u8], unsigned: bool, ys: &mut [MaybeUninit<i16>], channels: usize, pixels: usize) {
        let (whole_c, wide_p) = (channels / 8 * 8, pixels / 16 * 16);
        let whole_p = wide_p + (pixels - wide_p) / 8 * 8;
        assert!(xs.len() >= channels * pixels && ys.len() >= channels * pixels);
        let (x, y) = (xs.as_ptr(), ys.as_mut_ptr() as *mut i16);
        let mut p = 0;
        while p < wide_p {
            let mut c = 0;
            while c < whole_c {
                // SAFETY: c + 8 <= channels and p + 16 <= pixels: each read x[(c + i)·P + p..][..16]
                // and each write y[(p + j)·C + c..][..8] lies within the C·P values asserted
                // above. No access needs alignment.
                unsafe { transpose_16(x.add(c * pixels + p), pixels, y.add(p * channels + c), channels, unsigned) };
                c += 8;
            }
            p += 16;
        }
        while p < whole_p {
            let mut c = 0;
            while c < whole_c {
                // SAFETY: c + 8 <= channels and p + 8 <= pixels: each read x[(c + i)·P + p..][..8]
                // and each write y[(p + j)·C + c..][..8] lies within the C·P values asserted
                // above. No access needs alignment.
                unsafe {
                    let from = x.add(c * pixels + p);
                    let r0 = load_widened(from, unsigned);
                    let r1 = load_widened(from.add(pixels), unsigned);
                    let r2 = load_widened(from.add(2 * pixels), unsigned);
                    let r3 = load_widened(from.add(3 * pixels), unsigned);
                    let r4 = load_widened(from.add(4 * pixels), unsigned);
                    let r5 = load_widened(from.add(5 * pixels), unsigned);
                    let r6 = load_widened(from.add(6 * pixels), unsigned);
                    let r7 = load_widened(from.add(7 * pixels), unsigned);
                    // Channel pairs (2i, 2i + 1) of pixels 0–3 (…0) and 4–7 (…1).
                    let ((a0, a1), (b0, b1)) = (zip16(r0, r1), zip16(r2, r3));
                    let ((c0, c1), (d0, d1)) = (zip16(r4, r5), zip16(r6, r7));
                    // Channels 0–3 (e) and 4–7 (f) of pixel pairs (0, 1), (2, 3), (4, 5), (6, 7).
                    let ((e0, e1), (e2, e3)) = (zip32(a0, b0), zip32(a1, b1));
                    let ((f0, f1), (f2, f3)) = (zip32(c0, d0), zip32(c1, d1));
                    let to = y.add(p * channels + c);
                    v128_store(to as *mut v128, i64x2_shuffle::<0, 2>(e0, f0));
                    v128_store(to.add(channels) as *mut v128, i64x2_shuffle::<1, 3>(e0, f0));
                    v128_store(to.add(2 * channels) as *mut v128, i64x2_shuffle::<0, 2>(e1, f1));
                    v128_store(to.add(3 * channels) as *mut v128, i64x2_shuffle::<1, 3>(e1, f1));
                    v128_store(to.add(4 * channels) as *mut v128, i64x2_shuffle::<0, 2>(e2, f2));
                    v128_store(to.add(5 * channels) as *mut v128, i64x2_shuffle::<1, 3>(e2, f2));
                    v128_store(to.add(6 * channels) as *mut v128, i64x2_shuffle::<0, 2>(e3, f3));
                    v128_store(to.add(7 * channels) as *mut v128, i64x2_shuffle::<1, 3>(e3, f3));
                }
                c += 8;
            }
            p += 8;
        }
        let count = [channels, pixels];
        interleave_scalar(xs, unsigned, ys, count, [whole_c, channels], [0, whole_p]);
        interleave_scalar(xs, unsigned, ys, count, [0, channels], [whole_p, pixels]);
    }

    /// Eight channels' rows of sixteen bytes from `from` (rows `pixels` apart) transposed and
    /// widened into sixteen pixels' rows of eight i16 at `to` (rows `channels` apart).
    ///
    /// # Safety
    /// Sixteen bytes must be readable at `from + i · pixels` for i < 8, and eight i16 writable at
    /// `to + j · channels` for j < 16.
    #[inline(always)]
    unsafe fn transpose_16(from: *const u8, pixels: usize, to: *mut i16, channels: usize, unsigned: bool) {
        // SAFETY: the caller's.
        unsafe {
            let row = |i: usize| v128_load(from.add(i * pixels) as *const v128);
            let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
            let (r4, r5, r6, r7) = (row(4), row(5), row(6), row(7));
            // Bytes: channels (0, 1) of pixels 0–7 (a0) and 8–15 (a1); likewise (2, 3), …
            let (a0, a1) = zip8(r0, r1);
            let (b0, b1) = zip8(r2, r3);
            let (c0, c1) = zip8(r4, r5);
            let (d0, d1) = zip8(r6, r7);
            // Channels 0–3 (e) and 4–7 (f) of pixels 0–3, 4–7, 8–11, 12–15.
            let ((e0, e1), (e2, e3)) = (zip16(a0, b0), zip16(a1, b1));
            let ((f0, f1), (f2, f3)) = (zip16(c0, d0), zip16(c1, d1));
            // Channels 0–7 of pixels (0, 1), (2, 3), …, (14, 15).
            let ((g0, g1), (g2, g3)) = (zip32(e0, f0), zip32(e1, f1));
            let ((g4, g5), (g6, g7)) = (zip32(e2, f2), zip32(e3, f3));
            macro_rules! store {
                ($($g:ident $j:literal),*) => {$(
                    let (low, high) = if unsigned {
                        (u16x8_extend_low_u8x16($g), u16x8_extend_high_u8x16($g))
                    } else {
                        (i16x8_extend_low_i8x16($g), i16x8_extend_high_i8x16($g))
                    };
                    v128_store(to.add($j * channels) as *mut v128, low);
                    v128_store(to.add(($j + 1) * channels) as *mut v128, high);
                )*};
            }
            store!(g0 0, g1 2, g2 4, g3 6, g4 8, g5 10, g6 12, g7 14);
        }
    }

    /// The bytes of `a` and `b` interleaved, `a` first: from their bytes 0–7, then 8–15.
    #[inline(always)]
    fn zip8(a: v128, b: v128) -> (v128, v128) {
        (
            i8x16_shuffle::<0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23>(a, b),
            i8x16_shuffle::<8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31>(a, b),
        )
    }

    /// Steps of one and two sixteen values a vector (two loads and a shuffle keeping the even
    /// bytes for two), then eight, then one at a time; other steps one at a time.
    fn gather(xs: &[u8], from: usize, step: usize, ys: &mut [u8]) {
        let (count, len) = (ys.len(), xs.len());
        let (x, y) = (xs.as_ptr(), ys.as_mut_ptr());
        let mut i = 0;
        if step == 1 {
            while i + 16 <= count && from + i + 16 <= len {
                // SAFETY: reads x[from + i..][..16] within `xs` and writes ys[i..i + 16] (both
                // checked just above); no alignment is required.
                unsafe { v128_store(y.add(i) as *mut v128, v128_load(x.add(from + i) as *const v128)) };
                i += 16;
            }
        } else if step == 2 {
            // Whole vectors of sixteen values (32 bytes read each) as far as both the values and
            // the bytes go, by pointers stepping a vector at a time: a loop testing both bounds
            // by index cost half as much again.
            let vectors = (count / 16).min(len.saturating_sub(from) / 32);
            // SAFETY: vector k < vectors reads x[from + 32k..][..32], within `xs` (from + 32 ·
            // vectors <= len), and writes ys[16k..][..16] (16 · vectors <= count). No alignment
            // is required.
            unsafe {
                let (mut at, mut to, end) = (x.add(from), y, y.add(16 * vectors));
                while to < end {
                    even_bytes(at, to);
                    (at, to) = (at.add(32), to.add(16));
                }
            }
            i = 16 * vectors;
            // The last sixteen values as one vector overlapping the ones before (writing some of
            // their values again), where its 32 bytes are in `xs` (every row but an image's
            // last): not up to fifteen values left to the scalar tail, some thirty instructions
            // each (a first layer's rows of 111 values).
            if i < count && count >= 16 && from + 2 * count <= len {
                // SAFETY: reads x[from + 2 · (count − 16)..][..32], within `xs` (from + 2 · count
                // <= len), and writes ys[count − 16..count]. No alignment is required.
                unsafe { even_bytes(x.add(from + 2 * (count - 16)), y.add(count - 16)) };
                i = count;
            }
            while i + 8 <= count && from + 2 * i + 16 <= len {
                // SAFETY: reads x[from + 2i..][..16] within `xs` and writes ys[i..i + 8] (both
                // checked just above); no alignment is required.
                unsafe {
                    let a = v128_load(x.add(from + 2 * i) as *const v128);
                    let even = i8x16_shuffle::<0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14>(a, a);
                    v128_store64_lane::<0>(even, y.add(i) as *mut u64);
                }
                i += 8;
            }
        }
        gather_scalar(xs, from, step, ys, i)
    }

    /// The even bytes of the 32 at `from`, sixteen of them, written at `to`.
    ///
    /// # Safety
    /// 32 bytes must be readable at `from` and 16 writable at `to`; no alignment is required.
    #[inline(always)]
    unsafe fn even_bytes(from: *const u8, to: *mut u8) {
        // SAFETY: the caller's.
        unsafe {
            let (a, b) = (v128_load(from as *const v128), v128_load(from.add(16) as *const v128));
            let even = i8x16_shuffle::<0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30>(a, b);
            v128_store(to as *mut v128, even);
        }
    }

    /// Thirty-two values a step (four vectors at constant offsets from one address: one
    /// vector a step cost some thirty instructions, mostly the loop's own arithmetic), then the
    /// remaining one to three whole vectors without a loop, then one value at a time. Each
    /// vector passes through an `or` with a zero LLVM cannot see: a plain copy loop becomes a
    /// `memcpy`, that is a `memory.copy`, which the IC charges a hundred instructions before
    /// its bytes (a run is 16–1536 bytes).
    fn copy_pixels(src: &[i16], dst: &mut [MaybeUninit<i16>], runs: Runs) {
        let Runs { from, step, stride, count, len: channels } = runs;
        if count == 0 {
            return;
        }
        assert!(from + (count - 1) * step + channels <= src.len() && (count - 1) * stride + channels <= dst.len());
        let (wide, whole) = (channels / 32 * 32, channels / 8 * 8);
        let (opaque_zero, opaque_zero16) = black_box((i16x8_splat(0), 0i16));
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr() as *mut i16);
        if wide == 0 && whole == channels {
            // SAFETY: the assert above bounds every run; each is one to three whole vectors.
            unsafe { copy_short_runs(s.add(from), d, step, stride, count, whole / 8, opaque_zero) };
            return;
        }
        let mut i = 0;
        while i < count {
            // SAFETY: for i < count, src[from + i · step..][..channels] and
            // dst[i · stride..][..channels] are in bounds (asserted above); every access below
            // lies within the first `channels` values of both (j + 32 <= wide, j + 8 <= whole,
            // j < channels); no alignment is required, and MaybeUninit<i16> is an i16's layout.
            unsafe {
                let (x, y) = (s.add(from + i * step), d.add(i * stride));
                let mut j = 0;
                while j < wide {
                    let (x, y) = (x.add(j) as *const v128, y.add(j) as *mut v128);
                    v128_store(y, v128_or(v128_load(x), opaque_zero));
                    v128_store(y.add(1), v128_or(v128_load(x.add(1)), opaque_zero));
                    v128_store(y.add(2), v128_or(v128_load(x.add(2)), opaque_zero));
                    v128_store(y.add(3), v128_or(v128_load(x.add(3)), opaque_zero));
                    j += 32;
                }
                let (x_rest, y_rest) = (x.add(j) as *const v128, y.add(j) as *mut v128);
                // A macro, not a closure: at the canister's opt-level a closure stays a call.
                macro_rules! copy {
                    ($($k:literal),*) => {{
                        $(v128_store(y_rest.add($k), v128_or(v128_load(x_rest.add($k)), opaque_zero));)*
                    }};
                }
                match (whole - wide) / 8 {
                    3 => copy!(0, 1, 2),
                    2 => copy!(0, 1),
                    1 => copy!(0),
                    _ => {}
                }
                j = whole;
                while j < channels {
                    *y.add(j) = *x.add(j) | opaque_zero16;
                    j += 1;
                }
            }
            i += 1;
        }
    }

    /// [`copy_pixels`] of runs of one to three whole vectors (a first layer's kernel rows, 9 or
    /// 21 values rounded up): the vector count matched once, not once a run, and the pointers
    /// stepped instead of multiplied (some 85 instructions a run before, 7.4 M for opennsfw's
    /// first layer).
    ///
    /// # Safety
    /// For i < count, `vectors` vectors are readable at x + i · step and writable at
    /// y + i · stride (no alignment needed).
    #[inline(always)]
    unsafe fn copy_short_runs(
        x: *const i16,
        y: *mut i16,
        step: usize,
        stride: usize,
        count: usize,
        vectors: usize,
        opaque_zero: v128,
    ) {
        let (mut x, mut y) = (x, y);
        macro_rules! runs {
            ($($k:literal),*) => {{
                let mut i = 0;
                while i < count {
                    let (from, to) = (x as *const v128, y as *mut v128);
                    $(v128_store(to.add($k), v128_or(v128_load(from.add($k)), opaque_zero));)*
                    x = x.add(step);
                    y = y.add(stride);
                    i += 1;
                }
            }};
        }
        match vectors {
            1 => runs!(0),
            2 => runs!(0, 1),
            3 => runs!(0, 1, 2),
            _ => {}
        }
    }

    /// The epilogue's parameters for one block of four channels, as lanes.
    #[derive(Clone, Copy)]
    struct Lanes {
        /// Where each channel's sums start: `−zp · Σ w` (wrapping), the zero point's share, which
        /// the epilogue then need not subtract (an `i32x4.sub` per four outputs); zeros for raw
        /// sums.
        start: v128,
        scale: v128,
        bias: v128,
        /// Channels of the block that exist (the last block may have fewer than four).
        count: usize,
        /// [`Epilogue::raw`]: the sums written as they are.
        raw: bool,
        /// Whether [`Lanes::finish`] is one converted store: four channels, adjacent in the
        /// output, not raw (one test where the output's layout and the epilogue's kind would
        /// each cost one per store).
        contiguous: bool,
    }

    impl Lanes {
        fn new(weights: &PackedWeights, epilogue: &Epilogue, first: usize, channel_stride: usize) -> Lanes {
            let count = (weights.channels - first).min(ROWS);
            let mut values = [[0f32; 4]; 2];
            let mut starts = [0i32; 4];
            for r in 0..count {
                values[0][r] = epilogue.scales[first + r];
                values[1][r] = epilogue.bias[first + r];
                if !epilogue.raw {
                    starts[r] = epilogue.zero_point.wrapping_mul(weights.sums[first + r]).wrapping_neg();
                }
            }
            let [s, b] = values;
            Lanes {
                start: i32x4(starts[0], starts[1], starts[2], starts[3]),
                scale: f32x4(s[0], s[1], s[2], s[3]),
                bias: f32x4(b[0], b[1], b[2], b[3]),
                count,
                raw: epilogue.raw,
                contiguous: count == 4 && channel_stride == 1 && !epilogue.raw,
            }
        }

        /// The four channel groups of the sixteen-channel block from channel `first`.
        #[inline(always)]
        fn block(weights: &PackedWeights, epilogue: &Epilogue, first: usize, channel_stride: usize) -> [Lanes; 4] {
            [
                Lanes::new(weights, epilogue, first, channel_stride),
                Lanes::new(weights, epilogue, first + 4, channel_stride),
                Lanes::new(weights, epilogue, first + 8, channel_stride),
                Lanes::new(weights, epilogue, first + 12, channel_stride),
            ]
        }

        /// Four lanes of [`Epilogue::scalar`], written at `out[at + r · stride]`: one store when
        /// the four channels are adjacent.
        #[inline(always)]
        fn finish(&self, acc: v128, out: &mut [f32], at: usize, stride: usize) {
            if self.contiguous {
                assert!(at + 4 <= out.len());
                // SAFETY: out[at..at + 4] is in bounds (asserted); no alignment is required.
                unsafe { v128_store(out.as_mut_ptr().add(at) as *mut v128, self.converted(acc)) };
                return;
            }
            let lanes = self.outputs(acc);
            if stride == 1 && self.count == 4 {
                assert!(at + 4 <= out.len());
                // SAFETY: out[at..at + 4] is in bounds (asserted); no alignment is required.
                unsafe { v128_store(out.as_mut_ptr().add(at) as *mut v128, lanes) };
            } else {
                out[at] = f32x4_extract_lane::<0>(lanes);
                if self.count > 1 {
                    out[at + stride] = f32x4_extract_lane::<1>(lanes);
                }
                if self.count > 2 {
                    out[at + 2 * stride] = f32x4_extract_lane::<2>(lanes);
                }
                if self.count > 3 {
                    out[at + 3 * stride] = f32x4_extract_lane::<3>(lanes);
                }
            }
        }

        /// [`Epilogue::scalar`] of the block's four channels (lanes).
        #[inline(always)]
        fn outputs(&self, acc: v128) -> v128 {
            if self.raw {
                acc
            } else {
                self.converted(acc)
            }
        }

        /// [`Epilogue::scalar`] of the block's four channels (lanes), not raw, from sums that
        /// started at [`Lanes::start`].
        #[inline(always)]
        fn converted(&self, acc: v128) -> v128 {
            f32x4_add(f32x4_mul(f32x4_convert_i32x4(acc), self.scale), self.bias)
        }

        /// [`Lanes::finish`] of four consecutive pixels' accumulators into a planar output,
        /// transposed so that each channel's four outputs are one store at
        /// `out[at + r · stride..][..4]`: eight shuffles and four stores where lane-by-lane
        /// stores cost about twelve instructions an output. The block must have four channels.
        #[inline(always)]
        fn finish_pixels(&self, acc: [v128; 4], out: &mut [f32], at: usize, stride: usize) {
            // One test of `raw` for the four accumulators (each costs a load and a branch).
            let [a0, a1, a2, a3] = acc;
            let [p0, p1, p2, p3] = if self.raw {
                acc
            } else {
                [self.converted(a0), self.converted(a1), self.converted(a2), self.converted(a3)]
            };
            let ((t0, t1), (t2, t3)) = (zip32(p0, p1), zip32(p2, p3));
            assert!(self.count == 4 && at + 3 * stride + 4 <= out.len());
            let to = out.as_mut_ptr();
            // SAFETY: out[at + r · stride..][..4] for r < 4 is in bounds (asserted); no
            // alignment is required.
            unsafe {
                v128_store(to.add(at) as *mut v128, i64x2_shuffle::<0, 2>(t0, t2));
                v128_store(to.add(at + stride) as *mut v128, i64x2_shuffle::<1, 3>(t0, t2));
                v128_store(to.add(at + 2 * stride) as *mut v128, i64x2_shuffle::<0, 2>(t1, t3));
                v128_store(to.add(at + 3 * stride) as *mut v128, i64x2_shuffle::<1, 3>(t1, t3));
            }
        }
    }

    /// A kernel's K loop: turns of four steps (`$step!(o)` computes the step of [`STEP`] K pairs
    /// from pair `o` of the pointers), then the one to three steps left without a loop. Each
    /// turn passes the pointers through `black_box`, opaque to LLVM's loop strength reduction
    /// (which would otherwise make every load's address its own induction variable and lose the
    /// loads' constant offsets, see the module's documentation), and advances them by four steps
    /// (`$w` by `$vectors` weight vectors a step): that store, reload and increment cost as much
    /// as a sixth of a wide step's dot products when paid once a step (`benchmarks/NOTES.md`).
    macro_rules! four_steps_a_turn {
        ($step:ident, $pairs:expr, $vectors:expr, $w:ident, $x0:ident, $x1:ident, $x2:ident, $x3:ident) => {{
            let quads = $x0.add($pairs / (4 * STEP) * (4 * STEP));
            while $x0 < quads {
                ($w, $x0, $x1, $x2, $x3) = black_box(($w, $x0, $x1, $x2, $x3));
                $step!(0);
                $step!(STEP);
                $step!(2 * STEP);
                $step!(3 * STEP);
                $w = $w.add(4 * STEP * $vectors);
                $x0 = $x0.add(4 * STEP);
                $x1 = $x1.add(4 * STEP);
                $x2 = $x2.add(4 * STEP);
                $x3 = $x3.add(4 * STEP);
            }
            match $pairs % (4 * STEP) / STEP {
                3 => {
                    $step!(0);
                    $step!(STEP);
                    $step!(2 * STEP);
                }
                2 => {
                    $step!(0);
                    $step!(STEP);
                }
                1 => $step!(0),
                _ => {}
            }
        }};
    }

    #[inline(always)]
    fn multiply(
        weights: &PackedWeights,
        input: &[i16],
        pixels: usize,
        epilogue: &Epilogue,
        strides: Strides,
        out: &mut [f32],
    ) {
        if weights.rows == WIDE_ROWS {
            multiply_wide(weights, input, pixels, epilogue, strides, Sink::Floats(out))
        } else if pixels == 1 {
            multiply_pixel(weights, input, epilogue, strides, out)
        } else {
            multiply_narrow(weights, input, pixels, epilogue, strides, out)
        }
    }

    /// One pixel (a classifier's head, a squeeze-and-excitation block's products), per block of
    /// four channels: one accumulator, and each step of [`STEP`] K pairs four weight vectors and
    /// the pixel's four splats. The group kernel would compute its three other pixels too, rows
    /// of padding (`benchmarks/NOTES.md`, "One pixel, one accumulator").
    fn multiply_pixel(weights: &PackedWeights, input: &[i16], epilogue: &Epilogue, strides: Strides, out: &mut [f32]) {
        let pairs = weights.pairs;
        assert_eq!(weights.rows, ROWS);
        let blocks = weights.channels.div_ceil(ROWS);
        assert!(
            pairs.is_multiple_of(STEP) && weights.panels.len() >= blocks * pairs * ROWS && input.len() >= pairs * 2
        );
        assert!(epilogue.scales.len() >= weights.channels && epilogue.bias.len() >= weights.channels);
        let mut block = 0;
        while block < blocks {
            let first = block * ROWS;
            let lanes = Lanes::new(weights, epilogue, first, strides.channel);
            let mut acc = lanes.start;
            // SAFETY: the asserts above bound every read: weight block `block` (< blocks) spans
            // `pairs` vectors of `panels` from block · pairs · ROWS u32, and the pixel's row
            // `pairs` u32 of `input`; the steps end at the row's end (`pairs` is a multiple of
            // STEP). No load needs alignment.
            unsafe {
                let mut w = weights.panels.as_ptr().add(block * pairs * ROWS) as *const v128;
                let mut x = input.as_ptr() as *const u32;
                let (end, quads) = (x.add(pairs), x.add(pairs / (4 * STEP) * (4 * STEP)));
                macro_rules! step {
                    ($o:expr) => {
                        acc = i32x4_add(
                            acc,
                            i32x4_add(
                                i32x4_add(
                                    i32x4_dot_i16x8(v128_load(w.add($o)), v128_load32_splat(x.add($o))),
                                    i32x4_dot_i16x8(v128_load(w.add($o + 1)), v128_load32_splat(x.add($o + 1))),
                                ),
                                i32x4_add(
                                    i32x4_dot_i16x8(v128_load(w.add($o + 2)), v128_load32_splat(x.add($o + 2))),
                                    i32x4_dot_i16x8(v128_load(w.add($o + 3)), v128_load32_splat(x.add($o + 3))),
                                ),
                            ),
                        )
                    };
                }
                // Turns of four steps, then single steps, the pointers passing through
                // `black_box` once a turn (see `four_steps_a_turn`).
                while x < quads {
                    (w, x) = black_box((w, x));
                    step!(0);
                    step!(STEP);
                    step!(2 * STEP);
                    step!(3 * STEP);
                    (w, x) = (w.add(4 * STEP), x.add(4 * STEP));
                }
                while x < end {
                    (w, x) = black_box((w, x));
                    step!(0);
                    (w, x) = (w.add(STEP), x.add(STEP));
                }
            }
            lanes.finish(acc, out, first * strides.channel, strides.channel);
            block += 1;
        }
    }

    /// Per block of four channels and group of four pixels, four accumulators; each step covers
    /// [`STEP`] K pairs: four weight vectors, sixteen pixel splats, sixteen dot products.
    fn multiply_narrow(
        weights: &PackedWeights,
        input: &[i16],
        pixels: usize,
        epilogue: &Epilogue,
        strides: Strides,
        out: &mut [f32],
    ) {
        let pairs = weights.pairs;
        assert_eq!(weights.rows, ROWS);
        let blocks = weights.channels.div_ceil(ROWS);
        let groups = pixels.div_ceil(PIXELS);
        assert!(
            pairs.is_multiple_of(STEP)
                && weights.panels.len() >= blocks * pairs * ROWS
                && input.len() >= groups * PIXELS * pairs * 2
        );
        assert!(epilogue.scales.len() >= weights.channels && epilogue.bias.len() >= weights.channels);
        let mut block = 0;
        while block < blocks {
            let first = block * ROWS;
            let lanes = Lanes::new(weights, epilogue, first, strides.channel);
            let mut group = 0;
            while group < groups {
                let z = lanes.start;
                let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
                // SAFETY: the asserts above bound every read: weight block `block` (< blocks)
                // spans `pairs` vectors of `panels` from block · pairs · ROWS u32, and the four
                // pixel rows of `group` (< groups) span `pairs` u32 each of `input` from
                // group · PIXELS · pairs · 2 i16; the turns and the steps after them end where row
                // 0 reaches row 1's start (`pairs` is a multiple of STEP). No load needs alignment.
                unsafe {
                    let mut w = weights.panels.as_ptr().add(block * pairs * ROWS) as *const v128;
                    let mut x0 = input.as_ptr().add(group * PIXELS * pairs * 2) as *const u32;
                    let (mut x1, mut x2, mut x3) = (x0.add(pairs), x0.add(2 * pairs), x0.add(3 * pairs));
                    // One step of [`STEP`] pairs from pair `$o` of the pointers: four weight
                    // vectors, each pixel's four splats.
                    macro_rules! step {
                        ($o:expr) => {{
                            let v = w.add($o);
                            let (v0, v1, v2, v3) =
                                (v128_load(v), v128_load(v.add(1)), v128_load(v.add(2)), v128_load(v.add(3)));
                            macro_rules! pixel {
                                ($acc:ident, $x:ident) => {
                                    $acc = i32x4_add(
                                        $acc,
                                        i32x4_add(
                                            i32x4_add(
                                                i32x4_dot_i16x8(v0, v128_load32_splat($x.add($o))),
                                                i32x4_dot_i16x8(v1, v128_load32_splat($x.add($o + 1))),
                                            ),
                                            i32x4_add(
                                                i32x4_dot_i16x8(v2, v128_load32_splat($x.add($o + 2))),
                                                i32x4_dot_i16x8(v3, v128_load32_splat($x.add($o + 3))),
                                            ),
                                        ),
                                    );
                                };
                            }
                            pixel!(a0, x0);
                            pixel!(a1, x1);
                            pixel!(a2, x2);
                            pixel!(a3, x3);
                        }};
                    }
                    four_steps_a_turn!(step, pairs, 1, w, x0, x1, x2, x3);
                }
                let p = group * PIXELS;
                let at = first * strides.channel + p * strides.pixel;
                if strides.pixel == 1 && lanes.count == 4 && p + PIXELS <= pixels {
                    lanes.finish_pixels([a0, a1, a2, a3], out, at, strides.channel);
                    group += 1;
                    continue;
                }
                lanes.finish(a0, out, at, strides.channel);
                if p + 1 < pixels {
                    lanes.finish(a1, out, at + strides.pixel, strides.channel);
                }
                if p + 2 < pixels {
                    lanes.finish(a2, out, at + 2 * strides.pixel, strides.channel);
                }
                if p + 3 < pixels {
                    lanes.finish(a3, out, at + 3 * strides.pixel, strides.channel);
                }
                group += 1;
            }
            block += 1;
        }
    }
    /// The wide kernel's outputs of one group's four pixels (`acc[j][g]`: pixel j, channels
    /// 4g..4g + 4 of the block) where each group of four channels is one converted store
    /// ([`Lanes::contiguous`]: interleaved outputs, a transformer's linear layers): pixel j's
    /// sixteen at `out[at + j · pixel_stride..][..16]`, one bounds check for the group. A
    /// function of its own, as [`finish_each`] is: spelled out in the kernel's epilogues, it
    /// cost the planar layers more than it saved.
    #[inline(never)]
    fn finish_interleaved(lanes: &[Lanes; 4], acc: [[v128; 4]; 4], out: &mut [f32], at: usize, pixel_stride: usize) {
        assert!(at + 3 * pixel_stride + 16 <= out.len());
        let [l0, l1, l2, l3] = lanes;
        // SAFETY: for j < 4 and g < 4, out[at + j · pixel_stride + 4g..][..4] is within
        // out[..at + 3 · pixel_stride + 16] (asserted); no alignment is required.
        unsafe {
            let to = out.as_mut_ptr().add(at);
            macro_rules! pixel {
                ($j:expr) => {{
                    let at = to.add($j * pixel_stride);
                    let [g0, g1, g2, g3] = acc[$j];
                    v128_store(at as *mut v128, l0.converted(g0));
                    v128_store(at.add(4) as *mut v128, l1.converted(g1));
                    v128_store(at.add(8) as *mut v128, l2.converted(g2));
                    v128_store(at.add(12) as *mut v128, l3.converted(g3));
                }};
            }
            pixel!(0);
            pixel!(1);
            pixel!(2);
            pixel!(3);
        }
    }

    /// The wide kernel's outputs of one group's first `count` pixels (`acc[j][g]`: pixel j,
    /// channels 4g..4g + 4 of the block) one pixel at a time ([`Lanes::finish`]): interleaved
    /// outputs, and a planar group's last pixels. A function of its own, which the kernel's two
    /// epilogues share.
    #[inline(never)]
    fn finish_each(
        lanes: &[Lanes; 4],
        acc: [[v128; 4]; 4],
        out: &mut [f32],
        at: usize,
        strides: Strides,
        count: usize,
    ) {
        let quarter = 4 * strides.channel;
        let mut j = 0;
        while j < count {
            let at = at + j * strides.pixel;
            let [g0, g1, g2, g3] = acc[j];
            lanes[0].finish(g0, out, at, strides.channel);
            lanes[1].finish(g1, out, at + quarter, strides.channel);
            lanes[2].finish(g2, out, at + 2 * quarter, strides.channel);
            lanes[3].finish(g3, out, at + 3 * quarter, strides.channel);
            j += 1;
        }
    }

    /// `acc` plus the four dot products of `s[u]` and `w[u]`, summed in pairs first (the
    /// one-block tile's `pixel!` order; integer sums, so any order gives the same lanes).
    #[inline(always)]
    fn dot_sum(acc: v128, s: [v128; 4], w: [v128; 4]) -> v128 {
        let [s0, s1, s2, s3] = s;
        let [w0, w1, w2, w3] = w;
        i32x4_add(
            acc,
            i32x4_add(
                i32x4_add(i32x4_dot_i16x8(w0, s0), i32x4_dot_i16x8(w1, s1)),
                i32x4_add(i32x4_dot_i16x8(w2, s2), i32x4_dot_i16x8(w3, s3)),
            ),
        )
    }

    /// Per tile of two groups of four pixels: for two blocks of sixteen channels while two are
    /// left, sixty-four accumulators, else for one block thirty-two. Each step covers [`STEP`] K
    /// pairs: each weight vector feeds eight pixels' dot products, and each pixel splat the
    /// tile's four or eight channel groups (under the IC's metering a vector's address and load
    /// cost half as much as the dot product it feeds, so the more products share it the less a
    /// MAC costs: `benchmarks/NOTES.md`, "Eight pixels a step", "Thirty-two channels a tile").
    /// The last group of an odd count goes through a tile of its own, one block by one group:
    /// a tile of two groups would compute four more pixels' sums for nothing, an eighth of a
    /// 7 × 7 image's products (`benchmarks/NOTES.md`, "The wide kernel's last group").
    fn multiply_wide(
        weights: &PackedWeights,
        input: &[i16],
        pixels: usize,
        epilogue: &Epilogue,
        strides: Strides,
        mut sink: Sink<'_>,
    ) {
        let pairs = weights.pairs;
        let blocks = weights.channels / WIDE_ROWS;
        let groups = pixels.div_ceil(PIXELS);
        assert!(weights.rows == WIDE_ROWS && weights.channels.is_multiple_of(WIDE_ROWS));
        assert!(
            pairs.is_multiple_of(STEP)
                && weights.panels.len() >= blocks * pairs * WIDE_ROWS
                && input.len() >= groups * PIXELS * pairs * 2
        );
        assert!(epilogue.scales.len() >= weights.channels && epilogue.bias.len() >= weights.channels);
        // A pixel row's bytes: the four rows of a group, and the next group's, are this far apart.
        let row = pairs * 4;
        // Each group's epilogue, its code spelled out for each (moving the second's
        // accumulators into the first's places cost 64 instructions a pair of groups).
        macro_rules! finish {
            ($lanes:ident, $first:expr, $g:expr, $a00:ident, $a01:ident, $a02:ident, $a03:ident,
             $a10:ident, $a11:ident, $a12:ident, $a13:ident, $a20:ident, $a21:ident, $a22:ident,
             $a23:ident, $a30:ident, $a31:ident, $a32:ident, $a33:ident) => {
                'finish: {
                    let p = $g * PIXELS;
                    let at = $first * strides.channel + p * strides.pixel;
                    let out: &mut [f32] = match &mut sink {
                        Sink::Floats(out) => out,
                        Sink::Bytes(out, looked_up) => {
                            // Planar outputs only (`multiply_looked_up`): pixel j of the
                            // group is at + j.
                            let acc = [
                                [$a00, $a01, $a02, $a03],
                                [$a10, $a11, $a12, $a13],
                                [$a20, $a21, $a22, $a23],
                                [$a30, $a31, $a32, $a33],
                            ];
                            looked_up.group(acc, &$lanes, out, at, strides.channel, PIXELS.min(pixels - p));
                            break 'finish;
                        }
                    };
                    let quarter = 4 * strides.channel;
                    if strides.pixel == 1 && p + PIXELS <= pixels {
                        $lanes[0].finish_pixels([$a00, $a10, $a20, $a30], out, at, strides.channel);
                        $lanes[1].finish_pixels([$a01, $a11, $a21, $a31], out, at + quarter, strides.channel);
                        $lanes[2].finish_pixels([$a02, $a12, $a22, $a32], out, at + 2 * quarter, strides.channel);
                        $lanes[3].finish_pixels([$a03, $a13, $a23, $a33], out, at + 3 * quarter, strides.channel);
                        break 'finish;
                    }
                    let accumulators = [
                        [$a00, $a01, $a02, $a03],
                        [$a10, $a11, $a12, $a13],
                        [$a20, $a21, $a22, $a23],
                        [$a30, $a31, $a32, $a33],
                    ];
                    if p + PIXELS <= pixels && $lanes.iter().all(|l| l.contiguous) {
                        finish_interleaved(&$lanes, accumulators, out, at, strides.pixel);
                        break 'finish;
                    }
                    finish_each(&$lanes, accumulators, out, at, strides, PIXELS.min(pixels - p));
                }
            };
        }
        // A wide tile's K loop: turns of four steps, then single steps; `$opaque!()` passes the
        // pointers through `black_box` once a turn of either (see `four_steps_a_turn`) and
        // `$rows!()` places the other pixel rows at constant distances from `$x0`, so that their
        // loads keep constant offsets.
        macro_rules! k_loop {
            ($opaque:ident, $rows:ident, $step:ident, $w:ident, $x0:ident, $quads:ident, $end:ident) => {
                while $x0 < $quads {
                    $opaque!();
                    $rows!();
                    $step!(0);
                    $step!(STEP);
                    $step!(2 * STEP);
                    $step!(3 * STEP);
                    $w = $w.add(4 * STEP * 4);
                    $x0 = $x0.add(4 * STEP);
                }
                while $x0 < $end {
                    $opaque!();
                    $rows!();
                    $step!(0);
                    $w = $w.add(STEP * 4);
                    $x0 = $x0.add(STEP);
                }
            };
        }
        // One pixel's four accumulators in a one-block tile: its four K pairs from `$o`
        // splatted, each feeding the four channel groups' dot products (w{u}{g}: K pair u of
        // the step, channels 4g..4g + 4 of the block).
        macro_rules! pixel {
            ($x:ident, $o:expr, $a0:ident, $a1:ident, $a2:ident, $a3:ident,
             $w00:ident, $w01:ident, $w02:ident, $w03:ident, $w10:ident, $w11:ident, $w12:ident, $w13:ident,
             $w20:ident, $w21:ident, $w22:ident, $w23:ident, $w30:ident, $w31:ident, $w32:ident, $w33:ident) => {
                let (s0, s1, s2, s3) = (
                    v128_load32_splat($x.add($o)),
                    v128_load32_splat($x.add($o + 1)),
                    v128_load32_splat($x.add($o + 2)),
                    v128_load32_splat($x.add($o + 3)),
                );
                $a0 = dot_sum($a0, [s0, s1, s2, s3], [$w00, $w10, $w20, $w30]);
                $a1 = dot_sum($a1, [s0, s1, s2, s3], [$w01, $w11, $w21, $w31]);
                $a2 = dot_sum($a2, [s0, s1, s2, s3], [$w02, $w12, $w22, $w32]);
                $a3 = dot_sum($a3, [s0, s1, s2, s3], [$w03, $w13, $w23, $w33]);
            };
        }
        // One step of a one-block tile: its sixteen weight vectors of the step from pair `$o` of
        // `$w` (w{u}{g}: K pair u, channels 4g..4g + 4), then each pixel row `$x` into its four
        // accumulators.
        macro_rules! block_step {
            ($w:ident, $o:expr, $( $x:ident => ($a0:ident, $a1:ident, $a2:ident, $a3:ident) ),+) => {{
                let v = $w.add($o * 4);
                let (w00, w01, w02, w03) = (v128_load(v), v128_load(v.add(1)), v128_load(v.add(2)), v128_load(v.add(3)));
                let (w10, w11, w12, w13) = (v128_load(v.add(4)), v128_load(v.add(5)), v128_load(v.add(6)), v128_load(v.add(7)));
                let (w20, w21, w22, w23) =
                    (v128_load(v.add(8)), v128_load(v.add(9)), v128_load(v.add(10)), v128_load(v.add(11)));
                let (w30, w31, w32, w33) =
                    (v128_load(v.add(12)), v128_load(v.add(13)), v128_load(v.add(14)), v128_load(v.add(15)));
                $(
                    pixel!(
                        $x, $o, $a0, $a1, $a2, $a3, w00, w01, w02, w03, w10, w11, w12, w13, w20, w21, w22, w23, w30,
                        w31, w32, w33
                    );
                )+
            }};
        }
        // A one-block tile's accumulators, each starting at its channels' `Lanes::start`
        // (a{j}{g}: pixel j, channels 4g..4g + 4).
        macro_rules! block_accumulators {
            ($lanes:ident, $( ($a0:ident, $a1:ident, $a2:ident, $a3:ident) ),+) => {
                let (s0, s1, s2, s3) = ($lanes[0].start, $lanes[1].start, $lanes[2].start, $lanes[3].start);
                $( let (mut $a0, mut $a1, mut $a2, mut $a3) = (s0, s1, s2, s3); )+
            };
        }
        // A tile's pointers: block `$block`'s weight panel (a pair's first), group `$group`'s
        // first pixel row, where that row's pairs end, and where its turns of four steps end.
        macro_rules! block_pointers {
            ($block:expr, $group:expr) => {{
                let w = weights.panels.as_ptr().add($block * pairs * WIDE_ROWS) as *const v128;
                let x0 = input.as_ptr().add($group * PIXELS * pairs * 2) as *const u32;
                (w, x0, x0.add(pairs), x0.add(pairs / (4 * STEP) * (4 * STEP)))
            }};
        }
        let mut block = 0;
        // Two blocks (32 channels) a tile while two are left: each pixel's splats then feed
        // eight dot products instead of four, and each weight vector still eight pixels, so the
        // splats cost half as much per MAC as in the one-block tile below, the loads the same
        // (`benchmarks/NOTES.md`, "Thirty-two channels a tile"). The sums are the one-block
        // tile's: exact in i32, so the outputs are the same.
        while block + 1 < blocks {
            let first = block * WIDE_ROWS;
            let lanes = Lanes::block(weights, epilogue, first, strides.channel);
            let high = Lanes::block(weights, epilogue, first + 16, strides.channel);
            let mut group = 0;
            while group + 1 < groups {
                let second = 4 * row;
                // a{j}{g}: pixel j (the group's four, then the next group's), channels 4g..4g + 4
                // of the pair, starting at their `Lanes::start`; each element its own read of the
                // start, not a repeat expression (which rustc lowers to a loop through memory,
                // `benchmarks/NOTES.md`, "Accumulators set without repeat expressions").
                macro_rules! starts {
                    () => {
                        (
                            lanes[0].start,
                            lanes[1].start,
                            lanes[2].start,
                            lanes[3].start,
                            high[0].start,
                            high[1].start,
                            high[2].start,
                            high[3].start,
                        )
                    };
                }
                let (mut a00, mut a01, mut a02, mut a03, mut a04, mut a05, mut a06, mut a07) = starts!();
                let (mut a10, mut a11, mut a12, mut a13, mut a14, mut a15, mut a16, mut a17) = starts!();
                let (mut a20, mut a21, mut a22, mut a23, mut a24, mut a25, mut a26, mut a27) = starts!();
                let (mut a30, mut a31, mut a32, mut a33, mut a34, mut a35, mut a36, mut a37) = starts!();
                let (mut a40, mut a41, mut a42, mut a43, mut a44, mut a45, mut a46, mut a47) = starts!();
                let (mut a50, mut a51, mut a52, mut a53, mut a54, mut a55, mut a56, mut a57) = starts!();
                let (mut a60, mut a61, mut a62, mut a63, mut a64, mut a65, mut a66, mut a67) = starts!();
                let (mut a70, mut a71, mut a72, mut a73, mut a74, mut a75, mut a76, mut a77) = starts!();
                // SAFETY: as in the one-block tile below, for each of the two blocks: block
                // `block + 1` (< blocks) spans `pairs · 4` vectors of `panels` from `w`'s
                // block's end, `pairs · 4` vectors on.
                unsafe {
                    let (mut w, mut x0, end, quads) = block_pointers!(block, group);
                    let (mut x1, mut x2, mut x3, mut y0, mut y1, mut y2, mut y3, mut wh);
                    // One step of [`STEP`] pairs from pair `$o` of the pointers: both blocks' weight
                    // vectors (l{u}{g}: K pair u of the step, channels 4g..4g + 4 of the first
                    // block; h{u}{g} the second's), then each of the eight pixels.
                    macro_rules! step {
                        ($o:expr) => {{
                            let (v, u) = (w.add($o * 4), wh.add($o * 4));
                            let (l00, l01, l02, l03) =
                                (v128_load(v), v128_load(v.add(1)), v128_load(v.add(2)), v128_load(v.add(3)));
                            let (l10, l11, l12, l13) =
                                (v128_load(v.add(4)), v128_load(v.add(5)), v128_load(v.add(6)), v128_load(v.add(7)));
                            let (l20, l21, l22, l23) =
                                (v128_load(v.add(8)), v128_load(v.add(9)), v128_load(v.add(10)), v128_load(v.add(11)));
                            let (l30, l31, l32, l33) = (
                                v128_load(v.add(12)),
                                v128_load(v.add(13)),
                                v128_load(v.add(14)),
                                v128_load(v.add(15)),
                            );
                            let (h00, h01, h02, h03) =
                                (v128_load(u), v128_load(u.add(1)), v128_load(u.add(2)), v128_load(u.add(3)));
                            let (h10, h11, h12, h13) =
                                (v128_load(u.add(4)), v128_load(u.add(5)), v128_load(u.add(6)), v128_load(u.add(7)));
                            let (h20, h21, h22, h23) =
                                (v128_load(u.add(8)), v128_load(u.add(9)), v128_load(u.add(10)), v128_load(u.add(11)));
                            let (h30, h31, h32, h33) = (
                                v128_load(u.add(12)),
                                v128_load(u.add(13)),
                                v128_load(u.add(14)),
                                v128_load(u.add(15)),
                            );
                            // Pixel `$x`'s four K pairs splatted, each feeding the pair's eight channel
                            // groups' accumulators `$a0` to `$a7`. (Defined here, after the weights,
                            // so that its body names them.)
                            macro_rules! pixel {
                                ($x:ident, $a0:ident, $a1:ident, $a2:ident, $a3:ident, $a4:ident, $a5:ident,
                                                                                 $a6:ident, $a7:ident) => {
                                    let (s0, s1, s2, s3) = (
                                        v128_load32_splat($x.add($o)),
                                        v128_load32_splat($x.add($o + 1)),
                                        v128_load32_splat($x.add($o + 2)),
                                        v128_load32_splat($x.add($o + 3)),
                                    );
                                    $a0 = dot_sum($a0, [s0, s1, s2, s3], [l00, l10, l20, l30]);
                                    $a1 = dot_sum($a1, [s0, s1, s2, s3], [l01, l11, l21, l31]);
                                    $a2 = dot_sum($a2, [s0, s1, s2, s3], [l02, l12, l22, l32]);
                                    $a3 = dot_sum($a3, [s0, s1, s2, s3], [l03, l13, l23, l33]);
                                    $a4 = dot_sum($a4, [s0, s1, s2, s3], [h00, h10, h20, h30]);
                                    $a5 = dot_sum($a5, [s0, s1, s2, s3], [h01, h11, h21, h31]);
                                    $a6 = dot_sum($a6, [s0, s1, s2, s3], [h02, h12, h22, h32]);
                                    $a7 = dot_sum($a7, [s0, s1, s2, s3], [h03, h13, h23, h33]);
                                };
                            }
                            pixel!(x0, a00, a01, a02, a03, a04, a05, a06, a07);
                            pixel!(x1, a10, a11, a12, a13, a14, a15, a16, a17);
                            pixel!(x2, a20, a21, a22, a23, a24, a25, a26, a27);
                            pixel!(x3, a30, a31, a32, a33, a34, a35, a36, a37);
                            pixel!(y0, a40, a41, a42, a43, a44, a45, a46, a47);
                            pixel!(y1, a50, a51, a52, a53, a54, a55, a56, a57);
                            pixel!(y2, a60, a61, a62, a63, a64, a65, a66, a67);
                            pixel!(y3, a70, a71, a72, a73, a74, a75, a76, a77);
                        }};
                    }
                    macro_rules! rows {
                        () => {
                            (x1, x2, x3) = (x0.byte_add(row), x0.byte_add(2 * row), x0.byte_add(3 * row));
                            (y0, y1, y2, y3) =
                                (x0.byte_add(second), x1.byte_add(second), x2.byte_add(second), x3.byte_add(second));
                        };
                    }
                    // The second block's panel, `pairs · 4` vectors on, opaque as `w` is, so that
                    // its loads keep constant offsets too (an addition each otherwise).
                    macro_rules! opaque {
                        () => {
                            (w, wh, x0) = black_box((w, w.add(pairs * 4), x0));
                        };
                    }
                    k_loop!(opaque, rows, step, w, x0, quads, end);
                }
                finish!(
                    lanes, first, group, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33
                );
                finish!(
                    high,
                    first + 16,
                    group,
                    a04,
                    a05,
                    a06,
                    a07,
                    a14,
                    a15,
                    a16,
                    a17,
                    a24,
                    a25,
                    a26,
                    a27,
                    a34,
                    a35,
                    a36,
                    a37
                );
                finish!(
                    lanes,
                    first,
                    group + 1,
                    a40,
                    a41,
                    a42,
                    a43,
                    a50,
                    a51,
                    a52,
                    a53,
                    a60,
                    a61,
                    a62,
                    a63,
                    a70,
                    a71,
                    a72,
                    a73
                );
                finish!(
                    high,
                    first + 16,
                    group + 1,
                    a44,
                    a45,
                    a46,
                    a47,
                    a54,
                    a55,
                    a56,
                    a57,
                    a64,
                    a65,
                    a66,
                    a67,
                    a74,
                    a75,
                    a76,
                    a77
                );
                group += 2;
            }
            block += 2;
        }
        while block < blocks {
            let first = block * WIDE_ROWS;
            let lanes = Lanes::block(weights, epilogue, first, strides.channel);
            let mut group = 0;
            while group + 1 < groups {
                // The second group's rows, this far from the first's.
                let second = 4 * row;
                block_accumulators!(
                    lanes,
                    (a00, a01, a02, a03),
                    (a10, a11, a12, a13),
                    (a20, a21, a22, a23),
                    (a30, a31, a32, a33),
                    (b00, b01, b02, b03),
                    (b10, b11, b12, b13),
                    (b20, b21, b22, b23),
                    (b30, b31, b32, b33)
                );
                // SAFETY: the asserts above bound every read: weight block `block` (< blocks)
                // spans `pairs · 4` vectors of `panels` from block · pairs · WIDE_ROWS u32, and
                // the pixel rows of `group` and of the next group (group + 1 < groups) span
                // `pairs` u32 each of `input` from group · PIXELS · pairs · 2 i16; the steps
                // end where row 0 reaches row 1's start (`pairs` is a multiple of STEP). No load
                // needs alignment.
                unsafe {
                    let (mut w, mut x0, end, quads) = block_pointers!(block, group);
                    // The other pixel rows, from `x0` at each turn (see the loops below).
                    let (mut x1, mut x2, mut x3, mut y0, mut y1, mut y2, mut y3);
                    // One step of [`STEP`] pairs from pair `$o` of the pointers: sixteen weight
                    // vectors, eight pixels.
                    macro_rules! step {
                        ($o:expr) => {
                            block_step!(
                                w, $o, x0 => (a00, a01, a02, a03), x1 => (a10, a11, a12, a13),
                                x2 => (a20, a21, a22, a23), x3 => (a30, a31, a32, a33),
                                y0 => (b00, b01, b02, b03), y1 => (b10, b11, b12, b13),
                                y2 => (b20, b21, b22, b23), y3 => (b30, b31, b32, b33)
                            )
                        };
                    }
                    // The other pixel rows at constant distances from `x0`, so that their
                    // loads keep constant offsets.
                    macro_rules! rows {
                        () => {
                            (x1, x2, x3) = (x0.byte_add(row), x0.byte_add(2 * row), x0.byte_add(3 * row));
                            (y0, y1, y2, y3) =
                                (x0.byte_add(second), x1.byte_add(second), x2.byte_add(second), x3.byte_add(second));
                        };
                    }
                    macro_rules! opaque {
                        () => {
                            (w, x0) = black_box((w, x0));
                        };
                    }
                    k_loop!(opaque, rows, step, w, x0, quads, end);
                }
                finish!(
                    lanes, first, group, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33
                );
                finish!(
                    lanes,
                    first,
                    group + 1,
                    b00,
                    b01,
                    b02,
                    b03,
                    b10,
                    b11,
                    b12,
                    b13,
                    b20,
                    b21,
                    b22,
                    b23,
                    b30,
                    b31,
                    b32,
                    b33
                );
                group += 2;
            }
            block += 1;
        }
        // The last group of an odd count, one block at a time: a one-block tile of its four
        // pixel rows alone (sixteen accumulators).
        if groups % 2 == 1 {
            let group = groups - 1;
            let mut block = 0;
            while block < blocks {
                let first = block * WIDE_ROWS;
                let lanes = Lanes::block(weights, epilogue, first, strides.channel);
                block_accumulators!(
                    lanes,
                    (a00, a01, a02, a03),
                    (a10, a11, a12, a13),
                    (a20, a21, a22, a23),
                    (a30, a31, a32, a33)
                );
                // SAFETY: the asserts above bound every read: weight block `block` (< blocks)
                // spans `pairs · 4` vectors of `panels` from block · pairs · WIDE_ROWS u32, and
                // the four pixel rows of `group` (< groups) span `pairs` u32 each of `input` from
                // group · PIXELS · pairs · 2 i16; the steps end where row 0 reaches row 1's start
                // (`pairs` is a multiple of STEP). No load needs alignment.
                unsafe {
                    let (mut w, mut x0, end, quads) = block_pointers!(block, group);
                    let (mut x1, mut x2, mut x3);
                    // One step of [`STEP`] pairs from pair `$o` of the pointers: sixteen weight
                    // vectors, four pixels.
                    macro_rules! step {
                        ($o:expr) => {
                            block_step!(
                                w, $o, x0 => (a00, a01, a02, a03), x1 => (a10, a11, a12, a13),
                                x2 => (a20, a21, a22, a23), x3 => (a30, a31, a32, a33)
                            )
                        };
                    }
                    macro_rules! rows {
                        () => {
                            (x1, x2, x3) = (x0.byte_add(row), x0.byte_add(2 * row), x0.byte_add(3 * row));
                        };
                    }
                    macro_rules! opaque {
                        () => {
                            (w, x0) = black_box((w, x0));
                        };
                    }
                    k_loop!(opaque, rows, step, w, x0, quads, end);
                }
                finish!(
                    lanes, first, group, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33
                );
                block += 1;
            }
        }
    }
}
