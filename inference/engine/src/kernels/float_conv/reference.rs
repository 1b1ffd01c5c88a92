//! The reference: a direct f32 convolution summed in the kernel's order; and the check of the
//! kernels against it, natively and (through the canister's self-test) on wasm.

use super::im2col::{im2col, is_identity};
use super::{step, Activation, Best, FloatKernels, PackedFilters, UNROLL};
use crate::kernels::integer_conv::pack::{Geometry, Layout};
use crate::kernels::integer_conv::reference::laid_out;

/// A direct convolution of a planar (CHW) image `x` by ONNX-ordered filters `w` (`[m, C, kh,
/// kw]`): each output is its bias plus the products in (channel, kernel row, kernel column)
/// order by steps of four ([`step`]), a padded position contributing `0 · w`, then the fused
/// `activation`. Planar output
/// `[m, oh, ow]`.
pub fn direct(x: &[f32], w: &[f32], bias: &[f32], g: &Geometry, activation: Activation) -> Vec<f32> {
    let [h, wd] = g.input;
    let [kh, kw] = g.kernel;
    let [oh, ow] = g.output;
    let m = bias.len();
    let mut out = vec![0f32; m * oh * ow];
    for o in 0..m {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut products = vec![];
                for c in 0..g.channels {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * g.strides[0] + ky * g.dilations[0]) as isize - g.pad_before[0] as isize;
                            let ix = (ox * g.strides[1] + kx * g.dilations[1]) as isize - g.pad_before[1] as isize;
                            let v = if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                x[(c * h + iy as usize) * wd + ix as usize]
                            } else {
                                0.0
                            };
                            products.push(w[((o * g.channels + c) * kh + ky) * kw + kx] * v);
                        }
                    }
                }
                let mut acc = bias[o];
                let steps = products.chunks_exact(UNROLL);
                let rest = steps.remainder();
                for p in steps {
                    acc += step([p[0], p[1], p[2], p[3]]);
                }
                for p in rest {
                    acc += p;
                }
                out[o * oh * ow + oy * ow + ox] = activation.apply(acc);
            }
        }
    }
    out
}

/// Runs kernel `K` on `x` held in `layout` (through [`im2col`], or directly when the image is
/// its own matrix); answers the planar output.
pub fn multiplied<K: FloatKernels>(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    geometry: &Geometry,
    layout: Layout,
    activation: Activation,
) -> Vec<f32> {
    let (m, pixels) = (bias.len(), geometry.pixels());
    let filters = PackedFilters::new(w, m, bias);
    let mut out = vec![f32::NAN; m * pixels];
    if is_identity(geometry, layout) {
        K::multiply(&filters, x, pixels, pixels, activation, &mut out, pixels);
    } else {
        K::multiply(&filters, &im2col(x, geometry, layout), pixels, pixels, activation, &mut out, pixels);
    }
    out
}

/// Runs kernel `K` pixel-major on an interleaved image (`[pixels, C]` rows by the transposed
/// filters, a bias per column), as a 1×1 convolution from and to interleaved images does;
/// answers the planar output.
pub fn pixel_major<K: FloatKernels>(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    pixels: usize,
    activation: Activation,
) -> Vec<f32> {
    let (m, c) = (bias.len(), w.len() / bias.len());
    let transposed: Vec<f32> = (0..c * m).map(|i| w[(i % m) * c + i / m]).collect();
    let rows = PackedFilters::rows_of(x, pixels, c, bias.to_vec());
    let mut out = vec![f32::NAN; pixels * m];
    K::multiply(&rows, &transposed, m, m, activation, &mut out, m);
    (0..m * pixels).map(|i| out[(i % pixels) * m + i / pixels]).collect()
}

/// Compares [`Best`] with [`direct`], as [`check_kernels`] does: simd128 in the canister (which
/// never runs the scalar kernels, so its code space is not spent checking them), scalar natively.
pub fn check() -> Result<(), String> {
    super::im2col::check_transpose()?;
    check_kernels::<Best>()
}

