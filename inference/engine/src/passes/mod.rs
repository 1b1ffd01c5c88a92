//! Passes over tract's typed model, and the one ordered [`PIPELINE`] that [`crate::model::load`]
//! runs them in.
//!
//! [`crate::model::load`] parses the ONNX graph (after [`crate::onnx::prepare`]'s raw-graph
//! rewrites), types it, and then takes the model through tract's two transformations, running
//! the passes of each [`Stage`] at its point:
//!
//! ```text
//! typed model ─ Stage::Typed passes ─ into_decluttered ─ Stage::Decluttered passes
//!             ─ into_optimized ─ Stage::Optimized passes ─ plan
//! ```
//!
//! Within a stage, passes run in the order they appear in [`PIPELINE`]; the list is kept in
//! execution order (a test checks its stages never go backwards), so reading it top to bottom
//! is reading what `load` does. Every pass gets the same [`Context`]: what was read from the ONNX
//! graph before tract folded it, and the model's weight format.
//!
//! The passes today, in order:
//! 1. [`quantized_softmax::QuantizedSoftmaxGuard`] (typed): keeps declutter from folding a
//!    quantized Softmax into a per-element lookup table.
//! 2. [`f16_to_f32::F16ToF32`] (typed): f16 weights computed in f32, for F16 models, before
//!    declutter, so the passes after it see the f32 model's graph.
//! 3. [`depthwise::DepthwiseRewrite`] (typed): f32 depthwise convolutions with constant filters
//!    (or filters dequantized from constants, a QDQ model's) onto [`crate::ops::depthwise::Depthwise`] before declutter, so tract keeps the graph planar
//!    instead of moving it channels-last for its own depthwise kernel.
//! 4. [`integer_conv::IntegerConvRewrite`] (decluttered): int8 convolutions onto
//!    [`crate::ops::integer_conv::IntegerConv`]; int8 models' depthwise ones
//!    onto [`crate::ops::integer_depthwise::IntegerDepthwise`] ([`integer_depthwise`]); for
//!    dynamic models' other grouped ones, tract's f32 convolution between [`crate::ops::layout`]'s
//!    shift and transpose.
//! 5. [`integer_matmul::IntegerMatMulRewrite`] (decluttered): dynamic int8 matrix products by
//!    constant weights (`MatMulInteger`, a transformer's linear layers) onto the same
//!    [`crate::ops::integer_conv::IntegerConv`], as 1×1 convolutions.
//! 6. [`float_conv::FloatConvRewrite`] (decluttered): the remaining one-group f32 convolutions
//!    onto [`crate::ops::float_conv::FloatConv`], a following ReLU fused; the depthwise ones
//!    onto [`crate::ops::depthwise::Depthwise`] (those left), batch norms and activations fused.
//! 7. [`batched_matmul::BatchedMatMulRewrite`] (decluttered): f32 matrix products of two
//!    computed operands per batch index (a transformer's attention) onto
//!    [`crate::ops::batched_matmul::BatchedMatMul`].
//! 8. [`qdq::QdqAccelerate`] (optimized): quantize/dequantize onto [`crate::ops::qdq::Qdq`],
//!    quantize → dequantize pairs fused.
//! 9. [`dynamic_quantize::DynamicQuantizeAccelerate`] (optimized): `DynamicQuantizeLinear` onto
//!    [`crate::ops::dynamic_quantize::SimdDynamicQuantize`].
//! 10. [`strided_copy::StridedCopyAccelerate`] (optimized): f32 `Downsample` onto
//!     [`crate::ops::strided_copy::StridedCopy`].
//! 11. [`max_pool::MaxPoolAccelerate`] (optimized): 2-D f32 max pools over planar images onto
//!     [`crate::ops::max_pool::PlanarMaxPool`].
//! 12. [`byte_max_pool::BytePools`] (optimized): a max pool between a fake-quantize and the
//!     quantize back to its bytes onto the quantize and a pool of the bytes.
//! 13. [`pool_sum::PoolSumAccelerate`] (optimized): f32 sums over an image's pixels (global
//!     average pools) onto [`crate::ops::pool_sum::PoolSum`].
//! 14. [`lookup::LookupTables`] (optimized): a quantize → dequantize and the run of elementwise
//!     nodes computing from its values alone onto a quantize read through a 256-entry table,
//!     [`crate::ops::lookup::Lookup`].
//! 15. [`residual_add::ResidualAddFusion`] (optimized): an f32 add between dequantizes (or
//!     quantize-dequantizes) and a quantize onto one [`crate::ops::qdq::Conversion::ResidualAdd`].
//! 16. [`conv_lookup::ConvLookupFusion`] (optimized): a table lookup of bytes after an integer
//!     convolution or an int8 depthwise one into its epilogue (the `lookup` of
//!     [`crate::ops::integer_conv::IntegerConv`] and [`crate::ops::integer_depthwise::IntegerDepthwise`]).
//! 17. [`channel_scale::ChannelScaleAccelerate`] (optimized): f32 products by one value per
//!     channel (squeeze-and-excitation blocks' scales) onto
//!     [`crate::ops::channel_scale::ChannelScale`].
//! 18. [`gelu::GeluAccelerate`] (optimized): f32 `GeluExact` (tract's fusion of GELU without
//!     approximation) onto [`crate::ops::gelu::Gelu`].
//! 19. [`softmax::SoftmaxAccelerate`] (optimized): f32 softmaxes over a last axis of whole
//!     vectors onto [`crate::ops::softmax::RowSoftmax`].
//! 20. [`attention_layout::AttentionLayout`] (optimized): attention's scores laid out keys by
//!     queries, their softmax down the columns ([`crate::ops::softmax::ColumnSoftmax`]), so that
//!     the values' product reads the probabilities where they lie.
//! 21. [`byte_table::ByteTableAccelerate`] (optimized): tract's `LookupTable`s of int8 values
//!     onto [`crate::ops::byte_table::ByteTable`].
//!
//! # Adding a pass
//!
//! 1. Write one file, `passes/my_pass.rs`, with a unit struct implementing [`Pass`]:
//!
//!    ```ignore
//!    use tract_onnx::prelude::*;
//!    use super::{Context, Pass, Stage};
//!
//!    /// What it does and why (the module doc of the file says more).
//!    pub struct MyPass;
//!
//!    impl Pass for MyPass {
//!        fn name(&self) -> &'static str { "my pass" }
//!        fn stage(&self) -> Stage { Stage::Decluttered }
//!        fn run(&self, model: &mut TypedModel, context: &Context) -> TractResult<usize> {
//!            // Rewrite `model`; answer how many nodes changed.
//!            Ok(0)
//!        }
//!    }
//!    ```
//!
//! 2. Add one line to [`PIPELINE`], `&my_pass::MyPass,`, at the point where it must run (among
//!    the passes of its stage; the list stays in stage order), and declare the module next to
//!    the others below (`mod my_pass;`).
//!
//! Choose the stage by what the pass needs to see: [`Stage::Typed`] for tract's operators as the
//! parser wired them (before declutter fuses or folds anything); [`Stage::Decluttered`] for the
//! simplified graph with tract's layout choices made (batch axes dropped, 1×1 convolutions as
//! einsums), where a rewrite stays visible to tract's optimiser; [`Stage::Optimized`] for the
//! final operators (a pass there replaces nodes one for one; the optimiser will not see its
//! result). If the pass needs something from the ONNX graph that tract's parse loses, read it in
//! [`crate::onnx`] and add it to [`Context`]. Note that [`crate::model::macs`] runs the
//! [`Stage::Typed`] passes too (and only those), before counting on the decluttered graph.
//!
//! A pass that puts one of ours in place of one of tract's operators, node for node, is
//! [`swap_operators`] with its own test of the node (most [`Stage::Optimized`] passes are).
//! New operators a pass wires go in [`crate::ops`], their loops in [`crate::kernels`].

