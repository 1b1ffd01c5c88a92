//! Property test: the [`IntegerConv`] operator (packing + the kernel natively in use + the
//! epilogue) equals a direct convolution, bit for bit, on random geometries, layouts, batches,
//! zero points, and u8 or i8 inputs.

use std::sync::Arc;

use inference_engine::kernels::activation::Activation;
use inference_engine::kernels::integer_conv::pack::{Epilogue, Geometry, Layout, PackedWeights};
use inference_engine::kernels::integer_conv::reference::{direct, laid_out};
use inference_engine::kernels::integer_conv::winograd::WinogradWeights;
use inference_engine::kernels::qdq::{ByteLookup, Quantize};
use inference_engine::ops::integer_conv::{IntegerConv, Runtime};
use proptest::prelude::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// One random convolution and its inputs.
#[derive(Clone, Debug)]
struct Case {
    geometry: Geometry,
    /// Output channels.
    m: usize,
    unsigned: bool,
    layouts: [Layout; 2],
    /// Images in the batch; `input_batch`/`output_batch`: whether the tensors have the axis.
    batch: usize,
    input_batch: bool,
    output_batch: bool,
    /// Planar input values, per image, within the input type's range.
    x: Vec<i32>,
    /// ONNX-ordered `[m, C, kh, kw]` weights.
    w: Vec<i8>,
    epilogue: Epilogue,
    /// Applied after the epilogue.
    activation: Activation,
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![Just(Layout::Planar), Just(Layout::Interleaved)]
}

/// A convolution's shape: channels, output channels, kernel, strides, dilations, pads before
/// and after, input size before adjustment.
type Shape = (usize, usize, [usize; 2], [usize; 2], [usize; 2], [usize; 2], [usize; 2], [usize; 2]);

fn case() -> impl Strategy<Value = Case> {
    // Output channels include multiples of 16: the wide blocks.
    case_of((
        1usize..=20,
        prop_oneof![1usize..=20, Just(16usize), Just(32usize)],
        [1usize..=4, 1usize..=4],
        [1usize..=3, 1usize..=3],
        [1usize..=2, 1usize..=2],
        [0usize..=3, 0usize..=3],
        [0usize..=3, 0usize..=3],
        [1usize..=9, 1usize..=9],
    ))
}

/// The convolutions Winograd's transforms compute: 3×3 of stride 1, channels a multiple of
/// eight; output sizes up to 24 columns (the vector path takes whole fours of tiles).
fn winograd_case() -> impl Strategy<Value = Case> {
    case_of((
        prop_oneof![Just(8usize), Just(16usize), Just(24usize)],
        prop_oneof![Just(4usize), Just(5usize), Just(16usize), Just(20usize), Just(32usize)],
        Just([3usize, 3]),
        Just([1usize, 1]),
        Just([1usize, 1]),
        [0usize..=3, 0usize..=3],
        [0usize..=3, 0usize..=3],
        [1usize..=9, 1usize..=24],
    ))
}

fn case_of(shape: impl Strategy<Value = Shape>) -> impl Strategy<Value = Case> {
    let options = (any::<bool>(), [layout(), layout()], 1usize..=2, any::<bool>(), any::<bool>());
    (shape, options)
        .prop_flat_map(
            |(
                (channels, m, kernel, strides, dilations, pad_before, pad_after, size),
                (unsigned, layouts, batch, input_batch, output_batch),
            )| {
                // At least one output pixel per axis.
                let input: [usize; 2] = std::array::from_fn(|d| {
                    size[d].max((dilations[d] * (kernel[d] - 1) + 1).saturating_sub(pad_before[d] + pad_after[d]))
                });
                let output = std::array::from_fn(|d| {
                    (input[d] + pad_before[d] + pad_after[d] - dilations[d] * (kernel[d] - 1) - 1) / strides[d] + 1
                });
                let geometry = Geometry { channels, input, kernel, strides, dilations, pad_before, output };
                // A batch of 2 needs both batch axes.
                let (input_batch, output_batch) = if batch > 1 { (true, true) } else { (input_batch, output_batch) };
                let (lo, hi) = if unsigned { (0, 255) } else { (-128, 127) };
                let values = batch * channels * input[0] * input[1];
                (
                    Just((geometry.clone(), m, unsigned, layouts, batch, input_batch, output_batch)),
                    proptest::collection::vec(prop_oneof![1 => Just(lo), 1 => Just(hi), 6 => lo..=hi], values),
                    proptest::collection::vec(any::<i8>(), m * geometry.depth()),
                    lo..=hi,
                    proptest::collection::vec(1e-4f32..1.0, m),
                    proptest::collection::vec(-10f32..10.0, m),
                    prop_oneof![
                        Just(Activation::Identity),
                        Just(Activation::Relu),
                        Just(Activation::HardSwish),
                        Just(Activation::HardSigmoidSwish)
                    ],
                )
            },
        )
        .prop_map(
            |(
                (geometry, m, unsigned, layouts, batch, input_batch, output_batch),
                x,
                w,
                zero_point,
                scales,
                bias,
                activation,
            )| {
                Case {
                    geometry,
                    m,
                    unsigned,
                    layouts,
                    batch,
                    input_batch,
                    output_batch,
                    x,
                    w,
                    epilogue: Epilogue { zero_point, scales, bias, raw: false },
                    activation,
                }
            },
        )
}

