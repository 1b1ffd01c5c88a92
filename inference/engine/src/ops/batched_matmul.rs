//! [`BatchedMatMul`]: tract's f32 `EinSum` of two computed operands (a transformer's attention:
//! queries by keys, the probabilities by values) as one product per batch index by
//! [`crate::kernels::float_conv`]'s kernel, where tract packs both operands and runs its own
//! matrix product (`OptMatMul`, about 3.5 of the IC's instructions per multiply-accumulate on
//! these shapes, `benchmarks/profile.md`).
//!
//! Each product `C[m, n] = Σ_k A[m, k] · B[k, n]` reads A through the kernel's packed panels
//! (gathered from A's strides once per batch index, by 4 × 4 transposes of vectors where A's k
//! values are adjacent) and B in place when its n axis is contiguous (else transposed once into
//! a scratch matrix, by vectors where its k values are adjacent), and writes C in place when its
//! n axis is contiguous (else through a scratch matrix). The sums are the kernel's: from zero, in k
//! order by steps of four summed pairwise, so not tract's bits; the tests hold them within
//! rounding of tract's.
//!
//! The kernel's widest tile is [`WIDEST`] vectors of columns by two blocks of rows. A product
//! with fewer columns than that and more rows (attention's probabilities by values: as many
//! rows as tokens, as many columns as a head has dimensions) is computed transposed, `Cᵀ = Bᵀ ·
//! Aᵀ`, so that the tokens are the columns and the widest tile is used; so is a product whose
//! C has its rows adjacent and its columns apart, which is then written in place. Each output is
//! the same sum of the same products in the same order either way, so the same bits.
//!
//! Wired by [`crate::passes::batched_matmul`].

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::float_conv::im2col::transpose_into;
use crate::kernels::float_conv::{pack_strided, Activation, Best, FloatKernels, PackedFilters, LANES, ROWS, WIDEST};

/// Where one axis of the product lies in each operand: its length and its stride (in values)
/// in A, B and C, 0 where the axis is not one of that operand's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Axis {
    pub len: usize,
    pub strides: [usize; 3],
}

/// A product of f32 matrices for every index of its batch axes (see the module's
/// documentation).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BatchedMatMul {
    /// The rows of A and C.
    pub m: Axis,
    /// The columns of A, the rows of B.
    pub k: Axis,
    /// The columns of B and C.
    pub n: Axis,
    /// The axes every operand has, each product taking one index of each.
    pub batch: Vec<Axis>,
    /// The operands' shapes: A, B and C.
    pub shapes: [Vec<usize>; 3],
}

/// Strides of a contiguous row-major tensor of `shape`.
pub fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

impl BatchedMatMul {
    /// Multiply-accumulates of one evaluation.
    pub fn macs(&self) -> usize {
        self.batch.iter().map(|a| a.len).product::<usize>() * self.m.len * self.k.len * self.n.len
    }

    /// Where batch index `index` (flat, the batch axes in order, the last fastest) starts in A,
    /// B and C.
    fn offsets(&self, mut index: usize) -> [usize; 3] {
        let mut offsets = [0; 3];
        for axis in self.batch.iter().rev() {
            let i = index % axis.len;
            index /= axis.len;
            for (o, s) in offsets.iter_mut().zip(axis.strides) {
                *o += i * s;
            }
        }
        offsets
    }
}

impl Op for BatchedMatMul {
    fn name(&self) -> StaticName {
        "BatchedMatMul".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let batches: Vec<usize> = self.batch.iter().map(|a| a.len).collect();
        Ok(vec![format!("{batches:?} × [{}, {}] · [{}, {}]", self.m.len, self.k.len, self.k.len, self.n.len)])
    }

    op_as_typed_op!();
}