/// Compares kernel `K` with a direct convolution, bit for bit, for both input layouts, with and
/// without ReLU, over geometries that exercise every tail: K not a multiple of the unroll,
/// channel counts not a multiple of eight (a pair of blocks whose second is partial, an odd
/// block after pairs), pixel counts that leave a narrow tile and a padded
/// vector, padding, strides and dilations, and the identity case (1×1 planar). An error names
/// the first case that differs.
pub fn check_kernels<K: FloatKernels>() -> Result<(), String> {
    let cases = [
        // channels, input, kernel, strides, dilations, pad, output channels
        (3, [5, 7], [3, 3], [1, 1], [1, 1], [1, 1], 5),
        (4, [6, 6], [1, 1], [1, 1], [1, 1], [0, 0], 8),
        (5, [9, 8], [3, 3], [2, 2], [1, 1], [1, 1], 3),
        (2, [7, 7], [3, 2], [1, 2], [2, 1], [2, 0], 6),
        (7, [1, 1], [1, 1], [1, 1], [1, 1], [0, 0], 1),
        (3, [4, 19], [3, 3], [1, 1], [1, 1], [1, 1], 4),
        (2, [2, 2], [2, 2], [1, 1], [3, 3], [3, 3], 2),
        (6, [3, 40], [1, 1], [1, 1], [1, 1], [0, 0], 9),
        (17, [5, 6], [3, 3], [2, 1], [1, 1], [1, 1], 7),
        (16, [4, 5], [1, 1], [1, 1], [1, 1], [0, 0], 12),
        (2, [3, 1], [3, 3], [2, 2], [1, 1], [1, 1], 3),
        (9, [4, 9], [1, 1], [1, 1], [1, 1], [0, 0], 17),
        (33, [6, 6], [1, 1], [1, 1], [1, 1], [0, 0], 24),
        // Two whole blocks a tile (sixteen channels by forty-eight columns), then the rest of
        // each block; K = 15 takes the tile's steps of four, then one, and K = 31 its every step
        // (sixteen, four, then one). Then two tiles whose second block has five channels, and
        // a narrow tail.
        (15, [8, 9], [1, 1], [1, 1], [1, 1], [0, 0], 16),
        (31, [8, 9], [1, 1], [1, 1], [1, 1], [0, 0], 16),
        (20, [7, 14], [1, 1], [1, 1], [1, 1], [0, 0], 13),
        // A 7 × 7 image's forty-nine columns: a tile of forty-eight, then one column at a time
        // for a pair of blocks (the second partial) and for an odd last block; and a 3×3
        // window's (K = 36, steps of four) partial vectors of one, two and three columns.
        (6, [7, 7], [1, 1], [1, 1], [1, 1], [0, 0], 21),
        (4, [5, 5], [3, 3], [1, 1], [1, 1], [1, 1], 17),
        (4, [3, 5], [3, 3], [1, 1], [1, 1], [1, 1], 9),
        (4, [3, 6], [3, 3], [1, 1], [1, 1], [1, 1], 10),
        // Pixel-major (1×1 on interleaved images, output channels a multiple of four): pixel
        // counts not a multiple of the eight-row block, channel counts with and without a
        // sixteen-column tile.
        (5, [3, 7], [1, 1], [1, 1], [1, 1], [0, 0], 20),
        (12, [2, 9], [1, 1], [1, 1], [1, 1], [0, 0], 4),
        // Rows gathered at stride 2 four values a vector (a first layer's im2col).
        (3, [5, 23], [3, 3], [2, 2], [1, 1], [1, 1], 4),
        // Strides that leave the image's last row and column unread (im2col's padded plane is
        // cropped, or the image read in place), and padding read on one side only.
        (4, [10, 10], [1, 1], [2, 2], [1, 1], [0, 0], 5),
        (3, [7, 9], [3, 3], [2, 2], [1, 1], [0, 0], 4),
        (2, [6, 6], [2, 2], [2, 2], [1, 1], [1, 1], 3),
    ];
    let mut seed = 2024u32;
    let mut next = move || {
        seed = seed.wrapping_mul(1103515245).wrapping_add(12345);
        ((seed >> 8) & 0xffff) as f32 / 32768.0 - 1.0
    };
    for (case, &(channels, input, kernel, strides, dilations, pad, m)) in cases.iter().enumerate() {
        let out_dim = |d: usize| (input[d] + 2 * pad[d] - dilations[d] * (kernel[d] - 1) - 1) / strides[d] + 1;
        let geometry =
            Geometry { channels, input, kernel, strides, dilations, pad_before: pad, output: [out_dim(0), out_dim(1)] };
        let w: Vec<f32> = (0..m * geometry.depth()).map(|_| next()).collect();
        let bias: Vec<f32> = (0..m).map(|_| next()).collect();
        let x: Vec<f32> = (0..channels * input[0] * input[1]).map(|_| next() * 3.0).collect();
        for activation in [Activation::Identity, Activation::Relu, Activation::HardSwish, Activation::HardSigmoidSwish]
        {
            let want: Vec<u32> = direct(&x, &w, &bias, &geometry, activation).iter().map(|v| v.to_bits()).collect();
            for layout in [Layout::Planar, Layout::Interleaved] {
                let held = laid_out(&x, channels, layout);
                let got = multiplied::<K>(&held, &w, &bias, &geometry, layout, activation);
                let pixel_major_fits =
                    kernel == [1, 1] && strides == [1, 1] && pad == [0, 0] && m.is_multiple_of(super::LANES);
                if layout == Layout::Interleaved && pixel_major_fits {
                    let got = pixel_major::<K>(&held, &w, &bias, geometry.pixels(), activation);
                    if got.iter().map(|v| v.to_bits()).collect::<Vec<_>>() != want {
                        return Err(format!(
                            "f32 convolution case {case} (pixel-major, {activation:?}, {}) differs from the direct convolution",
                            std::any::type_name::<K>()
                        ));
                    }
                }
                if got.iter().map(|v| v.to_bits()).collect::<Vec<_>>() != want {
                    return Err(format!(
                        "f32 convolution case {case} ({layout:?}, {activation:?}, {}) differs from the direct convolution",
                        std::any::type_name::<K>()
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernels_equal_a_direct_convolution() {
        super::check().unwrap();
    }
}
