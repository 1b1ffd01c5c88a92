//! A stateful model on the canister: the voice-activity model takes two inputs (audio, recurrent
//! state) and gives two outputs (probability, next state); the state it returns feeds the next
//! call, whole or split over messages, with identical bits. (Its match with onnxruntime across
//! budgets and an upgrade is in `variants.rs`.)

use canister_harness::cases::{inputs, specs};
use canister_harness::deploy::Deployment;
use canister_harness::user;
use inference_api::{Inference, InferenceError, InputTensor};
use inference_client::calls;
use model_testdata::{case, Case};

fn publish(d: &mut Deployment, name: &str, c: &Case) {
    let info = d.upload_as(d.maintainer, name, &c.model, vec![], Some(specs(c)), 1 << 20).expect("upload");
    assert!(info.chunk_count > 1 || c.model.len() < 1 << 20);
    let maintainer = d.maintainer;
    let (r, _) = d.call(maintainer, calls::activate(name, info.version));
    r.unwrap().unwrap();
}

fn infer(d: &mut Deployment, name: &str, inputs: Vec<InputTensor>) -> Inference {
    let (r, _) = d.call(user(5), calls::infer(name, None, &inputs));
    r.expect("infer replies").unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

#[test]
fn voice_activity_model_takes_two_inputs_and_carries_its_state() {
    let mut d = Deployment::new("vad");
    d.as_admin(calls::allow_caller(user(5))).unwrap();
    let c = case("silero_vad_openvino_16k", "fp32");
    publish(&mut d, "vad", &c);
    let first = infer(&mut d, "vad", inputs(&c));
    assert_eq!(first.outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["output", "stateN"]);
    for (out, expected) in first.outputs.iter().zip(&c.outputs) {
        let worst = out
            .data
            .as_f32()
            .expect("f32 output")
            .iter()
            .zip(expected)
            .map(|(g, e)| (g - e).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-4, "{}: max |Δ| {worst}", out.name);
    }
    // The next chunk of audio with the state the first call returned, whole and split over
    // messages: identical bits.
    let mut next = inputs(&c);
    next[1].data = first.outputs[1].data.clone();
    let whole = infer(&mut d, "vad", next.clone());
    d.set_budget(1_000_000);
    let split = infer(&mut d, "vad", next);
    assert!(split.messages > 1);
    for (a, b) in whole.outputs.iter().zip(&split.outputs) {
        assert_eq!(a.data.to_le_bytes(), b.data.to_le_bytes(), "{}", a.name);
    }
    // A wrong number of inputs is a typed error.
    let (r, _) = d.call(user(5), calls::infer("vad", None, &[inputs(&c).remove(0)]));
    assert!(matches!(r.unwrap(), Err(InferenceError::InvalidInput(_))));
}
