//! Text models natively: the tokenizers give exactly the ids Python's `tokenizers` gives for
//! Urdu, English and mixed-script text (WordPiece, byte-level BPE, Unigram, and the real
//! all-MiniLM-L6-v2 tokenizer); a batch is padded exactly as the golden inputs were; and the
//! models give onnxruntime's outputs for them (models/text, tools/prepare/text_models.py).

use inference_api::{Pooling, TextError, TextInput, TextSpec, TextTask, Truncation};
use inference_api::{Tokens, Vocabulary};
use inference_engine::executor::run_to_end;
use inference_engine::model::{inspect, load};
use inference_engine::text;
use inference_engine::types::{DType, TensorSpec};
use inference_tokenizer::{texts_of, TextTokenizer};
use model_testdata::text::{case, file, golden_tokens};
use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;

fn spec(tokenizer: &[u8], max_tokens: u32, truncation: Truncation) -> TextSpec {
    TextSpec {
        tokenizer_bytes: tokenizer.len() as u64,
        tokenizer_sha256: Sha256::digest(tokenizer).to_vec(),
        max_tokens,
        truncation,
        task: TextTask::Embed { pooling: Pooling::Mean, normalize: true },
    }
}

/// Each tokenizer as the bundles declare it: ours refuse long texts, all-MiniLM-L6-v2 keeps the
/// first 256 tokens (sentence-transformers' setting, and the golden's).
fn tokenizer(name: &str) -> TextTokenizer {
    let (file_name, max, truncation) = match name {
        "all_minilm_l6" => ("all_minilm_l6.tokenizer.json".to_string(), 256, Truncation::KeepStart),
        other => (format!("{other}.json"), 512, Truncation::Refuse),
    };
    let bytes = file(&file_name);
    TextTokenizer::new(&bytes, &spec(&bytes, max, truncation)).unwrap()
}

fn encode_all(tok: &TextTokenizer, texts: &[String]) -> Vec<Tokens> {
    texts.iter().enumerate().map(|(i, t)| tok.encode(i as u32, t).unwrap()).collect()
}

#[test]
fn every_tokenizer_gives_pythons_ids_for_urdu_english_and_mixed_script_text() {
    let (sample, golden) = golden_tokens();
    assert!(sample.iter().any(|t| t.contains("درخواست")) && sample.iter().any(|t| t.contains("petition")));
    assert_eq!(golden.len(), 4, "wordpiece, bpe, unigram, all_minilm_l6");
    for (name, expected) in golden {
        let tok = tokenizer(&name);
        for (i, (text, ids)) in sample.iter().zip(&expected).enumerate() {
            let got = tok.encode(i as u32, text).unwrap();
            assert_eq!(&got.ids, ids, "{name}: text {i} ({text})");
        }
        eprintln!("{name}: {} texts, ids equal to Python's", sample.len());
    }
}

#[test]
fn a_batch_is_padded_exactly_as_the_golden_inputs_are() {
    let (sample, _) = golden_tokens();
    for (model, tok) in [("langid", "wordpiece"), ("all_minilm_l6", "all_minilm_l6")] {
        let c = case(model);
        let tok = tokenizer(tok);
        let specs: Vec<TensorSpec> =
            c.inputs.iter().map(|(name, _, _)| TensorSpec::new(name, vec![-1, -1], DType::I64)).collect();
        let inputs = text::model_inputs(&encode_all(&tok, &sample), &specs, tok.pad_id(), 512).unwrap();
        for ((name, shape, values), got) in c.inputs.iter().zip(&inputs) {
            assert_eq!(got.shape, shape.iter().map(|&d| d as u64).collect::<Vec<_>>(), "{model}: {name}");
            assert_eq!(got.data, inference_api::TensorData::I64(values.clone()), "{model}: {name}");
        }
    }
}

/// The case's model, loaded for its inputs' shapes.
fn loaded(c: &model_testdata::text::TextCase) -> inference_engine::model::LoadedModel {
    let inspection = inspect(&c.model).unwrap();
    assert!(inspection.unsupported.is_empty(), "{:?}", inspection.unsupported);
    let specs: Vec<TensorSpec> = c
        .inputs
        .iter()
        .map(|(name, shape, _)| TensorSpec::new(name, shape.iter().map(|&d| d as i64).collect(), DType::I64))
        .collect();
    load(&c.model, &specs, inspection.weight_format).unwrap()
}

