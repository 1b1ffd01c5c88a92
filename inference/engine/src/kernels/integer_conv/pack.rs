//! What the kernels read: the convolution's geometry, its weights and its input packed as i16
//! pairs along K for `i32x4.dot_i16x8_s`, and how each integer sum becomes an f32 output.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use super::{ConvKernels, Runs};
use crate::kernels::Int8;

/// How an image's values are laid out: channel planes (CHW) or channels interleaved per pixel
/// (HWC). tract picks one per tensor: HWC around its wasm depthwise kernel, CHW elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    Planar,
    Interleaved,
}

/// Sizes, strides, dilations and paddings of a 2-D convolution, all concrete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub channels: usize,
    pub input: [usize; 2],
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    pub pad_before: [usize; 2],
    pub output: [usize; 2],
}

impl Geometry {
    /// K: one im2col value per (channel, kernel row, kernel column).
    pub fn depth(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }

    pub fn pixels(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// K rounded up to pairs: the dot product multiplies two K values per lane.
    pub fn pairs(&self) -> usize {
        self.depth().div_ceil(2)
    }

    /// The input row `iy` read by output row `oy` at kernel row `ky`, if inside the image.
    pub(crate) fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        let iy = (oy * self.strides[0] + ky * self.dilations[0]) as isize - self.pad_before[0] as isize;
        (iy >= 0 && (iy as usize) < self.input[0]).then_some(iy as usize)
    }

    /// The output columns whose input column at kernel column `kx` lies inside the image, and
    /// the input column the first of them reads.
    pub(crate) fn columns_inside(&self, kx: usize) -> (usize, usize, usize) {
        let (w, ow, sx) = (self.input[1], self.output[1], self.strides[1]);
        let offset = (kx * self.dilations[1]) as isize - self.pad_before[1] as isize;
        let first = if offset >= 0 { 0 } else { ((-offset) as usize).div_ceil(sx).min(ow) };
        let end =
            if (w as isize) <= offset { first } else { ((w as isize - offset) as usize).div_ceil(sx).clamp(first, ow) };
        (first, end, ((first * sx) as isize + offset).max(0) as usize)
    }
}

/// Output channels per block of the packed weights: the four lanes of a vector, or four vectors
/// when the channel count allows ([`PackedWeights::rows`]).
pub const ROWS: usize = 4;
/// The wide block: each pixel's splatted pair then feeds four dot products instead of one.
pub const WIDE_ROWS: usize = 16;
/// Output pixels per step of the kernel: one accumulator each.
pub const PIXELS: usize = 4;
/// K pairs per step of the kernel: their dot products are summed before the accumulator is
/// read and written again (under the IC's metering, each accumulator update costs three).
pub const STEP: usize = 4;

/// K pairs rounded up to whole kernel steps: the packing's row length in pairs.
pub fn padded_pairs(geometry: &Geometry) -> usize {
    geometry.pairs().div_ceil(STEP) * STEP
}

/// The weights, per block of `rows` output channels and per K pair, one u32 per channel holding
/// the pair as two i16 (low half first): the kernel loads each four as one vector. K runs in
/// (kernel row, kernel column, channel) order, as the packed input's rows do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedWeights {
    pub channels: usize,
    /// Channels per block: [`WIDE_ROWS`] when the channel count is a multiple of it (and, for
    /// [`PackedWeights::for_image`], the image has more than one group of [`PIXELS`]), else
    /// [`ROWS`] (so no block computes channels that do not exist beyond the last four).
    pub rows: usize,
    pub pairs: usize,
    pub panels: Vec<u32>,
    /// Σ_k w[m, k], to subtract the input zero point's share once per output.
    pub sums: Vec<i32>,
}

fn pair(low: i16, high: i16) -> u32 {
    (low as u16 as u32) | ((high as u16 as u32) << 16)
}

impl PackedWeights {
    /// From ONNX's `[M, C, kh, kw]` weights, their zero point already subtracted (int8 values,
    /// or u8 values minus a zero point, both fit i16).
    pub fn new(values: &[i16], geometry: &Geometry, channels: usize) -> PackedWeights {
        Self::in_blocks(values, geometry, channels, channels.is_multiple_of(WIDE_ROWS))
    }

