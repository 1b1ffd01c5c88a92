//! A static int8 classifier's head: a 1×1 convolution of the one pixel a global pool leaves,
//! flattened for what reads it. tract declutters it into an `EinSum` that drops the image's unit
//! axes (named after the convolution when it has no bias), which the integer pass takes as a
//! one-pixel [`IntegerConv`](inference_engine::ops::integer_conv::IntegerConv). Each head, with
//! and without a bias, against its definition computed here: the integer sum of the quantized
//! pixel and weights, times the two scales, plus the bias.

use inference_engine::executor::run_to_end;
use inference_engine::model::{inspect, load};
use inference_engine::types::{DType, TensorSpec};
use model_testdata::onnx::{int, quantize_u8 as quantize, ElemType, Graph};
use tract_onnx::prelude::*;

const CHANNELS: usize = 40;
const OUTPUTS: usize = 6;
const X_SCALE: f32 = 0.05;
const X_ZP: u8 = 128;
const POOL_SCALE: f32 = 0.02;
const POOL_ZP: u8 = 100;

fn weights() -> Vec<i8> {
    (0..OUTPUTS * CHANNELS).map(|i| ((i * 37 % 255) as i32 - 127) as i8).collect()
}

fn weight_scales() -> Vec<f32> {
    (0..OUTPUTS).map(|m| 0.001 * (m + 1) as f32).collect()
}

fn bias() -> Vec<f32> {
    (0..OUTPUTS).map(|m| 0.25 * m as f32 - 0.5).collect()
}

/// `x [1, C, 2, 2]` → QDQ → GlobalAveragePool → QDQ → Conv 1×1 (int8 weights dequantized per
/// output channel, and the bias if `with_bias`) → Flatten → `y [1, M]`.
fn head(with_bias: bool) -> Graph {
    let (c, m) = (CHANNELS as i64, OUTPUTS as i64);
    let conv_inputs: &[&str] = if with_bias { &["pd", "wd", "b"] } else { &["pd", "wd"] };
    Graph::new(13)
        .input("x", ElemType::Float, &[1, c, 2, 2])
        .output("y", ElemType::Float)
        .f32("x_scale", &[], &[X_SCALE])
        .u8("x_zp", &[], &[X_ZP])
        .f32("p_scale", &[], &[POOL_SCALE])
        .u8("p_zp", &[], &[POOL_ZP])
        .i8("w", &[m, c, 1, 1], &weights())
        .f32("w_scale", &[m], &weight_scales())
        .i8("w_zp", &[m], &[0; OUTPUTS])
        .f32("b", &[m], &bias())
        .node("QuantizeLinear", &["x", "x_scale", "x_zp"], &["xq"], vec![])
        .node("DequantizeLinear", &["xq", "x_scale", "x_zp"], &["xd"], vec![])
        .node("GlobalAveragePool", &["xd"], &["p"], vec![])
        .node("QuantizeLinear", &["p", "p_scale", "p_zp"], &["pq"], vec![])
        .node("DequantizeLinear", &["pq", "p_scale", "p_zp"], &["pd"], vec![])
        .node("DequantizeLinear", &["w", "w_scale", "w_zp"], &["wd"], vec![int("axis", 0)])
        .node("Conv", conv_inputs, &["c"], vec![])
        .node("Flatten", &["c"], &["y"], vec![int("axis", 1)])
}

/// The input, varied enough that the pooled channels spread over the pool's grid.
fn input() -> Vec<f32> {
    (0..CHANNELS * 4).map(|i| ((i * 29 % 97) as f32 - 48.0) * 0.04).collect()
}

/// The head by its definition, from the pooled channels quantized as the graph does.
fn expected(with_bias: bool) -> Vec<f32> {
    let x = input();
    let on_grid: Vec<f32> = x.iter().map(|&v| (quantize(v, X_SCALE, X_ZP) as f32 - X_ZP as f32) * X_SCALE).collect();
    let pooled: Vec<i32> = on_grid
        .chunks(4)
        .map(|pixels| quantize(pixels.iter().sum::<f32>() / 4.0, POOL_SCALE, POOL_ZP) as i32 - POOL_ZP as i32)
        .collect();
    let (w, scales, b) = (weights(), weight_scales(), bias());
    (0..OUTPUTS)
        .map(|m| {
            let sum: i32 = (0..CHANNELS).map(|k| pooled[k] * w[m * CHANNELS + k] as i32).sum();
            sum as f32 * POOL_SCALE * scales[m] + if with_bias { b[m] } else { 0.0 }
        })
        .collect()
}

fn run(with_bias: bool) -> (Vec<String>, Vec<f32>) {
    let bytes = head(with_bias).to_bytes();
    let info = inspect(&bytes).unwrap();
    let spec =
        TensorSpec { name: "x".into(), shape: vec![1, CHANNELS as i64, 2, 2], dtype: DType::F32, max_shape: None };
    let model = load(&bytes, &[spec], info.weight_format).unwrap();
    let plan = model.plan.model();
    let ops = model.plan.order_without_consts().iter().map(|&n| plan.node(n).op.name().to_string()).collect();
    let x = Tensor::from_shape(&[1, CHANNELS, 2, 2], &input()).unwrap();
    let out = run_to_end(&model.plan, tvec!(x.into())).unwrap();
    (ops, out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec())
}

#[test]
fn static_int8_heads_with_and_without_a_bias_run_in_integers() {
    for with_bias in [true, false] {
        let (ops, got) = run(with_bias);
        assert!(ops.iter().any(|op| op == "IntegerConv"), "bias {with_bias}: {ops:?}");
        assert!(!ops.iter().any(|op| op == "FloatConv" || op.contains("MatMul")), "bias {with_bias}: {ops:?}");
        let want = expected(with_bias);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "bias {with_bias}: {got:?} against {want:?}");
        }
    }
}