/// Runs a golden case's inputs through the model natively.
fn run(model: &str) -> (Vec<f32>, Vec<usize>, model_testdata::text::TextCase) {
    let c = case(model);
    let loaded = loaded(&c);
    let inputs: TVec<TValue> =
        c.inputs.iter().map(|(_, shape, values)| Tensor::from_shape(shape, values).unwrap().into()).collect();
    let out = run_to_end(&loaded.plan, inputs).unwrap();
    let first = out[0].cast_to::<f32>().unwrap();
    let values = first.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
    let shape = out[0].shape().to_vec();
    (values, shape, c)
}

fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn the_language_identifier_gives_onnxruntimes_logits_in_f32_and_dynamic_int8() {
    let (sample, _) = golden_tokens();
    for (model, tolerance) in [("langid", 1e-5), ("langid.dyn_u8", 1e-2)] {
        let (got, shape, c) = run(model);
        let (_, expected_shape, expected) = &c.outputs[0];
        assert_eq!(&shape, expected_shape, "{model}");
        let classes = shape[1];
        let difference = worst(&got, expected);
        assert!(difference <= tolerance, "{model}: logits differ from onnxruntime's by {difference}");
        for (row, _) in sample.iter().enumerate() {
            let range = row * classes..(row + 1) * classes;
            assert_eq!(
                model_testdata::argmax(&got[range.clone()]),
                model_testdata::argmax(&expected[range]),
                "{model}: text {row}"
            );
        }
        eprintln!("{model}: logits within {difference:.1e} of onnxruntime's, argmax equal for every text");
    }
}

#[test]
fn bert_encoders_give_onnxruntimes_hidden_states() {
    // all-MiniLM-L6-v2's int8 weights are dequantized in the graph (f32 arithmetic); the
    // random-weight MiniLM-L6-shaped encoder is onnxruntime's dynamic int8 (MatMulInteger).
    for (model, tolerance) in [("all_minilm_l6", 1e-4), ("bert_l6.dyn_u8", 0.05)] {
        let (got, shape, c) = run(model);
        let (_, expected_shape, expected) = &c.outputs[0];
        assert_eq!(&shape, expected_shape, "{model}");
        // Padding rows and tokens are not compared: nothing reads them.
        let mask = &c.inputs.iter().find(|(n, _, _)| n == "attention_mask").unwrap().2;
        let dim = shape[2];
        let (mut difference, mut compared) = (0f32, 0);
        for (token, &m) in mask.iter().enumerate() {
            if m == 1 {
                let range = token * dim..(token + 1) * dim;
                difference = difference.max(worst(&got[range.clone()], &expected[range]));
                compared += 1;
            }
        }
        assert!(difference <= tolerance, "{model}: hidden states differ from onnxruntime's by {difference}");
        eprintln!("{model}: {compared} tokens' hidden states within {difference:.1e} of onnxruntime's");
    }
}

/// The same inputs through plain tract (its own optimised plan, none of our passes).
fn run_plain_tract(c: &model_testdata::text::TextCase) -> Vec<f32> {
    let mut model = tract_onnx::onnx()
        .with_ignore_value_info(true)
        .with_ignore_output_shapes(true)
        .model_for_read(&mut &c.model[..])
        .unwrap();
    for (i, (_, shape, _)) in c.inputs.iter().enumerate() {
        model.set_input_fact(i, InferenceFact::dt_shape(i64::datum_type(), shape.clone())).unwrap();
    }
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    let inputs: TVec<TValue> =
        c.inputs.iter().map(|(_, shape, values)| Tensor::from_shape(shape, values).unwrap().into()).collect();
    let out = plan.run(inputs).unwrap();
    out[0].cast_to::<f32>().unwrap().try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
}

/// How far `ours` and plain tract's hidden states of case `c` are from onnxruntime's, over the
/// tokens the attention mask keeps (nothing reads the padding's).
fn distances_from_onnxruntime(ours: &[f32], c: &model_testdata::text::TextCase) -> (f32, f32) {
    let plain = run_plain_tract(c);
    let expected = &c.outputs[0].2;
    let mask = &c.inputs.iter().find(|(n, _, _)| n == "attention_mask").unwrap().2;
    let dim = c.outputs[0].1[2];
    let (mut from_ours, mut from_tract) = (0f32, 0f32);
    for (token, &m) in mask.iter().enumerate() {
        if m == 1 {
            let r = token * dim..(token + 1) * dim;
            from_ours = from_ours.max(worst(&ours[r.clone()], &expected[r.clone()]));
            from_tract = from_tract.max(worst(&plain[r.clone()], &expected[r]));
        }
    }
    (from_ours, from_tract)
}

