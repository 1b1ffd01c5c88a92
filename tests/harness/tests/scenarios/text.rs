//! Text models on the real canisters: a bundle (ONNX model + tokenizer.json) uploaded as one
//! file; an agency canister classifies a batch of Urdu and English texts inter-canister through
//! the text front canister, in f32 and dynamic int8, with onnxruntime's answers;
//! all-MiniLM-L6-v2 embeds texts as onnxruntime's outputs pooled; bad texts, bad tokens and bad
//! bundles get typed errors and change nothing; only fronts speak for others.

use agency_api::{AgencyError, Settings, TextDocument};
use canister_harness::deploy::{Deployment, AGENCY_USER};
use canister_harness::{user, Principal};
use inference_api::{
    InferenceError, NotAuthorized, Pooling, RegistryError, Role, TextError, TextInput, TextRequest, TextTask, Tokens,
    TokensRequest, Truncation,
};
use inference_client::calls;
use inference_client::text::calls as text_calls;
use inference_tools::upload::text_bundle;
use model_testdata::text::{case, file, golden_tokens};

const LANGID: &str = "langid";
const MINILM: &str = "all-minilm-l6";
const LABELS: [&str; 7] = ["en", "ur", "ar", "fa", "ps", "sd", "hi"];

/// The labels text_models.py trained the language identifier with.
fn trained_labels() -> Vec<String> {
    let json: serde_json::Value = serde_json::from_slice(&file("langid.json")).unwrap();
    json["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect()
}

/// The inference canister with the language identifier (f32) active, its text front, and the
/// agency set to classify texts with them.
fn deployed() -> Deployment {
    assert_eq!(trained_labels(), LABELS);
    let mut d = Deployment::new("no-image-model");
    let classify = TextTask::Classify { softmax: true };
    d.publish_text(LANGID, "langid.onnx", "wordpiece.json", 128, Truncation::KeepStart, classify, &LABELS);
    let settings = Settings {
        inference_canister: d.inference,
        model: "no-image-model".into(),
        max_decisions: None,
        text_model: Some(LANGID.into()),
        text_canister: Some(d.text),
    };
    let controller = d.controller;
    d.call_agency(controller, agency_api::calls::set_settings(&settings)).0.unwrap().unwrap();
    d
}

fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// onnxruntime's label and probability for each sample text, from the golden logits.
fn onnxruntime_answers(model: &str, texts: usize) -> Vec<(String, f32)> {
    let c = case(model);
    let (_, shape, logits) = &c.outputs[0];
    logits
        .chunks_exact(shape[1])
        .take(texts)
        .map(|row| {
            let p = softmax(row);
            let best = model_testdata::argmax(&p);
            (LABELS[best].to_string(), p[best])
        })
        .collect()
}

fn decide_texts(d: &mut Deployment, prefix: &str, sample: &[String]) -> Result<Vec<agency_api::Decision>, AgencyError> {
    let documents: Vec<TextDocument> =
        sample.iter().enumerate().map(|(i, t)| TextDocument { id: format!("{prefix}-{i}"), text: t.clone() }).collect();
    d.call_agency(user(AGENCY_USER), agency_api::calls::decide_texts(&documents)).0.expect("decide_texts replies")
}

#[test]
fn an_agency_classifies_a_batch_of_urdu_and_english_texts_with_onnxruntimes_answers_in_f32_and_int8() {
    let mut d = deployed();
    let (sample, _) = golden_tokens();
    assert!(sample.iter().any(|t| t.contains("درخواست")) && sample.iter().any(|t| t.contains("petition")));
    for (variant, tolerance) in [("langid", 1e-5), ("langid.dyn_u8", 1e-4)] {
        if variant != "langid" {
            let classify = TextTask::Classify { softmax: true };
            let file = format!("{variant}.onnx");
            let info = d.publish_text(LANGID, &file, "wordpiece.json", 128, Truncation::KeepStart, classify, &LABELS);
            assert_eq!(info.version, 2);
        }
        let decisions = decide_texts(&mut d, variant, &sample).expect("decisions");
        let expected = onnxruntime_answers(variant, sample.len());
        assert_eq!(decisions.len(), sample.len());
        for (i, (decision, (label, score))) in decisions.iter().zip(&expected).enumerate() {
            assert_eq!(&decision.label, label, "{variant}: text {i} ({})", sample[i]);
            assert!((decision.score - score).abs() <= tolerance, "{variant}: text {i}: {} vs {score}", decision.score);
            assert_eq!(decision.model.name, LANGID);
            assert_eq!(decision.submitted_by, Some(user(AGENCY_USER)));
        }
        // English, Urdu and Hindi sentences named so, whichever form computed them (the small
        // model takes the Urdu petition, text 1, for Pashto: see models/README.md).
        let labels: Vec<&str> = decisions.iter().map(|d| d.label.as_str()).collect();
        assert_eq!((labels[0], labels[3], labels[4], labels[8], labels[9]), ("en", "ur", "ur", "hi", "en"));
        eprintln!(
            "{variant}: {} decisions equal onnxruntime's, in {} messages",
            decisions.len(),
            decisions[0].messages
        );
    }
}

#[test]
fn all_minilm_embeds_texts_as_onnxruntimes_hidden_states_pooled() {
    let mut d = deployed();
    let embed = TextTask::Embed { pooling: Pooling::Mean, normalize: true };
    let t = "all_minilm_l6.tokenizer.json";
    d.publish_text(MINILM, "all_minilm_l6.int8w.onnx", t, 256, Truncation::KeepStart, embed, &[]);
    let (sample, _) = golden_tokens();
    let chosen = [0, 9, 10];
    let texts: Vec<TextInput> = chosen.iter().map(|&i| TextInput::Text(sample[i].clone())).collect();
    let request = TextRequest { model: MINILM.into(), version: None, texts, top_k: None };
    let agency = d.agency;
    let answer =
        d.call_text_from_canister(agency, text_calls::embed_text(&request)).unwrap().unwrap().expect("vectors");
    assert_eq!(answer.dimensions, 384);
    // onnxruntime's hidden states for the whole sample, mean-pooled over each text's tokens.
    let c = case("all_minilm_l6");
    let (_, shape, hidden) = &c.outputs[0];
    let mask = &c.inputs.iter().find(|(n, _, _)| n == "attention_mask").unwrap().2;
    let (seq, dim) = (shape[1], shape[2]);
    for (got, &i) in answer.texts.iter().zip(&chosen) {
        let tokens = mask[i * seq..(i + 1) * seq].iter().filter(|&&m| m == 1).count();
        assert_eq!(got.tokens.tokens as usize, tokens, "text {i}: tokens");
        let mut mean = vec![0f32; dim];
        for token in hidden[i * seq * dim..].chunks_exact(dim).take(tokens) {
            mean.iter_mut().zip(token).for_each(|(m, v)| *m += v / tokens as f32);
        }
        let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
        let cosine: f32 = got.vector.iter().zip(&mean).map(|(a, b)| a * b / norm).sum();
        assert!(cosine > 0.9999, "text {i}: cosine with onnxruntime's vector is {cosine}");
    }
    eprintln!(
        "{} vectors equal onnxruntime's, {} instructions in {} messages",
        chosen.len(),
        answer.instructions,
        answer.messages
    );
}

fn classify_as(
    d: &mut Deployment,
    caller: Principal,
    request: &TextRequest,
) -> Result<inference_api::TextClassification, InferenceError> {
    d.call_text_from_canister(caller, text_calls::classify_text(request)).unwrap().unwrap()
}

fn request(texts: Vec<TextInput>) -> TextRequest {
    TextRequest { model: LANGID.into(), version: None, texts, top_k: Some(2) }
}

#[test]
fn bad_texts_get_typed_errors() {
    let mut d = deployed();
    let agency = d.agency;
    let text = |e: TextError| Err(InferenceError::Text(e));
    assert_eq!(classify_as(&mut d, agency, &request(vec![])), text(TextError::NoTexts));
    let empty = request(vec!["سلام".into(), "".into()]);
    assert_eq!(classify_as(&mut d, agency, &empty), text(TextError::Empty { index: 1 }));
    let blob = TextInput::Utf8(serde_bytes::ByteBuf::from(b"\xd8\xb3\xff".to_vec()));
    let invalid = request(vec![blob]);
    assert_eq!(classify_as(&mut d, agency, &invalid), text(TextError::InvalidUtf8 { index: 0, valid_up_to: 2 }));
    let many = request((0..65).map(|_| "hello".into()).collect());
    assert_eq!(classify_as(&mut d, agency, &many), text(TextError::TooManyTexts { count: 65, max: 64 }));
    // An embedding request to a classifier, and a text request to a tensor model.
    let wrong = request(vec!["hello".into()]);
    let answer = d.call_text_from_canister(agency, text_calls::embed_text(&wrong)).unwrap().unwrap();
    assert!(matches!(answer, Err(InferenceError::Text(TextError::WrongTask { .. }))), "{answer:?}");
    let c = model_testdata::case("rapidocr_cls", "fp32");
    d.publish("image", &c, &["0", "180"]);
    let image = TextRequest { model: "image".into(), ..request(vec!["hello".into()]) };
    let not_text = text(TextError::NotATextModel { name: "image".into(), version: 1 });
    assert_eq!(classify_as(&mut d, agency, &image), not_text);
    // A canister nobody allowed is refused before anything is tokenized.
    let controller = d.controller;
    let stranger = d.ic.create_canister(controller);
    let answer = classify_as(&mut d, stranger, &request(vec!["hello".into()]));
    assert!(matches!(answer, Err(InferenceError::NotAuthorized(_))), "{answer:?}");

    // The bundle keeps a long text's first 128 tokens and says so; a strict one refuses it.
    let long = "پاکستان ".repeat(300);
    let kept = classify_as(&mut d, agency, &request(vec![long.as_str().into(), "hello".into()])).unwrap();
    assert_eq!((kept.texts[0].tokens.tokens, kept.texts[0].tokens.truncated), (128, true));
    assert!(!kept.texts[1].tokens.truncated);
    let classify = TextTask::Classify { softmax: true };
    d.publish_text("strict", "langid.onnx", "wordpiece.json", 64, Truncation::Refuse, classify, &LABELS);
    let strict = TextRequest { model: "strict".into(), ..request(vec!["ok".into(), long.as_str().into()]) };
    let refused = classify_as(&mut d, agency, &strict);
    assert!(matches!(refused, Err(InferenceError::Text(TextError::TooLong { index: 1, max: 64, .. }))), "{refused:?}");
}

#[test]
fn a_bad_bundle_is_refused_and_the_serving_version_keeps_serving() {
    let mut d = deployed();
    let maintainer = d.maintainer;
    let model = file("langid.onnx");
    let tokenizer = file("wordpiece.json");
    let classify = TextTask::Classify { softmax: true };
    let before = d.state_fingerprint();
    // Forced: a version of this name already holds the model (the uploader would answer it).
    let options = inference_tools::upload::UploadOptions { force: true, ..Deployment::upload_options(1 << 20) };
    // The declared tokenizer is not the file's tail.
    let (bundle, mut spec) = text_bundle(&model, &tokenizer, 128, Truncation::KeepStart, classify);
    spec.tokenizer_sha256[0] ^= 1;
    let upload = Deployment::request(LANGID, vec![], None, Some(spec));
    let refused = d.upload_request(maintainer, &bundle, upload, &options).unwrap_err().to_string();
    assert!(refused.contains("not the tokenizer declared"), "{refused}");
    // A tail that is not a tokenizer.
    let (bundle, spec) = text_bundle(&model, b"{\"model\": 42}", 128, Truncation::KeepStart, classify);
    let upload = Deployment::request(LANGID, vec![], None, Some(spec));
    let refused = d.upload_request(maintainer, &bundle, upload, &options);
    assert!(
        matches!(&refused, Err(inference_tools::upload::UploadError::Registry(RegistryError::InvalidModel(m))) if m.contains("tokenizer")),
        "{refused:?}"
    );
    // A tokenizer bundled with a model that takes no tokens.
    let image = model_testdata::case("rapidocr_cls", "fp32").model;
    let (bundle, spec) = text_bundle(&image, &tokenizer, 128, Truncation::KeepStart, classify);
    let upload = Deployment::request(LANGID, vec![], None, Some(spec));
    assert!(d.upload_request(maintainer, &bundle, upload, &options).is_err());
    // Nothing was recorded, and the first version still answers.
    let after = d.state_fingerprint();
    let registry = |s: &str| s.lines().nth(1).unwrap().to_string();
    assert_eq!(registry(&before), registry(&after), "no version was added");
    let agency = d.agency;
    let answer = classify_as(&mut d, agency, &request(vec!["The petition was received.".into()])).unwrap();
    assert_eq!((answer.model.version, answer.texts[0].scores[0].label.as_str()), (1, "en"));
}

#[test]
fn a_pool_member_copies_a_text_bundle_and_classifies_with_the_same_tokenizer() {
    let mut d = deployed();
    let (controller, maintainer, first) = (d.controller, d.maintainer, d.inference);
    let second = d.ic.create_canister(controller);
    let wasm = canister_harness::canister_wasm("inference_canister");
    d.ic.install_canister(second, &wasm, candid::encode_args((None::<inference_api::InitArgs>,)).unwrap(), controller)
        .expect("installs");
    let role = |d: &mut Deployment, call: inference_client::Call<Result<(), inference_api::RoleError>>| {
        canister_harness::call(&mut *d.ic, second, controller, call).0.unwrap().unwrap()
    };
    role(&mut d, calls::grant_maintainer(maintainer));
    role(&mut d, calls::allow_caller(user(5)));
    d.as_admin(calls::grant_maintainer(second)).unwrap();
    d.as_admin(calls::allow_caller(user(5))).unwrap();
    let source = d.call(maintainer, calls::model_info(LANGID, None)).0.unwrap().unwrap();
    let copy = canister_harness::call(&mut *d.ic, second, maintainer, calls::replicate(first, LANGID, source.version))
        .0
        .unwrap()
        .expect("copied");
    assert_eq!((copy.sha256.clone(), copy.text.clone()), (source.sha256.clone(), source.text.clone()));
    canister_harness::call(&mut *d.ic, second, maintainer, calls::activate(LANGID, copy.version)).0.unwrap().unwrap();
    let (sample, _) = golden_tokens();
    let texts: Vec<TextInput> = sample.iter().map(|t| t.as_str().into()).collect();
    let request = TextRequest { model: LANGID.into(), version: None, texts, top_k: Some(1) };
    let second_front = d.install_front(second);
    let here = d.call_text(user(5), text_calls::classify_text(&request)).0;
    let there = canister_harness::call(&mut *d.ic, second_front, user(5), text_calls::classify_text(&request)).0;
    let labels = |r: Result<Result<inference_api::TextClassification, InferenceError>, _>| {
        r.unwrap().unwrap().texts.into_iter().map(|t| (t.scores[0].label.clone(), t.tokens)).collect::<Vec<_>>()
    };
    assert_eq!(labels(here), labels(there), "the copy answers as the original, token for token");
}

#[test]
fn a_caller_whose_quota_is_spent_gets_no_tokenization() {
    let mut d = deployed();
    let agency = d.agency;
    // One inference spends a 1-instruction quota; the next is refused before any tokenizing.
    d.configure(|c| c.instruction_quota_per_caller = 1);
    let texts = request(vec!["The petition was received.".into()]);
    assert!(classify_as(&mut d, agency, &texts).is_ok(), "the first call runs: the quota is checked before");
    let refused = classify_as(&mut d, agency, &texts);
    assert!(matches!(refused, Err(InferenceError::QuotaExceeded { .. })), "{refused:?}");
    // The quota is checked before the texts are even read: an empty one is not reported.
    let refused = classify_as(&mut d, agency, &request(vec!["".into()]));
    assert!(matches!(refused, Err(InferenceError::QuotaExceeded { .. })), "{refused:?}");
}

#[test]
fn token_endpoints_check_every_id_and_only_fronts_speak_for_others() {
    let mut d = deployed();
    let (agency, front) = (d.agency, d.text);
    let tokenizer = file("wordpiece.json");
    let vocabulary = inference_engine::text::vocabulary(&tokenizer).unwrap();
    let info = d.call(d.maintainer, calls::model_info(LANGID, None)).0.unwrap().unwrap();
    assert_eq!(info.vocabulary, Some(vocabulary), "read from the bundle's tokenizer at the finish");
    // An agency that tokenizes itself gets exactly what the front answers for its text.
    let spec = info.text.clone().unwrap();
    let local = inference_tokenizer::TextTokenizer::new(&tokenizer, &spec).unwrap();
    let text = "The petition was received.";
    let tokens = |texts: Vec<Tokens>, on_behalf_of| TokensRequest {
        model: LANGID.into(),
        version: None,
        texts,
        top_k: Some(2),
        on_behalf_of,
    };
    let own = tokens(vec![local.encode(0, text).unwrap()], None);
    let direct = d.call_from_canister(agency, calls::classify_tokens(&own)).unwrap().unwrap().unwrap();
    let through_front = classify_as(&mut d, agency, &request(vec![text.into()])).unwrap();
    assert_eq!(direct.texts, through_front.texts);

    // Every id is checked against the vocabulary before anything runs; token types too.
    let unknown = tokens(vec![Tokens { ids: vec![2, vocabulary.size, 3], ..Tokens::default() }], None);
    let refused = d.call_from_canister(agency, calls::classify_tokens(&unknown)).unwrap().unwrap();
    let expected = TextError::UnknownToken { index: 0, id: vocabulary.size, size: vocabulary.size };
    assert_eq!(refused, Err(InferenceError::Text(expected)));
    let types = tokens(vec![Tokens { ids: vec![2, 3], type_ids: vec![0], truncated: false }], None);
    let refused = d.call_from_canister(agency, calls::classify_tokens(&types)).unwrap().unwrap();
    assert_eq!(refused, Err(InferenceError::Text(TextError::TokenTypes { index: 0, ids: 2, type_ids: 1 })));
    let empty = tokens(vec![Tokens::default()], None);
    let refused = d.call_from_canister(agency, calls::classify_tokens(&empty)).unwrap().unwrap();
    assert_eq!(refused, Err(InferenceError::Text(TextError::Empty { index: 0 })));

    // An allowed caller that is not a front cannot spend another's quota, nor read tokenizers
    // or ask for what to tokenize.
    let for_another = tokens(vec![local.encode(0, text).unwrap()], Some(user(5)));
    let refused = d.call_from_canister(agency, calls::classify_tokens(&for_another)).unwrap().unwrap();
    assert_eq!(refused, Err(InferenceError::NotAuthorized(NotAuthorized { caller: agency, needs: Role::Front })));
    let refused = d.call_from_canister(agency, calls::text_model(LANGID, None, agency, true)).unwrap().unwrap();
    assert!(matches!(refused, Err(InferenceError::NotAuthorized(NotAuthorized { needs: Role::Front, .. }))));
    let refused = d.call_from_canister(agency, calls::tokenizer_chunk(LANGID, 1, 0)).unwrap().unwrap();
    assert!(matches!(refused, Err(InferenceError::NotAuthorized(_))), "{refused:?}");
    // A front speaks only for allowed callers.
    let stranger = user(77);
    let for_stranger = tokens(vec![local.encode(0, text).unwrap()], Some(stranger));
    let refused = d.call_from_canister(front, calls::classify_tokens(&for_stranger)).unwrap().unwrap();
    assert_eq!(refused, Err(InferenceError::NotAuthorized(NotAuthorized { caller: stranger, needs: Role::Caller })));
    // Once disallowed, a front is refused too, and its callers with it.
    let controller = d.controller;
    d.as_admin(calls::disallow_front(front)).unwrap();
    let refused = classify_as(&mut d, agency, &request(vec![text.into()]));
    assert_eq!(refused, Err(InferenceError::NotAuthorized(NotAuthorized { caller: front, needs: Role::Front })));
    let roles = d.call(controller, calls::roles()).0.unwrap().unwrap();
    assert!(roles.fronts.is_empty());
}
