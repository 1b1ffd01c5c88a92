//! The benchmark's baseline canister (`tests/plain-tract`, #19's side-by-side row) on the
//! replica: only its controllers may use it, it refuses a run before a model and a wrong-sized
//! input with typed errors, and, given the smallest bundled model, answers onnxruntime's class in
//! one message.

use canister_harness::plain_tract::{Loaded, PlainError, PlainTract};
use canister_harness::user;
use model_testdata::case;

#[test]
fn plain_tract_serves_its_controller_only_and_answers_onnxruntimes_class() {
    let mut ic = canister_harness::backend();
    let controller = user(1);
    let plain = PlainTract::install(&mut *ic, controller);
    let c = case("rapidocr_cls", "fp32");

    let stranger = user(2);
    let refused = plain.load(&mut *ic, stranger, &c.model, &c.input_shape).unwrap();
    assert_eq!(refused, Err(PlainError::NotController));
    let (early, _) = plain.run(&mut *ic, controller, &c.input_shape, &c.input);
    assert_eq!(early.unwrap(), Err(PlainError::NoModel));

    let loaded = plain.load(&mut *ic, controller, &c.model, &c.input_shape).unwrap();
    assert!(matches!(loaded, Ok(Loaded::AsIs | Loaded::WithoutValueInfo)), "{loaded:?}");
    let (short, _) = plain.run(&mut *ic, controller, &c.input_shape, &c.input[1..]);
    let elements = c.input.len() as u64;
    assert_eq!(short.unwrap(), Err(PlainError::BadInput { expected: elements, got: elements - 1 }));
    let (stranger_run, _) = plain.run(&mut *ic, stranger, &c.input_shape, &c.input);
    assert_eq!(stranger_run.unwrap(), Err(PlainError::NotController));

    let (answer, cost) = plain.run(&mut *ic, controller, &c.input_shape, &c.input);
    let out = answer.unwrap().expect("plain tract runs the model");
    let argmax = |v: &[f32]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
    assert_eq!(argmax(&out.output), argmax(&c.expected));
    assert_eq!(out.output.len(), c.expected.len());
    assert!(out.instructions > 0);
    if let Some(messages) = cost.messages {
        assert_eq!(messages, 1, "plain tract runs in one message");
    }
}