/// How many nodes of each of these operators the plan of case `c` has.
fn operator_counts<const N: usize>(c: &model_testdata::text::TextCase, ops: [&str; N]) -> [usize; N] {
    let loaded = loaded(c);
    let plan = loaded.plan.model();
    ops.map(|op| plan.nodes().iter().filter(|n| n.op.name() == op).count())
}

#[test]
fn a_dynamic_int8_encoders_products_run_on_our_kernels_at_least_as_close_to_onnxruntime_as_tract() {
    // Every MatMulInteger of the dynamic int8 encoder becomes an IntegerConv (1×1), attention's
    // two f32 products per layer BatchedMatMuls, the GELUs ours: none stays on tract's matrix
    // product. The integer sums are exact, but attention's f32 sums are in the f32 kernel's
    // order, and each layer's dynamic quantize of the context can round one value to the other
    // byte: the hidden states are no longer plain tract's bit for bit (about 0.024 from
    // onnxruntime's where plain tract's are 0.022), within the encoder's tolerance and not a
    // quarter farther than plain tract's.
    let (ours, _, c) = run("bert_l6.dyn_u8");
    let (from_ours, from_tract) = distances_from_onnxruntime(&ours, &c);
    eprintln!("bert_l6.dyn_u8: ours within {from_ours:.5} of onnxruntime's hidden states, plain tract {from_tract:.5}");
    assert!(from_ours <= 0.05 && from_ours <= 1.25 * from_tract, "ours {from_ours}, plain tract {from_tract}");
    let counts = operator_counts(&c, ["IntegerConv", "BatchedMatMul", "Gelu", "OptMatMul"]);
    assert_eq!(counts, [6 * 6, 6 * 2, 6, 0], "IntegerConv, BatchedMatMul, Gelu, OptMatMul");
}

#[test]
fn a_static_int8_encoders_products_run_on_our_kernel_at_least_as_close_to_onnxruntime_as_tract() {
    // onnxruntime's quantize_static (QDQ) encoder: the 36 products by int8 weights run on the
    // integer kernel, attention's two products per layer, of two activations, on the f32 one.
    // Every product's output is requantized to u8 before the next layer reads it, so a rounding
    // that differs anywhere carries through six layers: plain tract (f32 on the dequantized
    // values) is itself about 0.135 from onnxruntime (integer kernels) on these random weights.
    // Ours are within 0.15, and not a quarter farther.
    let (ours, _, c) = run("bert_l6.qdq");
    let (from_ours, from_tract) = distances_from_onnxruntime(&ours, &c);
    eprintln!("bert_l6.qdq: ours within {from_ours:.5} of onnxruntime's hidden states, plain tract {from_tract:.5}");
    assert!(from_ours <= 0.15 && from_ours <= 1.25 * from_tract, "ours {from_ours}, plain tract {from_tract}");
    let counts = operator_counts(&c, ["IntegerConv", "BatchedMatMul", "OptMatMul"]);
    assert_eq!(counts, [6 * 6, 6 * 2, 0], "IntegerConv, BatchedMatMul, OptMatMul");
}

#[test]
fn mean_pooled_minilm_vectors_match_onnxruntimes_and_rank_similar_texts_first() {
    let (sample, _) = golden_tokens();
    let (got, shape, c) = run("all_minilm_l6");
    let tok = tokenizer("all_minilm_l6");
    let encoded = encode_all(&tok, &sample);
    let ours = text::pool(&got, &shape, &encoded, Pooling::Mean, true).unwrap();
    let theirs = text::pool(&c.outputs[0].2, &shape, &encoded, Pooling::Mean, true).unwrap();
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!((dot(a, a) - 1.0).abs() < 1e-5, "text {i}: not unit length");
        assert!(dot(a, b) > 0.9999, "text {i}: cosine with onnxruntime's vector is {}", dot(a, b));
    }
}