/// The operator's output, in planar order per image.
fn run_with(c: &Case, lookup: Option<ByteLookup>) -> Vec<u32> {
    let expected_type = lookup.as_ref().map_or(DatumType::F32, |l| l.quantize.dt);
    let g = &c.geometry;
    let image = g.channels * g.input[0] * g.input[1];
    let x: Vec<i32> = c.x.chunks(image).flat_map(|img| laid_out(img, g.channels, c.layouts[0])).collect();
    let image_shape: Vec<usize> = match c.layouts[0] {
        Layout::Planar => vec![g.channels, g.input[0], g.input[1]],
        Layout::Interleaved => vec![g.input[0], g.input[1], g.channels],
    };
    let shape: Vec<usize> =
        if c.input_batch { std::iter::once(c.batch).chain(image_shape).collect() } else { image_shape };
    let input = if c.unsigned {
        Tensor::from_shape(&shape, &x.iter().map(|v| *v as u8).collect::<Vec<_>>()).unwrap()
    } else {
        Tensor::from_shape(&shape, &x.iter().map(|v| *v as i8).collect::<Vec<_>>()).unwrap()
    };
    let weights = PackedWeights::new(&c.w.iter().map(|v| *v as i16).collect::<Vec<_>>(), g, c.m);
    let op = IntegerConv {
        input_batch: c.input_batch,
        output_batch: c.output_batch,
        input_layout: c.layouts[0],
        output_layout: c.layouts[1],
        runtime: Runtime::default(),
        geometry: g.clone(),
        weights: Arc::new(weights),
        winograd: winograd(c).map(Arc::new),
        epilogue: Arc::new(c.epilogue.clone()),
        activation: c.activation,
        lookup: lookup.map(Arc::new),
    };
    let fact = input.datum_type().fact(input.shape());
    let expected_shape = op.output_facts(&[&fact]).unwrap()[0].shape.as_concrete().unwrap().to_vec();
    let out = op.eval(&EvalContext::out_of_plan(), tvec!(input.into_tvalue())).unwrap();
    assert_eq!(out[0].shape(), &expected_shape[..]);
    assert_eq!(out[0].datum_type(), expected_type);
    let pixels = g.pixels();
    let planar = |img: &[u32]| -> Vec<u32> {
        match c.layouts[1] {
            Layout::Planar => img.to_vec(),
            Layout::Interleaved => (0..img.len()).map(|i| img[(i % pixels) * c.m + i / pixels]).collect(),
        }
    };
    let plain = out[0].try_as_plain_ram().unwrap();
    let values: Vec<u32> = match expected_type {
        DatumType::F32 => plain.as_slice::<f32>().unwrap().iter().map(|v| v.to_bits()).collect(),
        _ => plain.as_bytes().iter().map(|b| *b as u32).collect(),
    };
    values.chunks(c.m * pixels).flat_map(planar).collect()
}

fn run(c: &Case) -> Vec<u32> {
    run_with(c, None)
}

/// A quantize (u8 or i8, some outputs past either end) read through a table of distinct bytes,
/// as `passes::conv_lookup` fuses a static int8 model's HardSwish.
fn lookup(dt: DatumType) -> ByteLookup {
    let zero_point = if dt == DatumType::U8 { 90 } else { -15 };
    ByteLookup {
        quantize: Quantize { inv_scale: 0.41, zero_point, dt },
        table: (0..=255u8).map(|b| b.wrapping_mul(73).wrapping_add(5)).collect(),
    }
}

/// The case's weights for Winograd's transforms, if it is a convolution they compute.
fn winograd(c: &Case) -> Option<WinogradWeights> {
    WinogradWeights::new(&c.w.iter().map(|v| *v as i16).collect::<Vec<_>>(), &c.geometry, c.m)
}

fn reference(c: &Case) -> Vec<u32> {
    let g = &c.geometry;
    let image = g.channels * g.input[0] * g.input[1];
    let outputs = c.x.chunks(image).flat_map(|img| direct(img, &c.w, g, c.m, &c.epilogue));
    outputs.map(|y| c.activation.apply(y).to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn integer_conv_equals_a_direct_convolution(c in case()) {
        prop_assert_eq!(run(&c), reference(&c), "{:?}", c.geometry);
    }

    /// With a table lookup fused, the operator's outputs (batches, layouts, Winograd's and
    /// activations included) are the direct convolution's looked up. Natively the kernel is the
    /// scalar one, which looks up its f32 outputs; the simd128 epilogue is checked against it by
    /// `kernels::integer_conv::reference::check` in the canister's self-test.
    #[test]
    fn integer_conv_through_a_table_equals_a_direct_convolution_looked_up(c in case(), signed in any::<bool>()) {
        let l = lookup(if signed { DatumType::I8 } else { DatumType::U8 });
        let want: Vec<u32> = reference(&c).iter().map(|v| l.scalar(f32::from_bits(*v)) as u32).collect();
        prop_assert_eq!(run_with(&c, Some(l)), want, "{:?}", c.geometry);
    }

    #[test]
    fn winograd_equals_a_direct_convolution(c in winograd_case()) {
        prop_assert!(winograd(&c).is_some(), "{:?}", c.geometry);
        prop_assert_eq!(run(&c), reference(&c), "{:?}", c.geometry);
    }
}
