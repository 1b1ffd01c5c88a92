//! Fuses a quantize read through a table of bytes ([`Lookup`], a static int8 model's HardSwish)
//! into the integer convolution (or int8 depthwise convolution) whose f32 output it alone reads:
//! the convolution then writes the table's bytes as its epilogue finishes each group of sums,
//! where it wrote f32 values that the lookup read back (`benchmarks/NOTES.md`, "HardSwish tables
//! in the integer convolution's epilogue"). The kernels run the same f32 operations in the same
//! order, so the bytes are the same: checked on simd128 by both kernels' checks in the
//! canister's self-test, and against onnxruntime by the variant tests.

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
/// sixteen-channel blocks into a planar output, or a colour image's first layer
/// ([`crate::kernels::integer_conv::three_planes`]), without an activation or a lookup already.
/// Elsewhere the operator would look up an f32 buffer, which costs more than the separate lookup
/// (rapidocr_cls's four-channel blocks: `benchmarks/NOTES.md`).
fn fusable(conv: &IntegerConv) -> bool {
    conv.lookup.is_none()
        && conv.activation == Activation::Identity
        && conv.winograd.is_none()
        && (conv.weights.rows == WIDE_ROWS || conv.three_planes())
        && conv.output_layout == Layout::Planar
        && !conv.epilogue.raw
}

/// Fuses every lookup of a table of bytes whose input is an integer convolution's output read by
/// nothing else (not a model output): a convolution [`fusable`], or a depthwise one whose
/// geometry its kernel's vectors cover (elsewhere that kernel too looks up an f32 buffer);
/// answers how many.
pub fn fuse(model: &mut TypedModel) -> TractResult<usize> {
    // The convolutions, then the depthwise ones, each until none is left: a patch must not tap
    // a lookup that another patch of its round replaces (tract empties the lookup's outputs when
    // it applies that patch), so a convolution reading a lookup fused in this round waits for
    // the next round.
    let mut fused = 0;
    for depthwise in [false, true] {
        loop {
            let round = fuse_into(model, depthwise)?;
            fused += round;
            if round == 0 {
                break;
            }
        }
    }
    Ok(fused)
}

/// [`fuse`] into the integer convolutions, or into the depthwise ones.
fn fuse_into(model: &mut TypedModel, depthwise: bool) -> TractResult<usize> {
    let outputs = model.output_outlets()?.to_vec();
    let mut patches = Vec::new();
    // The lookups this round's patches replace.
    let mut replaced: Vec<usize> = Vec::new();
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
        if producer.inputs.iter().any(|i| replaced.contains(&i.node)) {
            continue;
        }
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
        replaced.push(node.id);
    }
    super::apply_all(model, patches)
}

#[cfg(test)]
mod tests {
    use super::super::integer_conv::{operator, Side};
    use super::*;
    use crate::kernels::integer_conv::pack::{Epilogue, Geometry, Layout};
    use crate::kernels::qdq::Quantize;
    use crate::ops::integer_conv::Runtime;

    /// A 1×1 convolution of `channels` planar 3×5 channels into `m` (sixteen-channel blocks).
    fn convolution(channels: usize, m: usize) -> IntegerConv {
        let geometry = Geometry {
            channels,
            input: [3, 5],
            kernel: [1, 1],
            strides: [1, 1],
            dilations: [1, 1],
            pad_before: [0, 0],
            output: [3, 5],
        };
        convolution_of(geometry, m)
    }

    /// A convolution of `geometry` into `m` channels, planar in and out.
    fn convolution_of(geometry: Geometry, m: usize) -> IntegerConv {
        let weights: Vec<i16> = (0..m * geometry.depth()).map(|i| ((i * 37 + 5) % 255) as i16 - 127).collect();
        let epilogue = Epilogue {
            zero_point: 7,
            scales: (0..m).map(|o| 0.01 + o as f32 * 0.001).collect(),
            bias: (0..m).map(|o| o as f32 * 0.1 - 0.5).collect(),
            raw: false,
        };
        let side = Side { batch: false, layout: Layout::Planar };
        operator(&weights, geometry, epilogue, [side, side], Runtime::default())
    }

    /// A quantize to u8 read through a table of distinct bytes.
    fn lookup() -> Lookup {
        let table: Vec<u8> = (0..=255u8).map(|b| b.wrapping_mul(91).wrapping_add(3)).collect();
        Lookup {
            quantize: Quantize { inv_scale: 2.0, zero_point: 100, dt: u8::datum_type() },
            table: Arc::new(tensor1(&table)),
        }
    }

