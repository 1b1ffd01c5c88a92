//! A real symbolic-width model on the canister (#14): the PP-OCRv4 text-line recognizer, whose
//! batch, height and width stay symbolic when uploaded without declared shapes, serves lines of
//! three widths in one session — a plan built for each — each matching onnxruntime, and
//! refuses a width over the maintainer's bound.

use canister_harness::cases::input;
use canister_harness::deploy::Deployment;
use canister_harness::user;
use inference_api::{InferenceError, ShapeMismatch, TensorSpec};
use inference_client::calls;
use model_testdata::case;

#[test]
fn the_ocr_recognizer_serves_three_widths_each_matching_onnxruntime() {
    let mut d = Deployment::new("recognizer");
    d.as_admin(calls::allow_caller(user(5))).unwrap();
    let c = case("rapidocr_rec", "w160");
    let maintainer = d.maintainer;
    let info = d.upload_as(maintainer, "rec", &c.model, vec![], None, 1 << 20).expect("upload");
    assert_eq!(info.inputs[0].shape, vec![-1, 3, -1, -1], "nothing is pinned");
    d.call(maintainer, calls::activate("rec", info.version)).0.unwrap().expect("activate");
    let argmax_per_step = |v: &[f32]| -> Vec<usize> {
        v.chunks_exact(6625).map(|s| (0..s.len()).fold(0, |b, i| if s[i] > s[b] { i } else { b })).collect()
    };
    for width in ["w160", "w320", "w480"] {
        let c = case("rapidocr_rec", width);
        let out = d.call(user(5), calls::infer("rec", None, &[input(&c)])).0.unwrap().expect(width);
        let got = out.outputs[0].data.as_f32().unwrap();
        assert_eq!(got.len(), c.expected.len(), "{width}");
        let worst = got.iter().zip(&c.expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-4, "{width}: max |Δ| {worst}");
        assert_eq!(argmax_per_step(got), argmax_per_step(&c.expected), "{width}");
        eprintln!("{width}: max |Δ| {worst:.1e}, {} instructions in {} messages", out.instructions, out.messages);
    }
    let plans = d.call(maintainer, calls::plan_cache()).0.unwrap().unwrap().plans;
    assert!(plans >= 3, "a plan per width: {plans}");
    // The same file with the width bounded to 320: the 480-wide line is refused, typed.
    let bounded = TensorSpec { max_shape: Some(vec![1, 3, 48, 320]), ..info.inputs[0].clone() };
    let options = Deployment::upload_options(1 << 20);
    let options = inference_tools::upload::UploadOptions { force: true, ..options };
    let v2 = d.upload_with(maintainer, "rec", &c.model, vec![], Some(vec![bounded]), &options).expect("upload");
    d.call(maintainer, calls::activate("rec", v2.version)).0.unwrap().expect("activate");
    let wide = input(&case("rapidocr_rec", "w480"));
    match d.call(user(5), calls::infer("rec", None, &[wide])).0.unwrap() {
        Err(InferenceError::InputShape { mismatch: ShapeMismatch::OverBound { dim: 3, max: 320 }, .. }) => {}
        other => panic!("{other:?}"),
    }
}