    /// [`PackedWeights::new`] for a convolution whose `geometry` is its image's: an image of one
    /// group of [`PIXELS`] (the one-pixel convolutions of heads and squeeze-and-excitation
    /// blocks) takes four-channel blocks, as the wide kernel computes two groups at a time and
    /// for one group would compute the second for nothing (`benchmarks/NOTES.md`, "Eight pixels
    /// a step"). Winograd's products, whose geometry stands for any number of tiles, take
    /// [`PackedWeights::new`].
    pub fn for_image(values: &[i16], geometry: &Geometry, channels: usize) -> PackedWeights {
        let wide = channels.is_multiple_of(WIDE_ROWS) && geometry.pixels() > PIXELS;
        Self::in_blocks(values, geometry, channels, wide)
    }

    fn in_blocks(values: &[i16], geometry: &Geometry, channels: usize, wide: bool) -> PackedWeights {
        let depth = geometry.depth();
        let (c_count, taps) = (geometry.channels, geometry.kernel[0] * geometry.kernel[1]);
        // Our k-th value of output channel m is ONNX's channel k % C at tap k / C.
        let at = |m: usize, k: usize| {
            if m < channels && k < depth {
                values[m * depth + (k % c_count) * taps + k / c_count]
            } else {
                0
            }
        };
        let pairs = padded_pairs(geometry);
        let rows = if wide { WIDE_ROWS } else { ROWS };
        let blocks = channels.div_ceil(rows);
        let mut panels = vec![0u32; blocks * pairs * rows];
        for block in 0..blocks {
            for q in 0..pairs {
                for r in 0..rows {
                    let m = block * rows + r;
                    panels[(block * pairs + q) * rows + r] = pair(at(m, 2 * q), at(m, 2 * q + 1));
                }
            }
        }
        let sums = (0..channels).map(|m| values[m * depth..(m + 1) * depth].iter().map(|v| *v as i32).sum()).collect();
        PackedWeights { channels, rows, pairs, panels, sums }
    }
}

/// How each output channel's integer sum becomes its f32 output,
/// `(acc − x_zp · Σw) as f32 · scale + bias`, and where it goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Epilogue {
    pub zero_point: i32,
    pub scales: Vec<f32>,
    pub bias: Vec<f32>,
    /// Whether the integer sums are written as they are instead (their bits in the f32 slots):
    /// the matrix products of [`super::winograd`], whose outputs come from sixteen of them.
    pub raw: bool,
}

impl Epilogue {
    #[inline]
    pub fn scalar(&self, m: usize, acc: i32, sum: i32) -> f32 {
        if self.raw {
            return f32::from_bits(acc as u32);
        }
        (acc.wrapping_sub(self.zero_point.wrapping_mul(sum))) as f32 * self.scales[m] + self.bias[m]
    }
}

/// Where output (channel m, pixel p) of one image goes: `m · channel_stride + p · pixel_stride`.
#[derive(Clone, Copy, Debug)]
pub struct Strides {
    pub channel: usize,
    pub pixel: usize,
}

impl Strides {
    pub fn of(layout: Layout, channels: usize, pixels: usize) -> Strides {
        match layout {
            Layout::Planar => Strides { channel: pixels, pixel: 1 },
            Layout::Interleaved => Strides { channel: 1, pixel: channels },
        }
    }
}

/// The packed im2col matrix of an interleaved (HWC) image, with kernels `K`.
pub fn pack_interleaved<K: ConvKernels, T: Int8>(x: &[T], geometry: &Geometry, zero_point: i32) -> Vec<i16> {
    pack_interleaved_bytes::<K>(T::bytes(x), T::UNSIGNED, geometry, zero_point)
}

