//! The reference: a direct convolution of the unpacked values; and the check of the kernels
//! against it, natively and (through the canister's self-test) on wasm.

use super::pack::{pack_interleaved, pack_planar, Epilogue, Geometry, Layout, PackedWeights, Strides};
use super::winograd::{self, WinogradWeights};
use super::{Best, ConvKernels};
use crate::kernels::qdq::{ByteLookup, Quantize};
use crate::kernels::Int8;
use tract_onnx::prelude::{Datum, DatumType};

/// A direct convolution in i64 of a planar (CHW) image `x` (its values widened to i32) by
/// ONNX-ordered weights `w` (`[m, C, kh, kw]`), each output `epilogue`'d; planar output
/// `[m, oh, ow]`. Padding reads the zero point.
pub fn direct(x: &[i32], w: &[i8], g: &Geometry, m: usize, epilogue: &Epilogue) -> Vec<f32> {
    let [h, wd] = g.input;
    let [kh, kw] = g.kernel;
    let [oh, ow] = g.output;
    let mut out = vec![0f32; m * oh * ow];
    for o in 0..m {
        let mut sum = 0i32;
        for k in 0..g.depth() {
            sum += w[o * g.depth() + k] as i32;
        }
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0i64;
                for c in 0..g.channels {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * g.strides[0] + ky * g.dilations[0]) as isize - g.pad_before[0] as isize;
                            let ix = (ox * g.strides[1] + kx * g.dilations[1]) as isize - g.pad_before[1] as isize;
                            let v = if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                x[(c * h + iy as usize) * wd + ix as usize]
                            } else {
                                epilogue.zero_point
                            };
                            acc += v as i64 * w[((o * g.channels + c) * kh + ky) * kw + kx] as i64;
                        }
                    }
                }
                out[o * oh * ow + oy * ow + ox] = epilogue.scalar(o, acc as i32, sum);
            }
        }
    }
    out
}

/// `values` of a `[channels, pixels]` planar image, in `layout`.
pub fn laid_out<T: Copy>(values: &[T], channels: usize, layout: Layout) -> Vec<T> {
    let pixels = values.len() / channels;
    match layout {
        Layout::Planar => values.to_vec(),
        Layout::Interleaved => (0..values.len()).map(|i| values[(i % channels) * pixels + i / channels]).collect(),
    }
}

/// Packs `x` (held in `layouts[0]`) and runs kernel `K`, writing `layouts[1]`; answers the output
/// in planar order.
pub fn packed_and_multiplied<K: ConvKernels, T: Int8>(
    x: &[T],
    w: &[i8],
    geometry: &Geometry,
    m: usize,
    epilogue: &Epilogue,
    layouts: [Layout; 2],
) -> Vec<f32> {
    let pixels = geometry.pixels();
    let weights = PackedWeights::for_image(&w.iter().map(|v| *v as i16).collect::<Vec<_>>(), geometry, m);
    let strides = Strides::of(layouts[1], m, pixels);
    let mut out = vec![f32::NAN; m * pixels];
    let packed = match layouts[0] {
        Layout::Planar => pack_planar::<K, T>(x, geometry, epilogue.zero_point),
        Layout::Interleaved => pack_interleaved::<K, T>(x, geometry, epilogue.zero_point),
    };
    K::multiply(&weights, &packed, pixels, epilogue, strides, &mut out);
    match layouts[1] {
        Layout::Planar => out,
        Layout::Interleaved => (0..out.len()).map(|i| out[(i % pixels) * m + i / pixels]).collect(),
    }
}

