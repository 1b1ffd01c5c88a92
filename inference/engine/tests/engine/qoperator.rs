//! onnxruntime's QOperator contrib operators that no bundled model uses (or uses in only one
//! form), each in a small graph `x → QuantizeLinear → op → DequantizeLinear → y`, against the
//! operator's definition computed here in plain f32: dequantize, compute, quantize.

use inference_engine::executor::run_to_end;
use inference_engine::model::{inspect, load};
use inference_engine::types::{DType, TensorSpec};
use model_testdata::onnx::{float, int, quantize_u8 as quantize, ElemType, Graph};
use tract_onnx::prelude::*;

const X_SCALE: f32 = 0.05;
const X_ZP: u8 = 128;
const Y_SCALE: f32 = 0.01;
const Y_ZP: u8 = 20;

fn dequantize(q: u8, scale: f32, zero_point: u8) -> f32 {
    (q as f32 - zero_point as f32) * scale
}

/// The input as the graph's QuantizeLinear sees it, back in f32.
fn on_grid(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| dequantize(quantize(v, X_SCALE, X_ZP), X_SCALE, X_ZP)).collect()
}

/// `x` f32 of `shape` → QuantizeLinear → `op` (inputs: `q`, scales, zero points) → `Dequantize`.
fn wrapped(opset: i64, shape: &[i64], op: impl FnOnce(Graph) -> Graph) -> Graph {
    let graph = Graph::new(opset)
        .input("x", ElemType::Float, shape)
        .output("y", ElemType::Float)
        .f32("x_scale", &[], &[X_SCALE])
        .u8("x_zp", &[], &[X_ZP])
        .f32("y_scale", &[], &[Y_SCALE])
        .u8("y_zp", &[], &[Y_ZP])
        .node("QuantizeLinear", &["x", "x_scale", "x_zp"], &["q"], vec![]);
    op(graph).node("DequantizeLinear", &["qy", "y_scale", "y_zp"], &["y"], vec![])
}

fn run(graph: Graph, shape: &[usize], x: &[f32]) -> Vec<f32> {
    let bytes = graph.to_bytes();
    let info = inspect(&bytes).unwrap();
    assert!(info.unsupported.is_empty(), "{:?}", info.unsupported);
    let spec = TensorSpec {
        name: "x".into(),
        shape: shape.iter().map(|&d| d as i64).collect(),
        dtype: DType::F32,
        max_shape: None,
    };
    let model = load(&bytes, &[spec], info.weight_format).unwrap();
    let out = run_to_end(&model.plan, tvec!(Tensor::from_shape(shape, x).unwrap().into())).unwrap();
    out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
}

/// Equal to the definition within one output step (tract multiplies by 1/scale where the
/// definition divides, which can move a tie).
fn assert_close(got: &[f32], expected: &[f32], step: f32) {
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() <= step * 1.001, "{got:?}\nvs {expected:?}");
    }
    let first = expected[0];
    assert!(expected.iter().any(|&e| e != first), "a test whose expected values are all equal proves little");
}

fn requantized(values: impl IntoIterator<Item = f32>) -> Vec<f32> {
    values.into_iter().map(|v| dequantize(quantize(v, Y_SCALE, Y_ZP), Y_SCALE, Y_ZP)).collect()
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.37).sin() * 2.0).collect()
}

#[test]
fn qlinear_sigmoid_and_leaky_relu() {
    let x = ramp(8);
    let sigmoid = wrapped(13, &[1, 8], |g| {
        g.node("com.microsoft::QLinearSigmoid", &["q", "x_scale", "x_zp", "y_scale", "y_zp"], &["qy"], vec![])
    });
    let expected = requantized(on_grid(&x).into_iter().map(|v| 1.0 / (1.0 + (-v).exp())));
    assert_close(&run(sigmoid, &[1, 8], &x), &expected, Y_SCALE);

    let leaky = wrapped(13, &[1, 8], |g| {
        g.node(
            "com.microsoft::QLinearLeakyRelu",
            &["q", "x_scale", "x_zp", "y_scale", "y_zp"],
            &["qy"],
            vec![float("alpha", 0.1)],
        )
    });
    let expected = requantized(on_grid(&x).into_iter().map(|v| if v < 0.0 { 0.1 * v } else { v }));
    assert_close(&run(leaky, &[1, 8], &x), &expected, Y_SCALE);
}

