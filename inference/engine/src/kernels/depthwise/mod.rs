//! The f32 depthwise convolution's kernel: each output
//! `act(bias + Σ_{ky, kx} w[ky, kx] · x[oy·sy + ky·dy − top, ox·sx + kx·dx − left])`, summed from the
//! bias in (kernel row, kernel column) order, padding read as zeros.
//!
//! tract's depthwise kernel costs about five of the IC's instructions per multiply-accumulate on
//! wasm (`DepthWiseConv` in `benchmarks/profile.md`). Ours reads the image in the layout it comes
//! in, with the padding's zeros copied around it so that no output is an edge case:
//! - planar (CHW) images one channel at a time, a vector being four adjacent outputs of a row
//!   ([`planar`]);
//! - channels-last (HWC) images through a buffer of four-channel blocks ([`Blocked`]: per block,
//!   a padded image whose pixels are four lanes, one per channel), a vector being four channels
//!   of one pixel.
//!
//! On wasm ([`Simd128`]) the taps of 3×3 and 5×5 windows are spelled out by macros, the weights
//! stay in locals for the whole plane (or block) and the accumulator on the wasm stack: a tap
//! costs a load at a constant offset, a multiply and an add, for four outputs. The activation
//! fused after the convolution ([`Activation`]) is applied before the vectors are stored.
//!
//! [`Scalar`] does the same operations in the same order one output at a time, so both equal
//! [`reference::direct`] bit for bit (checked natively and in the canister's self-test).

pub mod integer;
pub mod planar;

pub use crate::kernels::activation::Activation;
use crate::kernels::integer_conv::pack::{Geometry, Layout};
pub use planar::{planar, Padded};

/// A channels-last image's values, zero padded on every side, in blocks of four channels: block `b` is a
/// padded image whose pixels are the four lanes of channels `4b..4b + 4` (lanes past the image's
/// channels stay zero). The padding is zeroed once, when the buffer is made; [`Blocked::fill`]
/// writes only the image's values, so one buffer serves every image of a batch.
pub struct Blocked {
    geometry: Geometry,
    rows: usize,
    /// Pixels per padded row.
    columns: usize,
    values: Vec<f32>,
}

impl Blocked {
    /// A zeroed buffer for the images of a convolution of `geometry`.
    pub fn new(geometry: &Geometry) -> Blocked {
        let g = geometry;
        let [rows, columns] = padded_extent(g);
        let blocks = g.channels.div_ceil(4);
        Blocked { geometry: g.clone(), rows, columns, values: vec![0.0; blocks * rows * columns * 4] }
    }

    /// Values from one block's padded image to the next.
    fn block_stride(&self) -> usize {
        self.rows * self.columns * 4
    }

    /// Panics unless the buffer holds all its blocks' rows: every tap of every output then
    /// reads inside it (the sizes [`Blocked::new`] chose).
    fn check_size(&self) {
        assert!(self.values.len() >= self.geometry.channels.div_ceil(4) * self.block_stride());
    }

    /// Copies one `[h, w, C]` image into the blocks' interiors.
    pub fn fill<K: DepthwiseKernels>(&mut self, image: &[f32]) {
        let g = &self.geometry;
        let ([h, w], [top, left], c) = (g.input, g.pad_before, g.channels);
        assert!(image.len() >= h * w * c);
        let (columns, block_stride) = (self.columns, self.block_stride());
        for y in 0..h {
            let at = ((top + y) * columns + left) * 4;
            K::to_blocks(&image[y * w * c..][..w * c], c, &mut self.values[at..], block_stride);
        }
    }
}

/// The rows and columns of a padded image in which every tap of every output of a convolution
/// of `g` reads: the window's reach over the outputs, or the image after its leading padding,
/// whichever is larger.
fn padded_extent(g: &Geometry) -> [usize; 2] {
    [0, 1].map(|axis| {
        let reach = g.output[axis].saturating_sub(1) * g.strides[axis] + (g.kernel[axis] - 1) * g.dilations[axis] + 1;
        reach.max(g.pad_before[axis] + g.input[axis])
    })
}