/// [`packed_and_multiplied`] through [`ConvKernels::multiply_looked_up`] into outputs that start
/// as `initial`: the bytes out, in planar order.
#[allow(clippy::too_many_arguments)]
pub fn packed_and_looked_up<K: ConvKernels, T: Int8>(
    x: &[T],
    w: &[i8],
    geometry: &Geometry,
    m: usize,
    epilogue: &Epilogue,
    lookup: &ByteLookup,
    layouts: [Layout; 2],
    initial: u8,
) -> Vec<u8> {
    let pixels = geometry.pixels();
    let weights = PackedWeights::for_image(&w.iter().map(|v| *v as i16).collect::<Vec<_>>(), geometry, m);
    let strides = Strides::of(layouts[1], m, pixels);
    let mut out = vec![initial; m * pixels];
    let packed = match layouts[0] {
        Layout::Planar => pack_planar::<K, T>(x, geometry, epilogue.zero_point),
        Layout::Interleaved => pack_interleaved::<K, T>(x, geometry, epilogue.zero_point),
    };
    K::multiply_looked_up(&weights, &packed, pixels, epilogue, lookup, strides, &mut out);
    match layouts[1] {
        Layout::Planar => out,
        Layout::Interleaved => (0..out.len()).map(|i| out[(i % pixels) * m + i / pixels]).collect(),
    }
}

/// [`winograd::convolve`] of `x` (held in `layouts[0]`) with kernel `K`, writing `layouts[1]`;
/// answers the output in planar order, or `None` if the convolution is not one it computes.
pub fn winograd_convolved<K: ConvKernels, T: Int8>(
    x: &[T],
    w: &[i8],
    geometry: &Geometry,
    m: usize,
    epilogue: &Epilogue,
    layouts: [Layout; 2],
) -> Option<Vec<f32>> {
    let pixels = geometry.pixels();
    let weights = WinogradWeights::new(&w.iter().map(|v| *v as i16).collect::<Vec<_>>(), geometry, m)?;
    let mut out = vec![f32::NAN; m * pixels];
    winograd::convolve::<K, T>(
        x,
        layouts[0],
        geometry,
        &weights,
        epilogue,
        Strides::of(layouts[1], m, pixels),
        &mut out,
    );
    Some(match layouts[1] {
        Layout::Planar => out,
        Layout::Interleaved => (0..out.len()).map(|i| out[(i % pixels) * m + i / pixels]).collect(),
    })
}

/// `len` values of a u8 image (`unsigned`) or an i8 one, for the checks: each seventh the
/// type's greatest, each thirteenth its least, the others drawn from `next`.
pub(crate) fn check_image(len: usize, unsigned: bool, next: &mut impl FnMut() -> i32) -> Vec<i32> {
    let (lo, hi) = if unsigned { (0, 255) } else { (-128, 127) };
    (0..len)
        .map(|i| {
            if i % 7 == 0 {
                hi
            } else if i % 13 == 0 {
                lo
            } else {
                lo + next().rem_euclid(hi - lo + 1)
            }
        })
        .collect()
}

/// The checks' epilogue of `m` channels, for a u8 image (`unsigned`) or an i8 one.
pub(crate) fn check_epilogue(m: usize, unsigned: bool) -> Epilogue {
    Epilogue {
        zero_point: if unsigned { 131 } else { -3 },
        scales: (0..m).map(|o| 0.0123 * (o + 1) as f32).collect(),
        bias: (0..m).map(|o| o as f32 * -0.37).collect(),
        raw: false,
    }
}

/// Compares [`Best`] with [`direct`], as [`check_kernels`] does: simd128 in the canister (which
/// never runs the scalar kernels, so its code space is not spent checking them), scalar natively.
pub fn check() -> Result<(), String> {
    check_kernels::<Best>()
}