mod attention_layout;
mod batched_matmul;
mod byte_max_pool;
mod byte_table;
mod channel_scale;
mod conv_lookup;
mod depthwise;
mod dynamic_quantize;
mod f16_to_f32;
mod float_conv;
mod gelu;
mod integer_conv;
mod integer_depthwise;
mod integer_matmul;
mod lookup;
mod max_pool;
mod pool_sum;
mod qdq;
mod quantized_softmax;
mod residual_add;
mod softmax;
mod strided_copy;

use tract_onnx::prelude::*;

use crate::onnx::quantized_weights::QuantizedWeights;
use crate::types::WeightFormat;

pub use attention_layout::AttentionLayout;
pub use batched_matmul::BatchedMatMulRewrite;
pub use byte_max_pool::BytePools;
pub use byte_table::ByteTableAccelerate;
pub use channel_scale::ChannelScaleAccelerate;
pub use conv_lookup::ConvLookupFusion;
pub use depthwise::DepthwiseRewrite;
pub use dynamic_quantize::DynamicQuantizeAccelerate;
pub use f16_to_f32::F16ToF32;
pub use float_conv::FloatConvRewrite;
pub use gelu::GeluAccelerate;
pub use integer_conv::IntegerConvRewrite;
pub use integer_matmul::IntegerMatMulRewrite;
pub use lookup::LookupTables;
pub use max_pool::MaxPoolAccelerate;
pub use pool_sum::PoolSumAccelerate;
pub use qdq::QdqAccelerate;
pub use quantized_softmax::QuantizedSoftmaxGuard;
pub use residual_add::ResidualAddFusion;
pub use softmax::SoftmaxAccelerate;
pub use strided_copy::StridedCopyAccelerate;