#[test]
fn qlinear_add_with_omitted_zero_points_and_broadcast() {
    // B is a per-tensor quantized row [1, 4] broadcast over x [2, 4]; B's and C's zero points are
    // omitted (empty names), so they are 0.
    let x = ramp(8);
    let b = [10u8, 40, 90, 200];
    let graph = wrapped(13, &[2, 4], |g| {
        g.u8("b", &[1, 4], &b).f32("b_scale", &[], &[0.02]).node(
            "com.microsoft::QLinearAdd",
            &["q", "x_scale", "x_zp", "b", "b_scale", "", "y_scale", ""],
            &["qy"],
            vec![],
        )
    });
    let sum: Vec<f32> = on_grid(&x).iter().enumerate().map(|(i, v)| v + b[i % 4] as f32 * 0.02).collect();
    // Output zero point 0 (omitted): the DequantizeLinear after it still reads y_zp = 20, so the
    // reference applies 0 going in and 20 coming out.
    let expected: Vec<f32> = sum.iter().map(|&v| dequantize(quantize(v, Y_SCALE, 0), Y_SCALE, Y_ZP)).collect();
    assert_close(&run(graph, &[2, 4], &x), &expected, Y_SCALE);
}

#[test]
fn qlinear_concat() {
    let x = ramp(6);
    let other = [0u8, 50, 100, 150, 200, 250];
    let graph = wrapped(13, &[1, 2, 3], |g| {
        g.u8("other", &[1, 2, 3], &other).f32("other_scale", &[], &[0.004]).u8("other_zp", &[], &[0]).node(
            "com.microsoft::QLinearConcat",
            &["y_scale", "y_zp", "q", "x_scale", "x_zp", "other", "other_scale", "other_zp"],
            &["qy"],
            vec![int("axis", 1)],
        )
    });
    let expected = requantized(on_grid(&x).into_iter().chain(other.iter().map(|&o| o as f32 * 0.004)));
    assert_close(&run(graph, &[1, 2, 3], &x), &expected, Y_SCALE);
}

#[test]
fn qlinear_global_average_pool_channels_last() {
    // NHWC [1, 2, 2, 3]: one mean per channel over the 4 pixels.
    let x = ramp(12);
    let graph = wrapped(13, &[1, 2, 2, 3], |g| {
        g.node(
            "com.microsoft::QLinearGlobalAveragePool",
            &["q", "x_scale", "x_zp", "y_scale", "y_zp"],
            &["qy"],
            vec![int("channels_last", 1)],
        )
    });
    let grid = on_grid(&x);
    let expected = requantized((0..3).map(|c| (0..4).map(|p| grid[p * 3 + c]).sum::<f32>() / 4.0));
    assert_close(&run(graph, &[1, 2, 2, 3], &x), &expected, Y_SCALE);
}

#[test]
fn qlinear_softmax_keeps_the_semantics_of_its_opset() {
    // [1, 3, 2] along axis 1: opset 13 normalises each column of 3; opset 12 flattens axes 1..
    // and normalises all 6 together.
    let x = ramp(6);
    let softmax = |values: &[f32]| {
        let total: f32 = values.iter().map(|v| v.exp()).sum();
        values.iter().map(|v| v.exp() / total).collect::<Vec<f32>>()
    };
    let grid = on_grid(&x);
    for opset in [12, 13] {
        let graph = wrapped(13, &[1, 3, 2], |g| {
            g.node(
                "com.microsoft::QLinearSoftmax",
                &["q", "x_scale", "x_zp", "y_scale", "y_zp"],
                &["qy"],
                vec![int("axis", 1), int("opset", opset)],
            )
        });
        let probabilities = if opset < 13 {
            softmax(&grid)
        } else {
            let columns: Vec<Vec<f32>> = (0..2).map(|c| softmax(&[grid[c], grid[2 + c], grid[4 + c]])).collect();
            (0..6).map(|i| columns[i % 2][i / 2]).collect()
        };
        assert_close(&run(graph, &[1, 3, 2], &x), &requantized(probabilities), Y_SCALE);
    }
}