/// [`pack_interleaved`] over the values' bytes (one instance for u8 and i8).
fn pack_interleaved_bytes<K: ConvKernels>(x: &[u8], unsigned: bool, geometry: &Geometry, zero_point: i32) -> Vec<i16> {
    let values = geometry.channels * geometry.input[0] * geometry.input[1];
    let widen = |slots: &mut [MaybeUninit<i16>]| K::widen(&x[..values], unsigned, slots);
    if is_pointwise(geometry) {
        return written(pointwise_len(geometry), values, widen);
    }
    from_interleaved::<K>(&written(values, values, widen), geometry, zero_point)
}

/// The packed im2col matrix of a planar (CHW) image, with kernels `K`: by transposition rather
/// than a gather per tap and pixel (scalar code costs some forty instructions a value under the
/// IC's metering). Channel counts that are a multiple of eight interleave the image, then pack
/// it as an interleaved one; the others (an image's three colour planes, whose transposition
/// and runs would go one value at a time) build the im2col matrix planar, row segments at a
/// time, then transpose it whole.
pub fn pack_planar<K: ConvKernels, T: Int8>(x: &[T], geometry: &Geometry, zero_point: i32) -> Vec<i16> {
    pack_planar_bytes::<K>(T::bytes(x), T::UNSIGNED, geometry, zero_point)
}

/// [`pack_planar`] over the values' bytes (one instance for u8 and i8).
fn pack_planar_bytes<K: ConvKernels>(x: &[u8], unsigned: bool, geometry: &Geometry, zero_point: i32) -> Vec<i16> {
    let (channels, pixels) = (geometry.channels, geometry.input[0] * geometry.input[1]);
    let interleave = |slots: &mut [MaybeUninit<i16>]| K::interleave(x, unsigned, slots, channels, pixels);
    if is_pointwise(geometry) {
        return written(pointwise_len(geometry), channels * pixels, interleave);
    }
    if !channels.is_multiple_of(8) {
        let (depth, pixels) = (padded_pairs(geometry) * 2, geometry.pixels());
        let columns = planar_columns::<K>(x, geometry, zero_point);
        let len = pixels.div_ceil(PIXELS) * PIXELS * depth;
        return written(len, depth * pixels, |slots| K::interleave(&columns, unsigned, slots, depth, pixels));
    }
    from_interleaved::<K>(&written(channels * pixels, channels * pixels, interleave), geometry, zero_point)
}

/// The im2col matrix in planar form: row k (in the packed rows' (kernel row, kernel column,
/// channel) order, with zero-point rows up to [`padded_pairs`] pairs) holds tap k's input value
/// for every output pixel, gathered a row segment at a time; padding reads the zero point (whose
/// byte is the same whether it is read as u8 or i8).
fn planar_columns<K: ConvKernels>(x: &[u8], geometry: &Geometry, zero_point: i32) -> Vec<u8> {
    let (c, [h, w], [kh, kw], sx) = (geometry.channels, geometry.input, geometry.kernel, geometry.strides[1]);
    let ([oh, ow], pixels) = (geometry.output, geometry.pixels());
    let mut columns = vec![zero_point as u8; padded_pairs(geometry) * 2 * pixels];
    for ky in 0..kh {
        for kx in 0..kw {
            let (first, end, start) = geometry.columns_inside(kx);
            if first == end {
                continue;
            }
            for channel in 0..c {
                let row = ((ky * kw + kx) * c + channel) * pixels;
                for oy in 0..oh {
                    if let Some(iy) = geometry.input_row(oy, ky) {
                        let segment = &mut columns[row + oy * ow..][first..end];
                        K::gather(x, (channel * h + iy) * w + start, sx, segment);
                    }
                }
            }
        }
    }
    columns
}

/// For a 1×1 convolution of stride 1 without padding over a channel count that fills whole
/// kernel steps, the im2col matrix is the interleaved image itself (its rows rounded up to whole
/// groups of [`PIXELS`], [`pointwise_len`]).
fn is_pointwise(geometry: &Geometry) -> bool {
    geometry.kernel == [1, 1]
        && geometry.strides == [1, 1]
        && geometry.pad_before == [0, 0]
        && geometry.output == geometry.input
        && geometry.channels == padded_pairs(geometry) * 2
}