/// Where in the loading a pass runs: on the typed model as parsed, after tract's declutter, or
/// after tract's optimisation. In execution order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// The typed model as the parser wired it, before `into_decluttered`.
    Typed,
    /// After `into_decluttered`, before `into_optimized`.
    Decluttered,
    /// After `into_optimized`, before the plan is built.
    Optimized,
}

/// What every pass may read besides the model.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The int8 weights of the ONNX graph's convolutions, by `Conv` node name (tract folds them
    /// into f32 constants when it parses).
    pub weights: &'a QuantizedWeights,
    /// The model's weight format, as [`crate::model::inspect`] found it; `None` where the caller
    /// does not know it ([`crate::model::macs`], which runs only [`Stage::Typed`]).
    pub weight_format: Option<WeightFormat>,
}

/// A rewrite of tract's typed model at one [`Stage`] of [`crate::model::load`].
pub trait Pass: Sync {
    /// A short name, for errors and listings.
    fn name(&self) -> &'static str;
    /// When it runs.
    fn stage(&self) -> Stage;
    /// Rewrites `model`; answers how many nodes it changed (0: the model is as it was).
    fn run(&self, model: &mut TypedModel, context: &Context) -> TractResult<usize>;
}

/// Every pass, in the order they run (grouped by stage, stages in order).
pub const PIPELINE: &[&dyn Pass] = &[
    &QuantizedSoftmaxGuard,
    &F16ToF32,
    &DepthwiseRewrite,
    &IntegerConvRewrite,
    &IntegerMatMulRewrite,
    &FloatConvRewrite,
    &BatchedMatMulRewrite,
    &QdqAccelerate,
    &DynamicQuantizeAccelerate,
    &StridedCopyAccelerate,
    &MaxPoolAccelerate,
    &BytePools,
    &PoolSumAccelerate,
    &LookupTables,
    &ResidualAddFusion,
    &ConvLookupFusion,
    &ChannelScaleAccelerate,
    &GeluAccelerate,
    &SoftmaxAccelerate,
    &AttentionLayout,
    &ByteTableAccelerate,
];

/// Applies patches found on `model` as it was (they replace disjoint nodes), then drops what they
/// left unused; answers how many there were.
fn apply_all(model: &mut TypedModel, patches: Vec<TypedModelPatch>) -> TractResult<usize> {
    let count = patches.len();
    for patch in patches {
        patch.apply(model)?;
    }
    if count > 0 {
        *model = model.clone().into_compact()?;
    }
    Ok(count)
}

/// Gives each node for which `operator` answers one that operator instead of its own, node for
/// node: the same inputs, outputs and facts, only how the values are computed changes. Answers
/// how many. The passes at [`Stage::Optimized`] that put one of ours in place of one of tract's
/// are this loop with their own test of the node.
fn swap_operators<O: TypedOp>(
    model: &mut TypedModel,
    mut operator: impl FnMut(&TypedModel, &TypedNode) -> TractResult<Option<O>>,
) -> TractResult<usize> {
    let mut changed = 0;
    for id in 0..model.nodes().len() {
        if let Some(op) = operator(model, model.node(id))? {
            model.node_mut(id).op = Box::new(op);
            changed += 1;
        }
    }
    Ok(changed)
}

/// Whether every input and output of `node` holds f32 values (the f32 operators' first test).
fn all_f32(model: &TypedModel, node: &TypedNode) -> TractResult<bool> {
    let outputs = (0..node.outputs.len()).map(|slot| OutletId::new(node.id, slot));
    for outlet in node.inputs.iter().copied().chain(outputs) {
        if model.outlet_fact(outlet)?.datum_type != f32::datum_type() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Runs the passes of `stage`, in [`PIPELINE`] order.
pub fn run(stage: Stage, model: &mut TypedModel, context: &Context) -> TractResult<()> {
    for pass in PIPELINE.iter().filter(|p| p.stage() == stage) {
        pass.run(model, context)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipeline_is_listed_in_execution_order() {
        let stages: Vec<Stage> = PIPELINE.iter().map(|p| p.stage()).collect();
        assert!(stages.windows(2).all(|w| w[0] <= w[1]), "{stages:?}");
        let names: Vec<&str> = PIPELINE.iter().map(|p| p.name()).collect();
        assert_eq!(
            names,
            [
                "quantized softmax guard",
                "f16 to f32",
                "f32 depthwise convolutions",
                "integer convolutions",
                "integer matrix products",
                "f32 convolutions",
                "batched f32 matrix products",
                "qdq accelerate",
                "dynamic quantize accelerate",
                "strided copy accelerate",
                "max pool accelerate",
                "max pool on bytes",
                "pool sum accelerate",
                "lookup tables",
                "residual add fusion",
                "table lookups into integer convolutions",
                "channel scale accelerate",
                "gelu accelerate",
                "softmax accelerate",
                "attention scores keys by queries",
                "byte table accelerate",
            ]
        );
    }
}
