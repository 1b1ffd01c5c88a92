//! Nodes tract would run wrong. Recurrent nodes run in reverse (`direction="reverse"`): tract runs them forward, so the
//! engine rewrites them (`inference/engine/src/onnx/reverse_rnn.rs`; their values are checked
//! by the ONNX node tests `test_{lstm,gru,simple_rnn}_reverse` in `onnx_conformance.rs`), and
//! names at inspection those it cannot rewrite, so the upload is refused instead of serving
//! wrong values.

use inference_engine::model::inspect;
use model_testdata::onnx::{int, ElemType, Graph};
use tract_onnx::pb::{attribute_proto::AttributeType, AttributeProto};

fn reverse() -> AttributeProto {
    AttributeProto {
        name: "direction".into(),
        r#type: AttributeType::String as i32,
        s: b"reverse".to_vec(),
        ..Default::default()
    }
}

/// A one-layer RNN over `x` [4, 1, 3] with hidden size 2, reversed, with or without per-batch
/// sequence lengths, in a model of `opset`.
fn reverse_rnn(opset: i64, sequence_lens: bool) -> Vec<u8> {
    let g = Graph::new(opset)
        .input("x", ElemType::Float, &[4, 1, 3])
        .output("y", ElemType::Float)
        .f32("w", &[1, 2, 3], &[0.1, -0.2, 0.3, 0.4, 0.5, -0.6])
        .f32("r", &[1, 2, 2], &[0.7, -0.1, 0.2, 0.3])
        .i32("lens", &[1], &[3]);
    let inputs: &[&str] = if sequence_lens { &["x", "w", "r", "", "lens"] } else { &["x", "w", "r"] };
    g.node("RNN", inputs, &["y"], vec![reverse(), int("hidden_size", 2)]).to_bytes()
}

#[test]
fn a_reverse_rnn_is_taken_and_one_the_rewrite_cannot_take_is_named() {
    assert!(inspect(&reverse_rnn(17, false)).unwrap().unsupported.is_empty());
    assert_eq!(
        inspect(&reverse_rnn(17, true)).unwrap().unsupported,
        vec!["RNN (direction=reverse, with sequence_lens)".to_string()]
    );
    assert_eq!(
        inspect(&reverse_rnn(9, false)).unwrap().unsupported,
        vec!["RNN (direction=reverse, before opset 10)".to_string()]
    );
}

/// Not recurrent, but the same rule: an attribute value tract does not read is named, not run.
#[test]
fn a_space_to_depth_in_crd_order_is_named() {
    let crd = AttributeProto {
        name: "mode".into(),
        r#type: AttributeType::String as i32,
        s: b"CRD".to_vec(),
        ..Default::default()
    };
    let model = |mode: Vec<AttributeProto>| {
        let attributes = [vec![int("blocksize", 2)], mode].concat();
        Graph::new(28)
            .input("x", ElemType::Float, &[1, 1, 4, 4])
            .output("y", ElemType::Float)
            .node("SpaceToDepth", &["x"], &["y"], attributes)
            .to_bytes()
    };
    assert!(inspect(&model(vec![])).unwrap().unsupported.is_empty(), "DCR, the default, is tract's");
    assert_eq!(inspect(&model(vec![crd])).unwrap().unsupported, vec!["SpaceToDepth (mode=CRD)".to_string()]);
}