fn pointwise_len(geometry: &Geometry) -> usize {
    geometry.pixels().div_ceil(PIXELS) * PIXELS * geometry.channels
}

/// `len` values, of which `write` writes the first `count` (every one of them: a kernel's
/// `widen` or `interleave` of as many values) and the rest are zeros. Allocated uninitialised:
/// the IC charges a zeroed allocation's `memory.fill` one instruction a byte.
fn written(len: usize, count: usize, write: impl FnOnce(&mut [MaybeUninit<i16>])) -> Vec<i16> {
    let mut values = Vec::with_capacity(len);
    let slots = &mut values.spare_capacity_mut()[..len];
    // Debug builds (the native tests) start from a value no convolution test reads as a lucky
    // zero, so a value `write` missed shows in the comparison with the direct convolution.
    #[cfg(debug_assertions)]
    fill(slots, i16::MIN);
    write(&mut slots[..count]);
    fill(&mut slots[count..], 0);
    // SAFETY: the first `count` values are written by `write` (its contract above), the rest
    // just before.
    unsafe { values.set_len(len) };
    values
}

/// The packed im2col matrix of an image already widened and interleaved: one row per output
/// pixel, of K i16 in (kernel row, kernel column, channel) order, padded to [`padded_pairs`]
/// pairs and to whole groups of [`PIXELS`] rows of zeros. The K padding's values are written but
/// need not be zero (zeros, or the last kernel row's spill): the packed weights there are zero.
///
/// The image's rows are first given zero-point columns either side ([`padded_rows`]), so that
/// every kernel column of every output pixel reads inside a row: a kernel row of an output
/// pixel is then one contiguous run of `kw · C` values (`C` for each kernel column when the
/// kernel is dilated), copied for a whole output row by one call. Rows above and below the
/// image read the zero point.
///
/// The matrix is allocated uninitialised and every value written once: the IC charges a
/// zeroed allocation's `memory.fill` one instruction a byte, as much as copying the runs.
fn from_interleaved<K: ConvKernels>(image: &[i16], geometry: &Geometry, zero_point: i32) -> Vec<i16> {
    let (c, depth, pixels) = (geometry.channels, geometry.depth(), geometry.pixels());
    let ([kh, kw], [oh, ow]) = (geometry.kernel, geometry.output);
    let (sx, dx) = (geometry.strides[1], geometry.dilations[1]);
    let (rows, width) = padded_rows::<K>(image, geometry, zero_point);
    let (runs, run) = if dx == 1 { (1, kw * c) } else { (kw, c) };
    let stride = padded_pairs(geometry) * 2;
    let len = pixels.div_ceil(PIXELS) * PIXELS * stride;
    let mut packed = Vec::with_capacity(len);
    let slots = &mut packed.spare_capacity_mut()[..len];
    // Debug builds start from a value no test reads as a lucky zero, as in [`written`].
    #[cfg(debug_assertions)]
    fill(slots, i16::MIN);
    // A run rounded up to whole vectors, where what it spills over is written after it (the
    // pixel's next run, or its K padding) or is K padding, and its source holds the values read:
    // its tail then costs no value-by-value copy (a first layer's runs are 9 or 21 values).
    let rounded = run.next_multiple_of(8);
    let last_pixel = ow.saturating_sub(1) * sx * c;
    // The K padding (under eight values a pixel, whose weights are zero) as the last eight values
    // of each pixel's row, zeroed by one vector each before the last kernel row's runs write
    // over the real ones among them (and may spill into the padding, which is then that run's
    // source values, as good as zeros against zero weights): a fill value by value after the
    // runs cost some 160 instructions a pixel (a first layer's 12544 pixels, 2 M). Only when
    // that kernel row covers the real ones among the eight.
    let tail = 8.min(stride);
    let zero_tails = depth < stride && kw * c + (stride - depth) >= tail;
    for ky in 0..kh {
        if zero_tails && ky + 1 == kh {
            let zeros = [0i16; 8];
            let runs = Runs { from: 0, step: 0, stride, count: pixels, len: tail };
            K::copy_pixels(&zeros, &mut slots[stride - tail..], runs);
        }
        for oy in 0..oh {
            let output_row = &mut slots[oy * ow * stride + ky * kw * c..];
            match geometry.input_row(oy, ky) {
                None => {
                    for ox in 0..ow {
                        fill(&mut output_row[ox * stride..][..kw * c], zero_point as i16);
                    }
                }
                Some(iy) => {
                    for r in 0..runs {
                        let (from, at) = ((iy * width + r * dx) * c, ky * kw * c + r * run);
                        let spills = at + rounded <= stride && from + last_pixel + rounded <= rows.len();
                        let copied = if spills { rounded } else { run };
                        let runs = Runs { from, step: sx * c, stride, count: ow, len: copied };
                        K::copy_pixels(&rows, &mut output_row[r * run..], runs);
                    }
                }
            }
        }
    }
    if depth < stride && !zero_tails {
        for p in 0..pixels {
            fill(&mut slots[p * stride + depth..(p + 1) * stride], 0);
        }
    }
    fill(&mut slots[pixels * stride..], 0);
    // SAFETY: all `len` values are written above: each pixel's row holds its kernel rows
    // (copied, or filled for input rows outside the image; a run's spill past its end is
    // overwritten by the run written after it or lands in the K padding), and its K padding
    // (zeroed before the last kernel row, or filled after the runs); the rows past the last
    // pixel are filled whole.
    unsafe { packed.set_len(len) };
    packed
}