/// Compares kernel `K` with a direct convolution,
/// bit for bit, for every input and output layout, over geometries that exercise every tail:
/// odd K, channel counts not a multiple of four and multiples of sixteen (the wide blocks), pixel counts not a multiple of eight, padding
/// wider than the kernel, strides and dilations, u8 and i8 inputs at their extremes. An error
/// names the first case that differs.
pub fn check_kernels<K: ConvKernels>() -> Result<(), String> {
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
        // A kernel column that reads no input column of any output pixel.
        (2, [3, 1], [3, 3], [2, 2], [1, 1], [1, 1], 3),
        // Channel counts that take the wide (sixteen-channel) blocks.
        (5, [3, 7], [3, 3], [1, 1], [1, 1], [1, 1], 16),
        (24, [2, 3], [1, 1], [1, 1], [1, 1], [0, 0], 32),
        // Pairs of wide blocks (32 channels a tile): two pairs; a pair and a block left over,
        // with a turn of four steps and steps after it (K = 40: twenty pairs), an odd number of
        // groups and a last one of three pixels.
        (8, [3, 8], [1, 1], [1, 1], [1, 1], [0, 0], 64),
        (40, [3, 9], [1, 1], [1, 1], [1, 1], [0, 0], 48),
        // A last group of three pixels, one of two and one of one (the looked-up epilogue's tails).
        (16, [3, 5], [1, 1], [1, 1], [1, 1], [0, 0], 16),
        (16, [2, 3], [1, 1], [1, 1], [1, 1], [0, 0], 16),
        // An odd number of groups: the wide kernel's last group through its one-group tile
        // (for both blocks of a pair), its one pixel the epilogue's tail.
        (16, [1, 17], [1, 1], [1, 1], [1, 1], [0, 0], 32),
        // One pixel (a head): four-channel blocks for a channel count of the wide ones, one
        // accumulator a block; a turn of four steps and a step after it, and a last block of
        // two channels.
        (24, [1, 1], [1, 1], [1, 1], [1, 1], [0, 0], 32),
        (40, [1, 1], [1, 1], [1, 1], [1, 1], [0, 0], 10),
        // Whole 8 × 8 blocks of the packing's transposition, with channel and pixel edges; the
        // 1×1 ones over multiples of eight channels pack by the transposition alone.
        (16, [9, 7], [3, 3], [1, 1], [1, 1], [1, 1], 5),
        (12, [4, 6], [1, 1], [1, 1], [1, 1], [0, 0], 16),
        (40, [3, 11], [1, 1], [1, 1], [1, 1], [0, 0], 16),
        (8, [8, 9], [1, 1], [2, 2], [1, 1], [0, 0], 4),
        // Planar inputs of a few channels: im2col rows gathered sixteen and eight values a
        // vector, at strides 1 and 2. Interleaved ones: kernel rows copied as runs of kw · C
        // values (vectors of eight, then one at a time), runs of C values for each kernel
        // column of a dilated kernel, runs of whole four-vector steps (32 channels).
        (3, [6, 37], [3, 3], [2, 2], [1, 1], [1, 1], 16),
        (4, [6, 9], [3, 3], [1, 2], [1, 2], [1, 2], 8),
        (32, [5, 6], [3, 3], [1, 1], [1, 1], [1, 1], 16),
        (5, [3, 21], [3, 3], [2, 2], [1, 1], [1, 1], 4),
        (3, [3, 27], [3, 3], [1, 1], [1, 1], [1, 1], 8),
        // Winograd's (3×3, stride 1, C a multiple of 8): odd output sizes (tiles past the
        // edge), no padding and padding of two; rows of whole fours of tiles (the vector
        // path) and a tile after them.
        (8, [7, 9], [3, 3], [1, 1], [1, 1], [0, 0], 4),
        (16, [5, 4], [3, 3], [1, 1], [1, 1], [2, 2], 13),
        (8, [5, 18], [3, 3], [1, 1], [1, 1], [1, 1], 3),
        // One tile: each position's product is of one pixel, four-channel blocks.
        (8, [2, 2], [3, 3], [1, 1], [1, 1], [1, 1], 4),
    ];
    let mut seed = 12345u32;
    let mut next = move || {
        seed = seed.wrapping_mul(1103515245).wrapping_add(12345);
        (seed >> 16) as i32
    };
    let layouts = [Layout::Planar, Layout::Interleaved];
    let mut winograd_runs = 0;
    for (case, &(channels, input, kernel, strides, dilations, pad, m)) in cases.iter().enumerate() {
        let out_dim = |d: usize| (input[d] + 2 * pad[d] - dilations[d] * (kernel[d] - 1) - 1) / strides[d] + 1;
        let geometry =
            Geometry { channels, input, kernel, strides, dilations, pad_before: pad, output: [out_dim(0), out_dim(1)] };
        let w: Vec<i8> =
            (0..m * geometry.depth()).map(|i| if i % 11 == 0 { -128 } else { (next() % 256 - 128) as i8 }).collect();
        for unsigned in [true, false] {
            let x = check_image(channels * input[0] * input[1], unsigned, &mut next);
            let epilogue = check_epilogue(m, unsigned);
            let want: Vec<u32> = direct(&x, &w, &geometry, m, &epilogue).iter().map(|v| v.to_bits()).collect();
            for input_layout in layouts {
                for output_layout in layouts {
                    let x = laid_out(&x, channels, input_layout);
                    let (bytes, signed): (Vec<u8>, Vec<i8>) =
                        (x.iter().map(|v| *v as u8).collect(), x.iter().map(|v| *v as i8).collect());
                    let layouts = [input_layout, output_layout];
                    // A path of the convolution run on the input as its type (u8 or i8).
                    macro_rules! on_input {
                        ($path:ident) => {
                            if unsigned {
                                $path::<K, _>(&bytes, &w, &geometry, m, &epilogue, layouts)
                            } else {
                                $path::<K, _>(&signed, &w, &geometry, m, &epilogue, layouts)
                            }
                        };
                    }
                    let got = on_input!(packed_and_multiplied);
                    let kind = if unsigned { "u8" } else { "i8" };
                    if got.iter().map(|v| v.to_bits()).collect::<Vec<_>>() != want {
                        return Err(format!("integer convolution case {case} ({kind}, {input_layout:?} → {output_layout:?}, {}) differs from the direct convolution", std::any::type_name::<K>()));
                    }
                    // The outputs quantized (u8 and i8, some past either end) and read through
                    // a table of distinct bytes, in the kernel's epilogue.
                    for dt in [u8::datum_type(), i8::datum_type()] {
                        let lookup = ByteLookup {
                            quantize: Quantize {
                                inv_scale: 0.37,
                                zero_point: if dt == DatumType::U8 { 100 } else { -20 },
                                dt,
                            },
                            table: (0..=255u8).map(|b| b.wrapping_mul(37).wrapping_add(11)).collect(),
                        };
                        let expected: Vec<u8> = want.iter().map(|v| lookup.scalar(f32::from_bits(*v))).collect();
                        // Outputs starting as 0 and as 255: a byte left unwritten differs from
                        // its expected value in one of the two.
                        let differs = [0u8, 255].into_iter().any(|initial| {
                            let looked = if unsigned {
                                packed_and_looked_up::<K, _>(
                                    &bytes, &w, &geometry, m, &epilogue, &lookup, layouts, initial,
                                )
                            } else {
                                packed_and_looked_up::<K, _>(
                                    &signed, &w, &geometry, m, &epilogue, &lookup, layouts, initial,
                                )
                            };
                            looked != expected
                        });
                        if differs {
                            return Err(format!("integer convolution case {case} through a table ({kind}, {dt:?}, {input_layout:?} → {output_layout:?}, {}) differs from the direct convolution's outputs looked up", std::any::type_name::<K>()));
                        }
                    }
                    let winograd = on_input!(winograd_convolved);
                    winograd_runs += usize::from(winograd.is_some());
                    if winograd.is_some_and(|got| got.iter().map(|v| v.to_bits()).collect::<Vec<_>>() != want) {
                        return Err(format!("Winograd case {case} ({kind}, {input_layout:?} → {output_layout:?}, {}) differs from the direct convolution", std::any::type_name::<K>()));
                    }
                }
            }
        }
    }
    if winograd_runs == 0 {
        return Err("no case took Winograd's transforms".into());
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
