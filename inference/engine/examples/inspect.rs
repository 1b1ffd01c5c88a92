//! Prints what the registry would record about an ONNX file: `cargo run -p inference-engine --example inspect FILE`.
fn main() {
    let path = std::env::args().nth(1).expect("usage: inspect FILE.onnx");
    let bytes = std::fs::read(&path).expect("readable file");
    let i = inference_engine::model::inspect(&bytes).expect("an ONNX model");
    println!("inputs: {:?}\noutputs: {:?}\noperators: {:?}\nunsupported: {:?}\nweights: {:?}, {} parameters", i.inputs, i.outputs, i.operators, i.unsupported, i.weight_format, i.parameters);
}