/// The interleaved image with zero-point columns left and right of each row: `pad_before`
/// columns, then the image's, then as many as the last output pixel's kernel reaches past the
/// image (none when the image needs no padding, which is then borrowed), and the padded width.
fn padded_rows<'a, K: ConvKernels>(image: &'a [i16], geometry: &Geometry, zero_point: i32) -> (Cow<'a, [i16]>, usize) {
    let (c, [h, w], left) = (geometry.channels, geometry.input, geometry.pad_before[1]);
    let (last_output, last_tap) = (geometry.output[1].saturating_sub(1), geometry.kernel[1].saturating_sub(1));
    let reach = last_output * geometry.strides[1] + last_tap * geometry.dilations[1] + 1;
    let width = reach.max(left + w);
    if width == w {
        return (Cow::Borrowed(image), w);
    }
    // Eight values more, for the last run rounded up to whole vectors. Only the padding columns
    // are filled with the zero point: `vec![zero_point; len]` of a zero point other than 0 is
    // filled a value at a time, some fifteen instructions each at the canister's opt-level (2.3 M
    // for opennsfw's first layer).
    let len = h * width * c + 8;
    let mut padded = Vec::with_capacity(len);
    let slots = &mut padded.spare_capacity_mut()[..len];
    let (right, zp) = ((width - left - w) * c, zero_point as i16);
    for iy in 0..h {
        let row = &mut slots[iy * width * c..][..width * c];
        fill(&mut row[..left * c], zp);
        K::copy_pixels(
            image,
            &mut row[left * c..],
            Runs { from: iy * w * c, step: 0, stride: 0, count: 1, len: w * c },
        );
        fill(&mut row[(left + w) * c..][..right], zp);
    }
    fill(&mut slots[h * width * c..], zp);
    // SAFETY: every row's padding columns and image columns are written above, then the eight
    // values after the last row.
    unsafe { padded.set_len(len) };
    (Cow::Owned(padded), width)
}

/// Initialised values seen as slots to overwrite.
pub(super) fn as_uninit(values: &mut [i16]) -> &mut [MaybeUninit<i16>] {
    // SAFETY: MaybeUninit<i16> has i16's layout, and only initialised values are written
    // through the slots (the kernels' copies), so `values` stays initialised.
    unsafe { &mut *(values as *mut [i16] as *mut [MaybeUninit<i16>]) }
}

fn fill(slots: &mut [MaybeUninit<i16>], value: i16) {
    for slot in slots {
        slot.write(value);
    }
}
