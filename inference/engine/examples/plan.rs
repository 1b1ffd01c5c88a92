//! Prints the optimised plan of an ONNX model: one line per node, its operator and output fact.
//! `cargo run -p inference-engine --example plan -- model.onnx 1,3,224,224` (a text model's
//! inputs, ids and masks, all take the one shape given: `-- bert.onnx 1,128`)
use inference_engine::model;
use inference_engine::types::{DType, TensorSpec};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&args[1]).expect("model file");
    let shape: Vec<i64> = args[2].split(',').map(|d| d.parse().unwrap()).collect();
    let info = model::inspect(&bytes).unwrap();
    let mut inputs = info.inputs.clone();
    let text = inputs.iter().all(|i| matches!(i.dtype, DType::I64 | DType::I32));
    for input in if text { &mut inputs[..] } else { &mut inputs[..1] } {
        let dtype = if text { input.dtype } else { DType::F32 };
        *input = TensorSpec { name: input.name.clone(), shape: shape.clone(), dtype, max_shape: None };
    }
    let loaded = model::load(&bytes, &inputs, info.weight_format).unwrap();
    let m = loaded.plan.model();
    for &n in loaded.plan.order_without_consts() {
        let node = m.node(n);
        println!(
            "{:>4} {:<28} {:<50} {:?}",
            n,
            node.op.name(),
            node.name.chars().take(50).collect::<String>(),
            node.outputs[0].fact
        );
        // Our integer convolutions: their layouts and geometry, to read next to a profile.
        if node.op_as::<inference_engine::ops::integer_conv::IntegerConv>().is_some() {
            println!("     {}", node.op.info().unwrap().join(", "));
        }
    }
}