#[test]
fn minilm_through_our_tokenizer_and_padding_places_paraphrases_together() {
    // A real sentence encoder, end to end natively: tokenized and padded here, pooled here.
    let texts: Vec<String> = [
        "There is no water in our street since Monday.",
        "Our area's water supply has been cut off.",
        "I want to renew my driving licence.",
    ]
    .map(String::from)
    .to_vec();
    let tok = tokenizer("all_minilm_l6");
    let encoded = encode_all(&tok, &texts);
    let model = file("all_minilm_l6.int8w.onnx");
    let specs = inspect(&model).unwrap().inputs;
    let inputs = text::model_inputs(&encoded, &specs, tok.pad_id(), 256).unwrap();
    let concrete: Vec<TensorSpec> = specs
        .iter()
        .zip(&inputs)
        .map(|(s, i)| s.with_shape(&i.shape.iter().map(|&d| d as usize).collect::<Vec<_>>()))
        .collect();
    let loaded = load(&model, &concrete, inference_api::WeightFormat::Int8).unwrap();
    let values: TVec<TValue> = inputs
        .iter()
        .map(|i| {
            let shape: Vec<usize> = i.shape.iter().map(|&d| d as usize).collect();
            let inference_api::TensorData::I64(v) = &i.data else { panic!("i64 inputs") };
            Tensor::from_shape(&shape, v).unwrap().into()
        })
        .collect();
    let out = run_to_end(&loaded.plan, values).unwrap();
    let hidden = out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
    let v = text::pool(&hidden, out[0].shape(), &encoded, Pooling::Mean, true).unwrap();
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let (paraphrase, unrelated) = (dot(&v[0], &v[1]), dot(&v[0], &v[2]));
    eprintln!("cosine: paraphrase {paraphrase:.3}, unrelated {unrelated:.3}");
    assert!(paraphrase > unrelated + 0.2, "paraphrase {paraphrase}, unrelated {unrelated}");
}

#[test]
fn bad_texts_get_typed_errors() {
    let too_many: Vec<TextInput> = (0..65).map(|_| TextInput::from("a")).collect();
    assert_eq!(texts_of(&[]), Err(TextError::NoTexts));
    assert_eq!(texts_of(&too_many), Err(TextError::TooManyTexts { count: 65, max: 64 }));
    assert_eq!(texts_of(&["ok".into(), " \n".into()]), Err(TextError::Empty { index: 1 }));
    let invalid = TextInput::Utf8(serde_bytes::ByteBuf::from(b"ab\xffcd".to_vec()));
    assert_eq!(texts_of(&["ok".into(), invalid]), Err(TextError::InvalidUtf8 { index: 1, valid_up_to: 2 }));
    let urdu = TextInput::Utf8(serde_bytes::ByteBuf::from("درخواست".as_bytes().to_vec()));
    assert_eq!(texts_of(&[urdu]).unwrap(), vec!["درخواست"]);

    let bytes = file("wordpiece.json");
    let strict = TextTokenizer::new(&bytes, &spec(&bytes, 8, Truncation::Refuse)).unwrap();
    let long = "one two three four five six seven eight nine";
    let tokens = tokenizer("wordpiece").encode(0, long).unwrap().ids.len() as u64;
    assert!(tokens > 8);
    assert_eq!(strict.encode(3, long), Err(TextError::TooLong { index: 3, tokens, max: 8 }));
    let keeping = TextTokenizer::new(&bytes, &spec(&bytes, 8, Truncation::KeepStart)).unwrap();
    let kept = keeping.encode(0, long).unwrap();
    assert_eq!((kept.ids.len(), kept.truncated), (8, true));
    assert_eq!(kept.ids.last(), strict.encode(0, "one").unwrap().ids.last(), "the last token is still [SEP]");
    assert!(!keeping.encode(0, "one two").unwrap().truncated);
}

#[test]
fn a_bundle_is_checked_at_upload() {
    let bytes = file("wordpiece.json");
    let ids = TensorSpec::new("input_ids", vec![-1, -1], DType::I64);
    let mask = TensorSpec::new("attention_mask", vec![-1, -1], DType::I64);
    let good = spec(&bytes, 128, Truncation::Refuse);
    let vocabulary = text::check_bundle(&good, &[ids.clone(), mask.clone()], &bytes).unwrap();
    assert_eq!(vocabulary, Vocabulary { size: 4096, pad_id: 0 });
    let image = TensorSpec::new("x", vec![1, 3, 48, 192], DType::F32);
    assert!(text::check_bundle(&good, &[image], &bytes).unwrap_err().contains("\"x\""));
    assert!(text::check_bundle(&good, std::slice::from_ref(&mask), &bytes).unwrap_err().contains("input_ids"));
    let floats = TensorSpec::new("input_ids", vec![-1, -1], DType::F32);
    assert!(text::check_bundle(&good, &[floats], &bytes).unwrap_err().contains("i64 or i32"));
    let huge = TextSpec { max_tokens: 100_000, ..good.clone() };
    assert!(text::check_bundle(&huge, std::slice::from_ref(&ids), &bytes).unwrap_err().contains("max_tokens"));
    assert!(text::check_bundle(&good, &[ids], b"{not json").unwrap_err().contains("not a tokenizer.json"));
}