/// The family's interface.
pub trait DepthwiseKernels {
    /// Writes one image row's `pixels` (each `channels` values) as four-lane pixels: channels
    /// `4b..4b + 4` of pixel `x` at `to[b · block_stride + 4x..]`.
    fn to_blocks(pixels: &[f32], channels: usize, to: &mut [f32], block_stride: usize);

    /// The `[oh, ow, C]` output image from its [`Blocked`] input, the weights as
    /// [`block_weights`] packs them and the bias padded to whole blocks.
    fn blocks(blocked: &Blocked, weights: &[f32], bias: &[f32], activation: Activation, out: &mut [f32]);

    /// One channel's `[oh, ow]` output plane from its [`Padded`] image, its window's `kh · kw`
    /// weights (row-major) and its bias: each output's sum starts at the bias, or, with a
    /// `scale`, at zero and is then `sum · scale + bias` (a dynamic int8 convolution's exact
    /// integer sum, then its dequantize, in onnxruntime's order). `out` starts with the plane;
    /// values after it (the next channels' planes, written after this one) may be written over.
    fn plane(padded: &Padded, weights: &[f32], bias: f32, scale: Option<f32>, activation: Activation, out: &mut [f32]);
}

/// `[C, kh · kw]` weights as [`DepthwiseKernels::blocks`] reads them: per block of four channels,
/// per tap, the four channels' weights (zeros past C).
pub fn block_weights(weights: &[f32], channels: usize, taps: usize) -> Vec<f32> {
    let mut packed = vec![0.0; channels.div_ceil(4) * taps * 4];
    for c in 0..channels {
        for t in 0..taps {
            packed[((c / 4) * taps + t) * 4 + c % 4] = weights[c * taps + t];
        }
    }
    packed
}

/// A bias per channel padded with zeros to whole blocks of four.
pub fn block_bias(bias: &[f32]) -> Vec<f32> {
    let mut padded = bias.to_vec();
    padded.resize(bias.len().div_ceil(4) * 4, 0.0);
    padded
}

/// One value at a time.
pub struct Scalar;

impl DepthwiseKernels for Scalar {
    fn to_blocks(pixels: &[f32], channels: usize, to: &mut [f32], block_stride: usize) {
        for (i, v) in pixels.iter().enumerate() {
            let (x, c) = (i / channels, i % channels);
            to[(c / 4) * block_stride + 4 * x + c % 4] = *v;
        }
    }

