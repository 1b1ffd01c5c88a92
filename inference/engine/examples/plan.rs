//! Prints the optimised plan of an ONNX model: one line per node, its operator and output fact.
//! `cargo run -p inference-engine --example plan -- model.onnx 1,3,224,224`
use inference_engine::model;
use inference_engine::types::{DType, TensorSpec, WeightFormat};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&args[1]).expect("model file");
    let shape: Vec<i64> = args[2].split(',').map(|d| d.parse().unwrap()).collect();
    let info = model::inspect(&bytes).unwrap();
    let mut inputs = info.inputs.clone();
    inputs[0] = TensorSpec { name: inputs[0].name.clone(), shape, dtype: DType::F32, max_shape: None };
    let loaded = model::load(&bytes, &inputs, WeightFormat::F32).unwrap();
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