#[test]
fn the_canister_reads_the_ids_the_front_tokenizes_with() {
    // The inference canister reads a tokenizer's vocabulary size and pad id with serde (it holds
    // no tokenizer); the text front pads nothing but tokenizes with the real one. They agree for
    // every tokenizer kind.
    for name in ["wordpiece", "bpe", "unigram", "all_minilm_l6"] {
        let file_name =
            if name == "all_minilm_l6" { "all_minilm_l6.tokenizer.json".into() } else { format!("{name}.json") };
        let bytes = file(&file_name);
        let read = text::vocabulary(&bytes).unwrap();
        let tok = tokenizer(name);
        assert_eq!(read, Vocabulary { size: tok.vocabulary_size(), pad_id: tok.pad_id() }, "{name}");
    }
}

#[test]
fn tokens_are_checked_before_they_are_padded() {
    let vocabulary = Vocabulary { size: 100, pad_id: 0 };
    let tokens = |ids: Vec<u32>, type_ids: Vec<u32>| Tokens { ids, type_ids, truncated: false };
    let check = |texts: &[Tokens]| text::check_tokens(texts, vocabulary, 8);
    assert_eq!(check(&[]), Err(TextError::NoTexts));
    assert_eq!(check(&vec![tokens(vec![1], vec![]); 65]), Err(TextError::TooManyTexts { count: 65, max: 64 }));
    assert_eq!(check(&[tokens(vec![1], vec![]), tokens(vec![], vec![])]), Err(TextError::Empty { index: 1 }));
    assert_eq!(check(&[tokens(vec![1; 9], vec![])]), Err(TextError::TooLong { index: 0, tokens: 9, max: 8 }));
    assert_eq!(check(&[tokens(vec![1, 100], vec![])]), Err(TextError::UnknownToken { index: 0, id: 100, size: 100 }));
    let types = Err(TextError::TokenTypes { index: 0, ids: 2, type_ids: 1 });
    assert_eq!(check(&[tokens(vec![1, 2], vec![0])]), types);
    assert_eq!(check(&[tokens(vec![1, 99], vec![0, 1]), tokens(vec![5; 8], vec![])]), Ok(()));
}

#[test]
fn batches_take_few_shapes() {
    assert_eq!(text::sequence_length(3, 512), 16);
    assert_eq!(text::sequence_length(17, 512), 32);
    assert_eq!(text::sequence_length(100, 100), 100, "never beyond max_tokens");
    assert_eq!(text::sequence_length(600, 1000), 1000);
    assert_eq!((text::batch_rows(1), text::batch_rows(3), text::batch_rows(12)), (1, 4, 16));
}

#[test]
fn a_model_that_fixes_its_batch_or_length_gets_exactly_that_shape() {
    let tok = tokenizer("wordpiece");
    let texts: Vec<String> = ["one", "one two three"].map(String::from).to_vec();
    let encoded = encode_all(&tok, &texts);
    let fixed = |rows: i64, seq: i64| {
        ["input_ids", "attention_mask"].map(|n| TensorSpec::new(n, vec![rows, seq], DType::I64)).to_vec()
    };
    let inputs = text::model_inputs(&encoded, &fixed(-1, 64), tok.pad_id(), 512).unwrap();
    assert_eq!(inputs[0].shape, vec![2, 64], "a fixed length is padded to, not the bucket");
    let inputs = text::model_inputs(&encoded, &fixed(8, -1), tok.pad_id(), 512).unwrap();
    assert_eq!(inputs[1].shape, vec![8, 16], "a fixed batch is filled with padding rows");
    let longest = encoded[1].ids.len() as u64;
    let short = fixed(-1, longest as i64 - 1);
    let refused = text::model_inputs(&encoded, &short, tok.pad_id(), 512);
    assert_eq!(refused, Err(TextError::TooLong { index: 1, tokens: longest, max: longest as u32 - 1 }));
    let refused = text::model_inputs(&encoded, &fixed(1, -1), tok.pad_id(), 512);
    assert_eq!(refused, Err(TextError::TooManyTexts { count: 2, max: 1 }));
}