    fn run(model: &TypedModel) -> Tensor {
        let input: Vec<u8> = (0..16 * 15).map(|i| (i * 53 % 256) as u8).collect();
        let input = Tensor::from_shape(&[16, 3, 5], &input).unwrap();
        let plan = model.clone().into_runnable().unwrap();
        plan.run(tvec!(input.into_tvalue())).unwrap().remove(0).into_tensor()
    }

    /// Two convolutions, each followed by a table, the second reading the first's: the second
    /// waits for the next round (in one round tract would have emptied the lookup it taps), and
    /// the bytes out are the same.
    #[test]
    fn a_chain_of_convolutions_and_tables_fuses_in_rounds_with_the_same_bytes() {
        let mut model = TypedModel::default();
        let x = model.add_source("x", u8::fact([16, 3, 5])).unwrap();
        let a = model.wire_node("a", convolution(16, 16), &[x]).unwrap()[0];
        let a = model.wire_node("a.lookup", lookup(), &[a]).unwrap()[0];
        let b = model.wire_node("b", convolution(16, 32), &[a]).unwrap()[0];
        let b = model.wire_node("b.lookup", lookup(), &[b]).unwrap()[0];
        model.select_output_outlets(&[b]).unwrap();
        let before = run(&model);
        assert_eq!(fuse(&mut model).unwrap(), 2);
        assert!(!model.nodes().iter().any(|n| n.op_as::<Lookup>().is_some()));
        let fused = model.nodes().iter().filter(|n| n.op_as::<IntegerConv>().is_some_and(|c| c.lookup.is_some()));
        assert_eq!(fused.count(), 2);
        assert_eq!(run(&model), before);
    }

    /// A colour image's first layer (3×3 at stride two over three planes) of eight channels:
    /// four-channel blocks, whose im2col kernel would look up an f32 buffer, but the direct
    /// kernel ([`crate::kernels::integer_conv::three_planes`]) looks its outputs up itself, so
    /// the table fuses, with the same bytes (natively the direct kernel's scalar form, on the
    /// canister its simd128 one, both checked against a direct convolution by its `check`).
    #[test]
    fn a_colour_images_first_layer_fuses_its_table_with_the_same_bytes() {
        let geometry = Geometry {
            channels: 3,
            input: [9, 11],
            kernel: [3, 3],
            strides: [2, 2],
            dilations: [1, 1],
            pad_before: [1, 1],
            output: [5, 6],
        };
        let conv = convolution_of(geometry, 8);
        assert!(conv.weights.rows != WIDE_ROWS && conv.three_planes());
        let mut model = TypedModel::default();
        let x = model.add_source("x", u8::fact([3, 9, 11])).unwrap();
        let a = model.wire_node("a", conv, &[x]).unwrap()[0];
        let a = model.wire_node("a.lookup", lookup(), &[a]).unwrap()[0];
        model.select_output_outlets(&[a]).unwrap();
        let input: Vec<u8> = (0..3 * 9 * 11).map(|i| (i * 53 % 256) as u8).collect();
        let input = Tensor::from_shape(&[3, 9, 11], &input).unwrap();
        let run = |model: &TypedModel| {
            let plan = model.clone().into_runnable().unwrap();
            plan.run(tvec!(input.clone().into_tvalue())).unwrap().remove(0).into_tensor()
        };
        let before = run(&model);
        assert_eq!(fuse(&mut model).unwrap(), 1);
        assert!(!model.nodes().iter().any(|n| n.op_as::<Lookup>().is_some()));
        assert_eq!(run(&model), before);
    }

    /// A convolution whose f32 output is also read elsewhere (here, a model output) keeps it: the
    /// table stays a node of its own.
    #[test]
    fn an_output_read_elsewhere_is_not_fused() {
        let mut model = TypedModel::default();
        let x = model.add_source("x", u8::fact([16, 3, 5])).unwrap();
        let a = model.wire_node("a", convolution(16, 16), &[x]).unwrap()[0];
        let b = model.wire_node("a.lookup", lookup(), &[a]).unwrap()[0];
        model.select_output_outlets(&[b, a]).unwrap();
        assert_eq!(fuse(&mut model).unwrap(), 0);
        assert!(model.nodes().iter().any(|n| n.op_as::<Lookup>().is_some()));
    }
}
