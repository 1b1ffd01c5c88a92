//! Fuses a quantize read through a table of bytes ([`Lookup`], a static int8 model's HardSwish)
//! into the integer convolution (or int8 depthwise convolution) whose f32 output it alone reads:
//! the convolution then writes the table's bytes as its epilogue finishes each group of sums,
//! where it wrote f32 values that the lookup read back (`benchmarks/NOTES.md`, "HardSwish tables in the integer convolution's
//! epilogue"). The kernel runs the same f32 operations in the same order, so the bytes are the
//! same (checked by the integer convolution kernels' check, and against onnxruntime by the
//! variant tests).

use tract_onnx::prelude::*;

use super::{Context, Pass, Stage};
use crate::kernels::activation::Activation;
use crate::kernels::depthwise::integer::covered;
use crate::kernels::integer_conv::pack::{Layout, WIDE_ROWS};
use crate::kernels::qdq::ByteLookup;
use crate::ops::integer_conv::IntegerConv;
use crate::ops::integer_depthwise::IntegerDepthwise;
use crate::ops::lookup::Lookup;

/// The pass: [`fuse`], after [`super::LookupTables`].
pub struct ConvLookupFusion;

impl Pass for ConvLookupFusion {
    fn name(&self) -> &'static str {
        "table lookups into integer convolutions"
    }

    fn stage(&self) -> Stage {
        Stage::Optimized
    }

    fn run(&self, model: &mut TypedModel, _: &Context) -> TractResult<usize> {
        fuse(model)
    }
}

/// Whether `conv`'s kernel would look its outputs up in its epilogue
/// ([`crate::kernels::integer_conv::ConvKernels::multiply_looked_up`]): the direct path's
/// sixteen-channel blocks into a planar output, without an activation or a lookup already.
/// Elsewhere the operator would look up an f32 buffer, which costs more than the separate lookup
/// (rapidocr_cls's four-channel blocks: `benchmarks/NOTES.md`).
fn fusable(conv: &IntegerConv) -> bool {
    conv.lookup.is_none()
        && conv.activation == Activation::Identity
        && conv.winograd.is_none()
        && conv.weights.rows == WIDE_ROWS
        && conv.output_layout == Layout::Planar
        && !conv.epilogue.raw
}

/// Fuses every lookup of a table of bytes whose input is an integer convolution's output read by
/// nothing else (not a model output): a convolution [`fusable`], or a depthwise one whose
/// geometry its kernel's vectors cover (elsewhere that kernel too looks up an f32 buffer);
/// answers how many.
pub fn fuse(model: &mut TypedModel) -> TractResult<usize> {
    // The convolutions, then the depthwise ones: a patch must not tap what another replaces,
    // and a depthwise convolution's input is often a fused convolution's lookup.
    Ok(fuse_into(model, false)? + fuse_into(model, true)?)
}

/// [`fuse`] into the integer convolutions, or into the depthwise ones.
fn fuse_into(model: &mut TypedModel, depthwise: bool) -> TractResult<usize> {
    let outputs = model.output_outlets()?.to_vec();
    let mut patches = Vec::new();
    for node in model.nodes() {
        let Some(lookup) = node.op_as::<Lookup>() else { continue };
        let dt = lookup.table.datum_type();
        if dt != DatumType::U8 && dt != DatumType::I8 || lookup.quantize.dt != dt {
            continue;
        }
        let input = node.inputs[0];
        if outputs.contains(&input) || model.outlet_successors(input).len() != 1 {
            continue;
        }
        let producer = model.node(input.node);
        let table = lookup.table.try_as_plain_ram()?.as_bytes().to_vec();
        let looked_up = Some(Arc::new(ByteLookup { quantize: lookup.quantize, table }));
        let fused: Box<dyn TypedOp> = match (producer.op_as::<IntegerConv>(), producer.op_as::<IntegerDepthwise>()) {
            (Some(conv), _) if !depthwise && fusable(conv) => {
                Box::new(IntegerConv { lookup: looked_up, ..conv.clone() })
            }
            (_, Some(op)) if depthwise && op.lookup.is_none() && covered(&op.filters.geometry) => {
                Box::new(IntegerDepthwise { lookup: looked_up, ..op.clone() })
            }
            _ => continue,
        };
        let mut patch = TypedModelPatch::new(format!("{} through {}", producer.name, node.name));
        let taps = producer.inputs.iter().map(|i| patch.tap_model(model, *i)).collect::<TractResult<TVec<_>>>()?;
        let y = patch.wire_node(&producer.name, fused, &taps)?[0];
        patch.shunt_outside(model, OutletId::new(node.id, 0), y)?;
        patches.push(patch);
    }
    super::apply_all(model, patches)
}