    fn blocks(blocked: &Blocked, weights: &[f32], bias: &[f32], activation: Activation, out: &mut [f32]) {
        blocked.check_size();
        let g = &blocked.geometry;
        let ([oh, ow], [kh, kw], [sy, sx], c) = (g.output, g.kernel, g.strides, g.channels);
        let (columns, block_stride, taps) = (blocked.columns, blocked.block_stride(), kh * kw);
        for (ch, &b) in bias.iter().enumerate().take(c) {
            let (block, lane) = (ch / 4, ch % 4);
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let (y, x) = (oy * sy + ky * g.dilations[0], ox * sx + kx * g.dilations[1]);
                            let v = blocked.values[block * block_stride + (y * columns + x) * 4 + lane];
                            acc += v * weights[(block * taps + ky * kw + kx) * 4 + lane];
                        }
                    }
                    out[(oy * ow + ox) * c + ch] = activation.apply(acc);
                }
            }
        }
    }

    fn plane(padded: &Padded, weights: &[f32], bias: f32, scale: Option<f32>, activation: Activation, out: &mut [f32]) {
        planar::scalar_plane(padded, weights, bias, scale, activation, out)
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

/// Whether [`Best`] has a vector loop for this geometry (the operator is wired only there: other
/// windows stay tract's).
pub fn vectorised(g: &Geometry) -> bool {
    matches!(g.kernel, [3, 3] | [5, 5]) && g.dilations == [1, 1] && matches!(g.strides[1], 1 | 2)
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;
    use core::hint::black_box;

    use super::*;
    use crate::kernels::activation::activate;

    /// Pixels copied four values a vector, outputs four channels (or, planar, four adjacent
    /// outputs of a channel) a vector for the [`vectorised`] windows; the rest as [`Scalar`].
    pub struct Simd128;

    impl DepthwiseKernels for Simd128 {
        fn to_blocks(pixels: &[f32], channels: usize, to: &mut [f32], block_stride: usize) {
            let count = pixels.len() / channels.max(1);
            if !channels.is_multiple_of(4) || pixels.len() != count * channels {
                return Scalar::to_blocks(pixels, channels, to, block_stride);
            }
            let blocks = channels / 4;
            assert!(blocks == 0 || count == 0 || to.len() >= (blocks - 1) * block_stride + 4 * count);
            let (mut src, dst) = (pixels.as_ptr(), to.as_mut_ptr());
            let mut x = 0;
            while x < count {
                let mut at = 4 * x;
                let mut b = 0;
                while b < blocks {
                    // SAFETY: pixels[4(x·blocks + b)..][..4] is in bounds (count · channels
                    // values), and to[b · block_stride + 4x..][..4] by the assert.
                    unsafe {
                        v128_store(dst.add(at) as *mut v128, v128_load(src as *const v128));
                        src = src.add(4);
                    }
                    at += block_stride;
                    b += 1;
                }
                x += 1;
            }
        }

        fn blocks(blocked: &Blocked, weights: &[f32], bias: &[f32], activation: Activation, out: &mut [f32]) {
            let g = &blocked.geometry;
            if !vectorised(g) {
                return Scalar::blocks(blocked, weights, bias, activation, out);
            }
            let (blocks, taps) = (g.channels.div_ceil(4), g.kernel[0] * g.kernel[1]);
            assert!(weights.len() >= blocks * taps * 4 && bias.len() >= blocks * 4);
            assert!(out.len() >= g.pixels() * g.channels);
            blocked.check_size();
            // SAFETY: the asserts above: every block's weights and bias, every output, and (by
            // Blocked::new's sizes) every pixel a tap reads.
            unsafe {
                match (g.kernel[0], g.strides[1]) {
                    (3, 1) => blocks_3::<1>(blocked, weights, bias, activation, out),
                    (3, _) => blocks_3::<2>(blocked, weights, bias, activation, out),
                    (5, 1) => blocks_5::<1>(blocked, weights, bias, activation, out),
                    (_, _) => blocks_5::<2>(blocked, weights, bias, activation, out),
                }
            }
        }

        fn plane(
            padded: &Padded,
            weights: &[f32],
            bias: f32,
            scale: Option<f32>,
            activation: Activation,
            out: &mut [f32],
        ) {
            planar::simd::plane(padded, weights, bias, scale, activation, out)
        }
    }

    /// One output pixel's window summed onto `$bias`: `rows` point at the window's padded rows,
    /// `$at` floats in from their start; taps in (row, column) order, one chain on the stack.
    macro_rules! pixel {
        ($bias:ident, $rows:ident, $at:expr, $w:ident, $k:literal, [$($ky:literal)*], $kxs:tt) => {{
            let mut acc = $bias;
            $( pixel!(@row acc, $rows[$ky].add($at), $w, $ky, $k, $kxs); )*
            acc
        }};
        (@row $acc:ident, $row:expr, $w:ident, $ky:literal, $k:literal, [$($kx:literal)*]) => {{
            let row: *const f32 = $row;
            $( $acc = f32x4_add($acc, f32x4_mul(v128_load(row.add($kx * 4) as *const v128), $w[$ky * $k + $kx])); )*
        }};
    }

    /// The image of one k×k window at column stride `S` over [`Blocked`] four-channel pixels:
    /// per block (its weights in locals), per output row, four pixels at a time by [`pixel!`]
    /// (then one at a time), stored channels-last.
    macro_rules! block_window {
        ($name:ident, $k:literal, $kys:tt, $kxs:tt, [$($i:literal)*]) => {
            /// # Safety
            /// `blocked` holds every pixel the image reads (see [`Simd128::blocks`]); `weights`
            /// and `bias` every block's, `out` the `[oh, ow, C]` image.
            unsafe fn $name<const S: usize>(
                blocked: &Blocked,
                weights: &[f32],
                bias: &[f32],
                activation: Activation,
                out: &mut [f32],
            ) {
                let (g, activation) = (&blocked.geometry, activation.lanes());
                let ([oh, ow], sy, c) = (g.output, g.strides[0], g.channels);
                let (row_stride, block_stride) = (blocked.columns * 4, blocked.block_stride());
                let (values, out) = (blocked.values.as_ptr(), out.as_mut_ptr());
                let mut block = 0;
                while block * 4 < c {
                    // SAFETY: the block's weights, bias, pixels and outputs are in bounds (the
                    // caller's asserts).
                    unsafe {
                        let wp = weights.as_ptr().add(block * $k * $k * 4);
                        let w = [$(v128_load(wp.add($i * 4) as *const v128)),*];
                        let b = v128_load(bias.as_ptr().add(block * 4) as *const v128);
                        let (lanes, base) = ((c - block * 4).min(4), values.add(block * block_stride));
                        let mut oy = 0;
                        while oy < oh {
                            let first = black_box(base.add(oy * sy * row_stride));
                            let rows: [*const f32; $k] = core::array::from_fn(|ky| first.add(ky * row_stride));
                            let mut ox = 0;
                            while ox + 4 <= ow {
                                let at = ox * S * 4;
                                let v = [
                                    activate(pixel!(b, rows, at, w, $k, $kys, $kxs), activation),
                                    activate(pixel!(b, rows, at + S * 4, w, $k, $kys, $kxs), activation),
                                    activate(pixel!(b, rows, at + 2 * S * 4, w, $k, $kys, $kxs), activation),
                                    activate(pixel!(b, rows, at + 3 * S * 4, w, $k, $kys, $kxs), activation),
                                ];
                                let to = out.add((oy * ow + ox) * c + block * 4);
                                store(to, v[0], lanes);
                                store(to.add(c), v[1], lanes);
                                store(to.add(2 * c), v[2], lanes);
                                store(to.add(3 * c), v[3], lanes);
                                ox += 4;
                            }
                            while ox < ow {
                                let v = activate(pixel!(b, rows, ox * S * 4, w, $k, $kys, $kxs), activation);
                                store(out.add((oy * ow + ox) * c + block * 4), v, lanes);
                                ox += 1;
                            }
                            oy += 1;
                        }
                    }
                    block += 1;
                }
            }
        };
    }

    block_window!(blocks_3, 3, [0 1 2], [0 1 2], [0 1 2 3 4 5 6 7 8]);
    block_window!(
        blocks_5,
        5,
        [0 1 2 3 4],
        [0 1 2 3 4],
        [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24]
    );

    /// Stores four outputs at `out[..]`, or the first `count` of them.
    #[inline(always)]
    unsafe fn store(out: *mut f32, v: v128, count: usize) {
        if count >= 4 {
            // SAFETY: (the caller's) out[..4] is in bounds.
            unsafe { v128_store(out as *mut v128, v) };
        } else {
            let lanes: [f32; 4] = core::mem::transmute(v);
            // SAFETY: (the caller's) out[..count] is in bounds.
            unsafe { core::ptr::copy_nonoverlapping(lanes.as_ptr(), out, count) };
        }
    }
}

pub mod reference {
    use super::*;

    /// A direct depthwise convolution of `[C, h, w]` planes, each output summed from the bias in
    /// (kernel row, kernel column) order with padding read as zero products, then activated;
    /// with a `scale`, summed from zero, then times the scale plus the bias, then activated.
    pub fn direct(
        g: &Geometry,
        x: &[f32],
        weights: &[f32],
        bias: &[f32],
        scale: Option<f32>,
        activation: Activation,
    ) -> Vec<f32> {
        let ([h, w], [kh, kw], [oh, ow]) = (g.input, g.kernel, g.output);
        let mut out = vec![0.0; g.channels * oh * ow];
        for c in 0..g.channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = if scale.is_some() { 0.0 } else { bias[c] };
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * g.strides[0] + ky * g.dilations[0]) as isize - g.pad_before[0] as isize;
                            let ix = (ox * g.strides[1] + kx * g.dilations[1]) as isize - g.pad_before[1] as isize;
                            let inside = (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix);
                            let v = if inside { x[(c * h + iy as usize) * w + ix as usize] } else { 0.0 };
                            acc += v * weights[(c * kh + ky) * kw + kx];
                        }
                    }
                    if let Some(s) = scale {
                        acc = acc * s + bias[c];
                    }
                    out[(c * oh + oy) * ow + ox] = activation.apply(acc);
                }
            }
        }
        out
    }

    /// The convolution of an image held in `layout` (`[C, h, w]` or `[h, w, C]`) by kernel
    /// family `K`, through a [`Padded`] plane or a [`Blocked`] buffer as the operator does;
    /// `weights` and `bias` as for [`direct`] (per channel), the output in the same layout.
    pub fn by<K: DepthwiseKernels>(
        g: &Geometry,
        x: &[f32],
        weights: &[f32],
        bias: &[f32],
        activation: Activation,
        layout: Layout,
    ) -> Vec<f32> {
        let mut out = vec![0.0; g.pixels() * g.channels];
        match layout {
            Layout::Planar => planar::<K>(&mut Padded::new(g), x, weights, bias, None, activation, &mut out),
            Layout::Interleaved => {
                let mut blocked = Blocked::new(g);
                blocked.fill::<K>(x);
                let packed = block_weights(weights, g.channels, g.kernel[0] * g.kernel[1]);
                K::blocks(&blocked, &packed, &block_bias(bias), activation, &mut out);
            }
        }
        out
    }

    /// `[C, n]` values as `[n, C]`.
    fn transposed(x: &[f32], channels: usize) -> Vec<f32> {
        let n = x.len() / channels;
        (0..x.len()).map(|i| x[(i % channels) * n + i / channels]).collect()
    }

    /// Compares [`Best`] (simd128 on wasm) and [`Scalar`] with [`direct`].
    pub fn check() -> Result<(), String> {
        check_kernels::<Best>()?;
        check_kernels::<Scalar>()
    }

    /// A window's geometry: `channels` planes of `[h, w]`, a `k`×`k` window with `strides` and
    /// `pad` on every side (ONNX's explicit padding).
    pub fn geometry(channels: usize, [h, w]: [usize; 2], k: usize, strides: [usize; 2], pad: usize) -> Geometry {
        let output = |size: usize, stride: usize| (size + 2 * pad - k) / stride + 1;
        Geometry {
            channels,
            input: [h, w],
            kernel: [k, k],
            strides,
            dilations: [1, 1],
            pad_before: [pad, pad],
            output: [output(h, strides[0]), output(w, strides[1])],
        }
    }

    /// Compares kernel family `K` with [`direct`] bit for bit over windows of 3 and 5 (and 2, not
    /// vectorised), strides 1 and 2 per axis, odd and even widths around the vector and the
    /// scatter's widths, every activation, with values that include NaN and both zeros. An
    /// error names the first case that differs.
    pub fn check_kernels<K: DepthwiseKernels>() -> Result<(), String> {
        let special = [f32::NAN, -0.0, 0.0, -3.0, 3.0, 2.5, -7.25];
        let value = |i: usize, salt: usize| {
            let j = i * 13 + salt * 7;
            if j.is_multiple_of(11) {
                special[j % special.len()]
            } else {
                ((j * 29 % 31) as f32 - 15.0) * 0.375
            }
        };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (k, pad) in [(3, 1), (5, 2), (3, 0), (2, 0)] {
            for strides in [[1, 1], [2, 2], [2, 1], [1, 2]] {
                // Three and six channels: a partial block; eight: whole ones (widths around the vector
                // width of the transposition).
                // Planar rows of 1 to 131 outputs: vectors four at a time, in pairs and alone,
                // rows in whole vectors whose extra outputs the next row (or the next channel)
                // writes over, the last channel's last row one output at a time, and rows too
                // short for a vector; odd and even widths split into column phases.
                for (channels, size) in [
                    (3, [1, 1]),
                    (6, [4, 5]),
                    (8, [7, 9]),
                    (3, [6, 17]),
                    (8, [5, 22]),
                    (5, [3, 8]),
                    (2, [2, 4]),
                    (2, [3, 14]),
                    // 5×5 rows two past whole vectors (one unit of four vectors a row), for an
                    // even number of rows and an odd one.
                    (2, [6, 14]),
                    (3, [2, 7]),
                    (2, [3, 30]),
                    (2, [2, 36]),
                    // Rows copied or split by straight-line code of many vectors (up to 112
                    // values), and rows too long for it.
                    (1, [3, 70]),
                    (1, [2, 131]),
                ] {
                    if size[0] + 2 * pad < k || size[1] + 2 * pad < k {
                        continue;
                    }
                    let g = geometry(channels, size, k, strides, pad);
                    let x: Vec<f32> = (0..channels * size[0] * size[1]).map(|i| value(i, 1)).collect();
                    let weights: Vec<f32> = (0..channels * k * k).map(|i| value(i, 2)).collect();
                    let bias: Vec<f32> = (0..channels).map(|c| [0.5, -0.0, value(c, 3)][c % 3]).collect();
                    for activation in
                        [Activation::Identity, Activation::Relu, Activation::HardSwish, Activation::HardSigmoidSwish]
                    {
                        // Planar images also scaled: integer values and weights, as a dynamic
                        // int8 model's are, with a scale that rounds.
                        let integers: Vec<f32> = x.iter().map(|v| if v.is_nan() { *v } else { v.trunc() }).collect();
                        let want = direct(&g, &integers, &weights, &bias, Some(0.0123), activation);
                        // Two values past the output, which the kernel must leave alone: too few
                        // for the last row's extra outputs, so that row goes one at a time.
                        let mut got = vec![0.0; want.len() + 2];
                        got[want.len()..].fill(f32::MAX);
                        planar::<K>(
                            &mut Padded::new(&g),
                            &integers,
                            &weights,
                            &bias,
                            Some(0.0123),
                            activation,
                            &mut got,
                        );
                        if got[want.len()..] != [f32::MAX; 2] {
                            return Err(format!(
                                "depthwise {k}×{k} scaled (strides {strides:?}, pad {pad}, {channels} channels of {size:?}, {}) wrote past its output",
                                std::any::type_name::<K>()
                            ));
                        }
                        got.truncate(want.len());
                        if bits(&want) != bits(&got) {
                            return Err(format!(
                                "depthwise {k}×{k} scaled (strides {strides:?}, pad {pad}, {channels} channels of {size:?}, {activation:?}, {}) differs from the reference",
                                std::any::type_name::<K>()
                            ));
                        }
                        let want = direct(&g, &x, &weights, &bias, None, activation);
                        let planar = by::<K>(&g, &x, &weights, &bias, activation, Layout::Planar);
                        let interleaved =
                            by::<K>(&g, &transposed(&x, channels), &weights, &bias, activation, Layout::Interleaved);
                        let interleaved = transposed(&interleaved, g.pixels());
                        for (layout, got) in [("planar", planar), ("interleaved", interleaved)] {
                            if bits(&want) != bits(&got) {
                                return Err(format!(
                                    "depthwise {k}×{k} {layout} (strides {strides:?}, pad {pad}, {channels} channels of {size:?}, {activation:?}, {}) differs from the reference",
                                    std::any::type_name::<K>()
                                ));
                            }
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
        fn kernels_equal_the_reference() {
            super::check().unwrap();
        }
    }
}
