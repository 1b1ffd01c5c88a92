//! 3×3 convolutions of stride 1 by Winograd's F(2×2, 3×3), exactly, in integers.
//!
//! Each 2×2 block ("tile") of output pixels is computed from the 4×4 input values under it:
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` (Lavin and Gray, "Fast Algorithms for Convolutional Neural
//! Networks", 2016), sixteen products per channel where the direct convolution takes
//! thirty-six. Summed over the input channels, the sixteen products of every tile are sixteen
//! matrix products of the transformed weights by the transformed input, which the packed
//! kernel computes ([`super::ConvKernels::multiply`], its integer sums kept raw).
//!
//! In floats the transforms round; in integers they need not. With `2G` in place of `G` (whose
//! entries are halves), `U = (2G) g (2G)ᵀ` is four times `G g Gᵀ` and an integer, so the result
//! is `4 Y`, every step exact: the identity is a polynomial one, so it also holds modulo 2³²,
//! i32's wrapping arithmetic, and `4 Y` comes back whole whenever it fits an i32 (the weights
//! are checked for that, [`WinogradWeights::new`]). The input is transformed as it is, padded
//! with its zero point, and the transform of a window of zero points (`4 · x_zp` at position
//! (1, 1), nothing elsewhere) is subtracted, so `Y` is `Σ (x − x_zp)·w` itself and the epilogue
//! needs no weight sums: each output is bit for bit the direct convolution's.
//!
//! The value ranges fit the kernel's i16 operands: `|x − x_zp| ≤ 255` for u8 and i8 alike, so
//! `|Bᵀ d B| ≤ 4 · 255`; `|w| ≤ 255`, so `|U| ≤ 9 · 255`.

use std::mem::MaybeUninit;

use super::pack::{as_uninit, Epilogue, Geometry, Layout, PackedWeights, Strides, PIXELS};
use super::{ConvKernels, Runs};
use crate::kernels::Int8;

/// Input values per tile: a 4×4 window, one matrix product each.
pub const POSITIONS: usize = 16;

/// The transformed weights: per position ξ of the 4×4 window, `U_ξ` packed as a 1×1
/// convolution's `[M, C]` weights.
#[derive(Clone, Debug, PartialEq)]
pub struct WinogradWeights {
    pub channels: usize,
    pub positions: Vec<PackedWeights>,
    /// The matrix products' epilogue: their integer sums written as they are.
    pub raw: Epilogue,
}

/// `2G`: Winograd's weight transform for F(2, 3), doubled to integers.
const G2: [[i32; 3]; 4] = [[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]];

impl WinogradWeights {
    /// From ONNX's `[M, C, 3, 3]` weights, their zero point already subtracted, for `channels`
    /// (M) output channels: `None` when the convolution is not a 3×3 one of stride 1 and
    /// dilation 1, when C is not a positive multiple of eight (the packed rows' whole steps),
    /// when a weight is outside ±255 (the bound the transformed weights' i16 relies on), or
    /// when some output channel's `4 Y` might not fit an i32 (the whole convolution then takes
    /// the direct path).
    pub fn new(values: &[i16], geometry: &Geometry, channels: usize) -> Option<WinogradWeights> {
        let c_count = geometry.channels;
        let shape_fits = geometry.kernel == [3, 3]
            && geometry.strides == [1, 1]
            && geometry.dilations == [1, 1]
            && c_count > 0
            && c_count.is_multiple_of(8)
            && values.len() == channels * c_count * 9
            && values.iter().all(|v| v.unsigned_abs() <= 255);
        if !shape_fits {
            return None;
        }
        // |Y| ≤ Σ|w| · 255 must leave room for 4 Y in an i32.
        let fits = values
            .chunks(c_count * 9)
            .all(|w| w.iter().map(|v| v.unsigned_abs() as i64).sum::<i64>() * 255 * 4 <= i32::MAX as i64);
        if !fits {
            return None;
        }
        let mut transformed = vec![vec![0i16; channels * c_count]; POSITIONS];
        for (mc, g) in values.chunks(9).enumerate() {
            for i in 0..4 {
                for j in 0..4 {
                    let mut u = 0;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            u += G2[i][ky] * g[ky * 3 + kx] as i32 * G2[j][kx];
                        }
                    }
                    transformed[i * 4 + j][mc] = u as i16;
                }
            }
        }
        let pointwise = Geometry {
            channels: c_count,
            input: [1, 1],
            kernel: [1, 1],
            strides: [1, 1],
            dilations: [1, 1],
            pad_before: [0, 0],
            output: [1, 1],
        };
        let positions = transformed.iter().map(|u| PackedWeights::new(u, &pointwise, channels)).collect();
        let raw = Epilogue { zero_point: 0, scales: vec![0.0; channels], bias: vec![0.0; channels], raw: true };
        Some(WinogradWeights { channels, positions, raw })
    }
}

/// Tiles down and across: whole 2×2 blocks covering the output.
fn tiles(geometry: &Geometry) -> [usize; 2] {
    geometry.output.map(|d| d.div_ceil(2))
}

/// One image (`x` in `layout`) convolved, output (channel m, pixel p) at
/// `out[m · strides.channel + p · strides.pixel]`.
pub fn convolve<K: ConvKernels, T: Int8>(
    x: &[T],
    layout: Layout,
    geometry: &Geometry,
    weights: &WinogradWeights,
    epilogue: &Epilogue,
    strides: Strides,
    out: &mut [f32],
) {
    convolve_bytes::<K>(T::bytes(x), T::UNSIGNED, layout, geometry, weights, epilogue, strides, out)
}

/// [`convolve`] over the values' bytes (one instance for u8 and i8).
#[allow(clippy::too_many_arguments)]
fn convolve_bytes<K: ConvKernels>(
    x: &[u8],
    unsigned: bool,
    layout: Layout,
    geometry: &Geometry,
    weights: &WinogradWeights,
    epilogue: &Epilogue,
    strides: Strides,
    out: &mut [f32],
) {
    let (c, m, tiles) = (geometry.channels, weights.channels, tiles(geometry));
    let count = tiles[0] * tiles[1];
    let image = padded_image::<K>(x, unsigned, layout, geometry, epilogue.zero_point, tiles);
    // Per position, one row of C values per tile, rounded up to the kernel's groups of pixels.
    let stride = count.div_ceil(PIXELS) * PIXELS * c;
    let mut transformed = Vec::with_capacity(POSITIONS * stride);
    let slots = &mut transformed.spare_capacity_mut()[..POSITIONS * stride];
    // Debug builds (the native tests) start from a value no test reads as a lucky zero, as the
    // packing's `written` does, so a value the transform missed shows.
    #[cfg(debug_assertions)]
    slots.fill(MaybeUninit::new(i16::MIN));
    K::winograd_input(&image, tiles[1] * 2 + 2, c, tiles, epilogue.zero_point as i16, slots, stride);
    for position in 0..POSITIONS {
        for slot in &mut slots[position * stride + count * c..(position + 1) * stride] {
            slot.write(0);
        }
    }
    // SAFETY: every value is written: the transform writes each tile's row of each position,
    // the loop above the rows past the last tile.
    unsafe { transformed.set_len(POSITIONS * stride) };
    // Three values more, which the vector output transform's last step of a row may read.
    let products_len = POSITIONS * count * m;
    let mut products: Vec<i32> = Vec::with_capacity(products_len + 3);
    // Debug builds fill the products with a sentinel first, as above; release builds leave them
    // uninitialised (the IC charges a zeroed allocation's fill a byte at a time, 1.6 M
    // instructions for opennsfw's first 3×3 layer), as the operators' `Tensor::uninitialized`
    // outputs are.
    #[cfg(debug_assertions)]
    products.spare_capacity_mut()[..products_len].fill(MaybeUninit::new(i32::MIN));
    {
        // SAFETY: f32 and i32 have the same size and alignment and no invalid values; the kernel
        // writes every (channel, tile) of each position's `count · m` values, and only writes,
        // before any is read.
        let raw = unsafe { std::slice::from_raw_parts_mut(products.as_mut_ptr() as *mut f32, products_len) };
        // Planar, channel by channel: four consecutive tiles are one vector, for the kernel's
        // transposed stores and the output transform's lanes.
        let raw_strides = Strides { channel: count, pixel: 1 };
        for (position, packed) in weights.positions.iter().enumerate() {
            let input = &transformed[position * stride..][..stride];
            K::multiply(packed, input, count, &weights.raw, raw_strides, &mut raw[position * count * m..][..count * m]);
        }
    }
    products.spare_capacity_mut()[products_len..products_len + 3].fill(MaybeUninit::new(0));
    // SAFETY: the first `products_len` written by the kernel above, the three after them just
    // before.
    unsafe { products.set_len(products_len + 3) };
    K::winograd_output(&products, count * m, m, tiles, geometry.output, epilogue, strides, out);
}

/// The image widened to i16, interleaved (HWC), with the convolution's padding around it (the
/// zero point) out to the tiles' `2·tiles + 2` rows and columns.
fn padded_image<K: ConvKernels>(
    x: &[u8],
    unsigned: bool,
    layout: Layout,
    geometry: &Geometry,
    zero_point: i32,
    tiles: [usize; 2],
) -> Vec<i16> {
    let (c, [h, w], [top, left]) = (geometry.channels, geometry.input, geometry.pad_before);
    let width = tiles[1] * 2 + 2;
    let mut padded = vec![zero_point as i16; (tiles[0] * 2 + 2) * width * c];
    // Rows and columns past the tiles' reach are never read (and the output needs none).
    let (rows, columns) = (h.min(tiles[0] * 2 + 2 - top), w.min(width - left));
    let interleaved;
    let source: &[i16] = match layout {
        Layout::Interleaved => &[],
        Layout::Planar => {
            let mut values = Vec::with_capacity(c * h * w);
            K::interleave(&x[..c * h * w], unsigned, &mut values.spare_capacity_mut()[..c * h * w], c, h * w);
            // SAFETY: `interleave` writes each of the first C·P slots.
            unsafe { values.set_len(c * h * w) };
            interleaved = values;
            &interleaved
        }
    };
    for iy in 0..rows {
        let row = as_uninit(&mut padded[((top + iy) * width + left) * c..][..columns * c]);
        match layout {
            Layout::Interleaved => K::widen(&x[iy * w * c..][..columns * c], unsigned, row),
            Layout::Planar => {
                K::copy_pixels(source, row, Runs { from: iy * w * c, step: 0, stride: 0, count: 1, len: columns * c })
            }
        }
    }
    padded
}

/// [`ConvKernels::winograd_input`] one value at a time.
pub fn input_scalar(
    image: &[i16],
    width: usize,
    channels: usize,
    tiles: [usize; 2],
    zero_point: i16,
    v: &mut [MaybeUninit<i16>],
    stride: usize,
) {
    for ty in 0..tiles[0] {
        for tx in 0..tiles[1] {
            let t = ty * tiles[1] + tx;
            for ch in 0..channels {
                let d = |r: usize, s: usize| image[((2 * ty + r) * width + 2 * tx + s) * channels + ch];
                // Bᵀ d, then (Bᵀ d) B, as the simd128 version does, in wrapping i16.
                let columns: [[i16; 4]; 4] = std::array::from_fn(|s| {
                    let [d0, d1, d2, d3] = [d(0, s), d(1, s), d(2, s), d(3, s)];
                    [d0.wrapping_sub(d2), d1.wrapping_add(d2), d2.wrapping_sub(d1), d1.wrapping_sub(d3)]
                });
                let rows: [[i16; 4]; 4] = std::array::from_fn(|i| columns.map(|column| column[i]));
                for (i, [t0, t1, t2, t3]) in rows.into_iter().enumerate() {
                    let mut values =
                        [t0.wrapping_sub(t2), t1.wrapping_add(t2), t2.wrapping_sub(t1), t1.wrapping_sub(t3)];
                    if i == 1 {
                        values[1] = values[1].wrapping_sub(zero_point.wrapping_mul(4));
                    }
                    for (j, value) in values.into_iter().enumerate() {
                        v[(i * 4 + j) * stride + t * channels + ch].write(value);
                    }
                }
            }
        }
    }
}

/// [`ConvKernels::winograd_output`] one value at a time.
#[allow(clippy::too_many_arguments)]
pub fn output_scalar(
    products: &[i32],
    stride: usize,
    channels: usize,
    tiles: [usize; 2],
    output: [usize; 2],
    epilogue: &Epilogue,
    strides: Strides,
    out: &mut [f32],
) {
    for m in 0..channels {
        for t in 0..tiles[0] * tiles[1] {
            output_tile(products, stride, [t, m], tiles, output, epilogue, strides, out);
        }
    }
}

/// The outputs of tile t of channel m (`at`), one value at a time.
#[allow(clippy::too_many_arguments)]
fn output_tile(
    products: &[i32],
    stride: usize,
    [t, m]: [usize; 2],
    tiles: [usize; 2],
    output: [usize; 2],
    epilogue: &Epilogue,
    strides: Strides,
    out: &mut [f32],
) {
    let count = tiles[0] * tiles[1];
    let p = |i: usize, j: usize| products[(i * 4 + j) * stride + m * count + t];
    // Aᵀ M: two rows of four.
    let sums: [[i32; 4]; 2] = [
        std::array::from_fn(|j| p(0, j).wrapping_add(p(1, j)).wrapping_add(p(2, j))),
        std::array::from_fn(|j| p(1, j).wrapping_sub(p(2, j)).wrapping_sub(p(3, j))),
    ];
    let (ty, tx) = (t / tiles[1], t % tiles[1]);
    for (i, [s0, s1, s2, s3]) in sums.into_iter().enumerate() {
        let ys = [s0.wrapping_add(s1).wrapping_add(s2), s1.wrapping_sub(s2).wrapping_sub(s3)];
        for (j, y) in ys.into_iter().enumerate() {
            let (oy, ox) = (2 * ty + i, 2 * tx + j);
            if oy < output[0] && ox < output[1] {
                let at = m * strides.channel + (oy * output[1] + ox) * strides.pixel;
                out[at] = (y >> 2) as f32 * epilogue.scales[m] + epilogue.bias[m];
            }
        }
    }
}

/// The transforms in simd128: eight channels a vector in, four out.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod simd {
    use core::arch::wasm32::*;

    use super::*;

    /// [`ConvKernels::winograd_input`]: eight channels of a tile per step, its sixteen values
    /// loaded once and every sum kept in locals (at the canister's opt-level a closure would stay
    /// a call, hence the macros).
    pub fn input(
        image: &[i16],
        width: usize,
        channels: usize,
        tiles: [usize; 2],
        zero_point: i16,
        v: &mut [MaybeUninit<i16>],
        stride: usize,
    ) {
        let count = tiles[0] * tiles[1];
        assert!(channels.is_multiple_of(8) && width >= 2 * tiles[1] + 2);
        assert!(image.len() >= (2 * tiles[0] + 2) * width * channels);
        assert!(stride >= count * channels && v.len() >= (POSITIONS - 1) * stride + count * channels);
        let correction = i16x8_splat(zero_point.wrapping_mul(4));
        let row = width * channels;
        let mut t = 0;
        while t < count {
            let (ty, tx) = (t / tiles[1], t % tiles[1]);
            let mut c = 0;
            while c < channels {
                // SAFETY: the tile's window, rows 2ty..2ty + 4 and columns 2tx..2tx + 4 of the
                // padded image, channels c..c + 8, is inside `image` (asserted: 2·tiles + 2 rows
                // of `width` ≥ 2·tiles + 2 pixels); each of the sixteen rows written,
                // ξ · stride + t · C + c.., is inside `v` (asserted). No access needs alignment.
                unsafe {
                    let d = image.as_ptr().add((2 * ty * width + 2 * tx) * channels + c);
                    let to = v.as_mut_ptr().add(t * channels + c) as *mut i16;
                    macro_rules! load {
                        ($r:expr, $s:expr) => {
                            v128_load(d.add($r * row + $s * channels) as *const v128)
                        };
                    }
                    // Bᵀ d, one column of the window at a time: its four rows' values.
                    macro_rules! column {
                        ($s:expr) => {{
                            let (d0, d1, d2, d3) = (load!(0, $s), load!(1, $s), load!(2, $s), load!(3, $s));
                            [i16x8_sub(d0, d2), i16x8_add(d1, d2), i16x8_sub(d2, d1), i16x8_sub(d1, d3)]
                        }};
                    }
                    let [a0, a1, a2, a3] = column!(0);
                    let [b0, b1, b2, b3] = column!(1);
                    let [c0, c1, c2, c3] = column!(2);
                    let [e0, e1, e2, e3] = column!(3);
                    // (Bᵀ d) B, one row at a time: values (i, 0..4) at positions 4i..4i + 4;
                    // value (1, 1) less the zero point's share.
                    macro_rules! row {
                        ($i:expr, $t0:expr, $t1:expr, $t2:expr, $t3:expr, $middle:expr) => {
                            v128_store(to.add(4 * $i * stride) as *mut v128, i16x8_sub($t0, $t2));
                            v128_store(to.add((4 * $i + 1) * stride) as *mut v128, $middle);
                            v128_store(to.add((4 * $i + 2) * stride) as *mut v128, i16x8_sub($t2, $t1));
                            v128_store(to.add((4 * $i + 3) * stride) as *mut v128, i16x8_sub($t1, $t3));
                        };
                    }
                    row!(0, a0, b0, c0, e0, i16x8_add(b0, c0));
                    row!(1, a1, b1, c1, e1, i16x8_sub(i16x8_add(b1, c1), correction));
                    row!(2, a2, b2, c2, e2, i16x8_add(b2, c2));
                    row!(3, a3, b3, c3, e3, i16x8_add(b3, c3));
                }
                c += 8;
            }
            t += 1;
        }
    }

    /// [`ConvKernels::winograd_output`]: four tiles of a row of tiles per step, their sixteen
    /// products loaded once, through the epilogue as lanes, then paired so that each output row
    /// gets eight consecutive values as two stores (a row's last step, fewer, through a
    /// buffer). `products` holds three values past the last tile, which the last step may read.
    /// Interleaved outputs go one value at a time.
    #[allow(clippy::too_many_arguments)]
    pub fn output(
        products: &[i32],
        stride: usize,
        channels: usize,
        tiles: [usize; 2],
        output: [usize; 2],
        epilogue: &Epilogue,
        strides: Strides,
        out: &mut [f32],
    ) {
        if strides.pixel != 1 {
            return output_scalar(products, stride, channels, tiles, output, epilogue, strides, out);
        }
        let count = tiles[0] * tiles[1];
        assert!(epilogue.scales.len() >= channels && epilogue.bias.len() >= channels);
        assert!(stride >= count * channels && products.len() >= (POSITIONS - 1) * stride + count * channels + 3);
        let mut m = 0;
        while m < channels {
            let (scale, bias) = (f32x4_splat(epilogue.scales[m]), f32x4_splat(epilogue.bias[m]));
            let mut ty = 0;
            while ty < tiles[0] {
                let mut tx = 0;
                while tx < tiles[1] {
                    let t = ty * tiles[1] + tx;
                    // SAFETY: products ξ · stride + m · count + t.. + 4 are inside `products`
                    // (asserted: t < count, and three values past the last). No load needs
                    // alignment.
                    let [y00, y01, y10, y11] = unsafe {
                        let p = products.as_ptr().add(m * count + t);
                        macro_rules! load {
                            ($i:expr, $j:expr) => {
                                v128_load(p.add(($i * 4 + $j) * stride) as *const v128)
                            };
                        }
                        // Aᵀ M, one column of the window at a time: its two rows' values.
                        macro_rules! column {
                            ($j:expr) => {{
                                let (p0, p1, p2, p3) = (load!(0, $j), load!(1, $j), load!(2, $j), load!(3, $j));
                                (i32x4_add(i32x4_add(p0, p1), p2), i32x4_sub(i32x4_sub(p1, p2), p3))
                            }};
                        }
                        let (s0, d0) = column!(0);
                        let (s1, d1) = column!(1);
                        let (s2, d2) = column!(2);
                        let (s3, d3) = column!(3);
                        macro_rules! finish {
                            ($y:expr) => {
                                f32x4_add(f32x4_mul(f32x4_convert_i32x4(i32x4_shr($y, 2)), scale), bias)
                            };
                        }
                        [
                            finish!(i32x4_add(i32x4_add(s0, s1), s2)),
                            finish!(i32x4_sub(i32x4_sub(s1, s2), s3)),
                            finish!(i32x4_add(i32x4_add(d0, d1), d2)),
                            finish!(i32x4_sub(i32x4_sub(d1, d2), d3)),
                        ]
                    };
                    // Output rows 2ty and 2ty + 1 (if inside), columns 2tx..2tx + 8 (those
                    // inside): each tile's pair of columns side by side.
                    let (at, columns) =
                        (m * strides.channel + 2 * ty * output[1] + 2 * tx, (output[1] - 2 * tx).min(8));
                    let pairs = [(y00, y01), (y10, y11)];
                    let mut r = 0;
                    while r < 2 && 2 * ty + r < output[0] {
                        let (left, right) = pairs[r];
                        let (low, high) =
                            (i32x4_shuffle::<0, 4, 1, 5>(left, right), i32x4_shuffle::<2, 6, 3, 7>(left, right));
                        let at = at + r * output[1];
                        if columns == 8 {
                            assert!(at + 8 <= out.len());
                            // SAFETY: out[at..at + 8] is in bounds (asserted); no alignment is
                            // required.
                            unsafe {
                                v128_store(out.as_mut_ptr().add(at) as *mut v128, low);
                                v128_store(out.as_mut_ptr().add(at + 4) as *mut v128, high);
                            }
                        } else {
                            let mut values = [0f32; 8];
                            // SAFETY: `values` holds eight f32; no alignment is required.
                            unsafe {
                                v128_store(values.as_mut_ptr() as *mut v128, low);
                                v128_store(values.as_mut_ptr().add(4) as *mut v128, high);
                            }
                            // Value by value: a copy would be a `memory.copy`, a hundred
                            // instructions before its bytes.
                            let mut k = 0;
                            while k < columns {
                                out[at + k] = values[k];
                                k += 1;
                            }
                        }
                        r += 1;
                    }
                    tx += 4;
                }
                ty += 1;
            }
            m += 1;
        }
    }
}