#[test]
fn qgemm_with_per_column_weights_bias_and_float_output() {
    // A [2, 3] quantized per tensor; B stored transposed [N=2, K=3], int8, one scale per column;
    // int32 bias; no y_scale, so Y is f32: alpha · (A·Bᵀ + C · a_scale · b_scale).
    let x = ramp(6);
    let b: [i8; 6] = [12, -7, 100, -128, 45, 3];
    let b_scale = [0.01f32, 0.03];
    let bias = [500i32, -1200];
    let alpha = 0.5f32;
    let graph = Graph::new(13)
        .input("x", ElemType::Float, &[2, 3])
        .output("y", ElemType::Float)
        .f32("x_scale", &[], &[X_SCALE])
        .u8("x_zp", &[], &[X_ZP])
        .i8("b", &[2, 3], &b)
        .f32("b_scale", &[2], &b_scale)
        .i8("b_zp", &[2], &[0, 0])
        .i32("bias", &[2], &bias)
        .node("QuantizeLinear", &["x", "x_scale", "x_zp"], &["q"], vec![])
        .node(
            "com.microsoft::QGemm",
            &["q", "x_scale", "x_zp", "b", "b_scale", "b_zp", "bias"],
            &["y"],
            vec![int("transB", 1), float("alpha", alpha)],
        );
    let a = on_grid(&x);
    let expected: Vec<f32> = (0..4)
        .map(|i| {
            let (m, n) = (i / 2, i % 2);
            let dot: f32 = (0..3).map(|k| a[m * 3 + k] * b[n * 3 + k] as f32 * b_scale[n]).sum();
            alpha * (dot + bias[n] as f32 * X_SCALE * b_scale[n])
        })
        .collect();
    assert_close(&run(graph, &[2, 3], &x), &expected, 1e-5);
}

#[test]
fn an_operator_nobody_implements_is_named() {
    let info = inspect(&model_testdata::onnx::unsupported_operator_model()).unwrap();
    assert_eq!(info.unsupported, vec!["com.example::Unheard".to_string()]);
}

#[test]
fn qlinear_average_pool_with_padding_strides_and_ceil_mode() {
    // [1, 2, 5, 5], 3×3 windows, stride 2, one pixel of padding on each side; the padding is not
    // counted (count_include_pad = 0), and ceil_mode makes a third window reach past the edge.
    let x = ramp(50);
    let graph = wrapped(13, &[1, 2, 5, 5], |g| {
        g.node(
            "com.microsoft::QLinearAveragePool",
            &["q", "x_scale", "x_zp", "y_scale", "y_zp"],
            &["qy"],
            vec![
                model_testdata::onnx::ints("kernel_shape", &[3, 3]),
                model_testdata::onnx::ints("strides", &[2, 2]),
                model_testdata::onnx::ints("pads", &[1, 1, 1, 1]),
                int("ceil_mode", 1),
            ],
        )
    });
    let grid = on_grid(&x);
    let mut expected = vec![];
    for c in 0..2 {
        for oy in 0..3i64 {
            for ox in 0..3i64 {
                let (mut sum, mut count) = (0f32, 0);
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (y, x) = (oy * 2 - 1 + ky, ox * 2 - 1 + kx);
                        if (0..5).contains(&y) && (0..5).contains(&x) {
                            sum += grid[c * 25 + (y * 5 + x) as usize];
                            count += 1;
                        }
                    }
                }
                expected.push(sum / count as f32);
            }
        }
    }
    assert_close(&run(graph, &[1, 2, 5, 5], &x), &requantized(expected), Y_SCALE);
}

#[test]
fn qlinear_reduce_mean_over_axes_with_and_without_kept_dimensions() {
    let x = ramp(24);
    let grid = on_grid(&x);
    // [2, 3, 4] averaged over axes 1 and −1 (2): one mean per first index.
    let expected = requantized((0..2).map(|a| grid[a * 12..a * 12 + 12].iter().sum::<f32>() / 12.0));
    for keepdims in [1, 0] {
        let graph = wrapped(13, &[2, 3, 4], |g| {
            g.node(
                "com.microsoft::QLinearReduceMean",
                &["q", "x_scale", "x_zp", "y_scale", "y_zp"],
                &["qy"],
                vec![model_testdata::onnx::ints("axes", &[1, -1]), int("keepdims", keepdims)],
            )
        });
        let bytes = graph.to_bytes();
        let got = run(graph, &[2, 3, 4], &x);
        assert_close(&got, &expected, Y_SCALE);
        let plan =
            load(&bytes, &[TensorSpec::new("x", vec![2, 3, 4], DType::F32)], inspect(&bytes).unwrap().weight_format)
                .unwrap();
        let rank = plan.plan.model().output_fact(0).unwrap().rank();
        assert_eq!(rank, if keepdims == 1 { 3 } else { 1 });
    }
}