impl EvalOp for BatchedMatMul {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 2, "BatchedMatMul: {} inputs", inputs.len());
        for (input, shape) in inputs.iter().zip(&self.shapes) {
            ensure!(input.shape() == &shape[..], "BatchedMatMul: operand {:?}, planned {shape:?}", input.shape());
        }
        let (a, b) = (inputs[0].try_as_plain_ram()?, inputs[1].try_as_plain_ram()?);
        let (a, b) = (a.as_slice::<f32>()?, b.as_slice::<f32>()?);
        // SAFETY: f32 is a plain type; every value of C is written below before it is read (each
        // batch index's [m, n] block, the blocks covering all of C's indices).
        let mut output = unsafe { Tensor::uninitialized::<f32>(&self.shapes[2])? };
        {
            let mut plain = output.try_as_plain_ram_mut()?;
            self.products(a, b, plain.as_slice_mut::<f32>()?);
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl BatchedMatMul {
    /// Every batch index's product of `a` and `b` into `c`, transposed where that gives the
    /// kernel wider tiles (see the module's documentation).
    fn products(&self, a: &[f32], b: &[f32], c: &mut [f32]) {
        let wider = self.n.len < WIDEST * LANES && self.m.len > self.n.len;
        // C's rows adjacent and its columns apart (attention's scores laid out keys by queries):
        // transposed, C is written in place instead of through a scratch matrix.
        let in_place = self.n.strides[2] != 1 && self.m.strides[2] == 1;
        if wider || in_place {
            self.transposed().products_as_given(b, a, c)
        } else {
            self.products_as_given(a, b, c)
        }
    }

    /// The same product as `Cᵀ = Bᵀ · Aᵀ`: n and m exchanged, and the operands (each axis's
    /// strides in A and in B exchanged), C's places the same.
    fn transposed(&self) -> BatchedMatMul {
        let swap = |axis: Axis| Axis { len: axis.len, strides: [axis.strides[1], axis.strides[0], axis.strides[2]] };
        BatchedMatMul {
            m: swap(self.n),
            k: swap(self.k),
            n: swap(self.m),
            batch: self.batch.iter().copied().map(swap).collect(),
            shapes: [self.shapes[1].clone(), self.shapes[0].clone(), self.shapes[2].clone()],
        }
    }

    /// Every batch index's product of `a` and `b` into `c`, A's rows the kernel's.
    fn products_as_given(&self, a: &[f32], b: &[f32], c: &mut [f32]) {
        let (m, k, n) = (self.m, self.k, self.n);
        let batches = self.batch.iter().map(|a| a.len).product::<usize>();
        if c.is_empty() {
            return;
        }
        if k.len == 0 {
            c.fill(0.0);
            return;
        }
        let mut filters = PackedFilters {
            channels: m.len,
            depth: k.len,
            panels: vec![0f32; m.len.div_ceil(ROWS) * k.len * ROWS],
            bias: vec![0f32; m.len.div_ceil(ROWS) * ROWS],
            bias_per_column: false,
        };
        let b_in_place = n.strides[1] == 1;
        let c_in_place = n.strides[2] == 1;
        let mut b_scratch = if b_in_place { Vec::new() } else { vec![0f32; k.len * n.len] };
        let mut c_scratch = if c_in_place { Vec::new() } else { vec![0f32; m.len * n.len] };
        for index in 0..batches {
            let [at_a, at_b, at_c] = self.offsets(index);
            pack_strided(&a[at_a..], m.len, k.len, [m.strides[0], k.strides[0]], &mut filters.panels);
            let (b_rows, ldb) = if b_in_place {
                (&b[at_b..], k.strides[1])
            } else {
                if k.strides[1] == 1 && k.len <= n.strides[1] {
                    // B's rows along n, each k values long: transposed by vectors.
                    transpose_into(&b[at_b..], n.len, k.len, n.strides[1], &mut b_scratch, n.len);
                } else {
                    for kk in 0..k.len {
                        for nn in 0..n.len {
                            b_scratch[kk * n.len + nn] = b[at_b + kk * k.strides[1] + nn * n.strides[1]];
                        }
                    }
                }
                (&b_scratch[..], n.len)
            };
            if c_in_place {
                Best::multiply(&filters, b_rows, ldb, n.len, Activation::Identity, &mut c[at_c..], m.strides[2]);
            } else {
                Best::multiply(&filters, b_rows, ldb, n.len, Activation::Identity, &mut c_scratch, n.len);
                if m.strides[2] == 1 && m.len <= n.strides[2] {
                    // C's rows along m (a transposed product's): the scratch transposed by vectors.
                    transpose_into(&c_scratch, m.len, n.len, n.len, &mut c[at_c..], n.strides[2]);
                    continue;
                }
                for mm in 0..m.len {
                    for nn in 0..n.len {
                        c[at_c + mm * m.strides[2] + nn * n.strides[2]] = c_scratch[mm * n.len + nn];
                    }
                }
            }
        }
    }
}

impl TypedOp for BatchedMatMul {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        for (input, shape) in inputs.iter().zip(&self.shapes) {
            ensure!(input.datum_type == f32::datum_type(), "BatchedMatMul of {:?}", input.datum_type);
            ensure!(input.shape.as_concrete() == Some(&shape[..]), "BatchedMatMul: operand {:?}", input.shape);
        }
        Ok(tvec!(f32::fact(&self.shapes[2])))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        Ok(tvec!((Cost::FMA(f32::datum_type()), self.macs().into())))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A direct product of the same operands, for comparison.
    fn direct(op: &BatchedMatMul, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut c = vec![f32::NAN; op.shapes[2].iter().product()];
        let batches = op.batch.iter().map(|a| a.len).product::<usize>();
        for index in 0..batches {
            let [at_a, at_b, at_c] = op.offsets(index);
            for m in 0..op.m.len {
                for n in 0..op.n.len {
                    let sum: f64 = (0..op.k.len)
                        .map(|k| {
                            a[at_a + m * op.m.strides[0] + k * op.k.strides[0]] as f64
                                * b[at_b + k * op.k.strides[1] + n * op.n.strides[1]] as f64
                        })
                        .sum();
                    c[at_c + m * op.m.strides[2] + n * op.n.strides[2]] = sum as f32;
                }
            }
        }
        c
    }

    /// Attention's two products as tract declutters them (queries `[m, b, k]` by keys `[n, b, k]`
    /// into `[1, b, m, n]`; probabilities `[1, b, m, k]` by values `[k, b, n]` into `[1, m, b,
    /// n]`), with B transposed, B in place, C in place and C scattered, row counts of and not of
    /// whole blocks: every output within rounding of a direct product in f64, every value of C
    /// written; computed as given or transposed (the probabilities by values are, by the
    /// kernel's widths), the same bits.
    #[test]
    fn attentions_products_equal_a_direct_product() {
        for (tokens, heads, depth) in [(9usize, 2usize, 5usize), (16, 3, 8), (33, 2, 20)] {
            let qk = BatchedMatMul {
                m: Axis { len: tokens, strides: [heads * depth, 0, tokens] },
                k: Axis { len: depth, strides: [1, 1, 0] },
                n: Axis { len: tokens, strides: [0, heads * depth, 1] },
                batch: vec![Axis { len: heads, strides: [depth, depth, tokens * tokens] }],
                shapes: [vec![tokens, heads, depth], vec![tokens, heads, depth], vec![1, heads, tokens, tokens]],
            };
            let context = BatchedMatMul {
                m: Axis { len: tokens, strides: [tokens, 0, heads * depth] },
                k: Axis { len: tokens, strides: [1, heads * depth, 0] },
                n: Axis { len: depth, strides: [0, 1, 1] },
                batch: vec![Axis { len: heads, strides: [tokens * tokens, depth, depth] }],
                shapes: [vec![1, heads, tokens, tokens], vec![tokens, heads, depth], vec![1, tokens, heads, depth]],
            };
            // C with a strided n axis: [n, m] per batch.
            let transposed = BatchedMatMul {
                m: Axis { len: tokens, strides: [depth, 0, 1] },
                k: Axis { len: depth, strides: [1, tokens, 0] },
                n: Axis { len: tokens, strides: [0, 1, tokens] },
                batch: vec![Axis { len: heads, strides: [tokens * depth, tokens * depth, tokens * tokens] }],
                shapes: [vec![heads, tokens, depth], vec![heads, depth, tokens], vec![heads, tokens, tokens]],
            };
            for op in [qk, context, transposed] {
                let value = |i: usize| ((i * 37 % 101) as f32 - 50.0) / 16.0;
                let a: Vec<f32> = (0..op.shapes[0].iter().product()).map(value).collect();
                let b: Vec<f32> = (0..op.shapes[1].iter().product()).map(|i| value(i + 11)).collect();
                let got = op
                    .eval(
                        &EvalContext::out_of_plan(),
                        tvec!(
                            tensor1(&a).into_shape(&op.shapes[0]).unwrap().into(),
                            tensor1(&b).into_shape(&op.shapes[1]).unwrap().into()
                        ),
                    )
                    .unwrap();
                let got = got[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
                let want = direct(&op, &a, &b);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{op:?}: C[{i}] = {g}, directly {w}");
                }
                // Transposed or not, the same sums in the same order: the same bits.
                let mut as_given = vec![f32::NAN; got.len()];
                op.products_as_given(&a, &b, &mut as_given);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&as_given), "{op:?}");
                let mut transposed = vec![f32::NAN; got.len()];
                op.transposed().products_as_given(&b, &a, &mut transposed);
                assert_eq!(bits(&transposed), bits(&as_given), "{op:?} transposed");
            }
        }
    }
}
