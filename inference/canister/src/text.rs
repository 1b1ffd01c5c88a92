//! Text models without a tokenizer here: the token endpoints (`classify_tokens`,
//! `embed_tokens`) take texts already tokenized with the version's own tokenizer, pad them into
//! the model's inputs, run the model as `classify` runs tensors (across messages, with the same
//! slots, quotas and re-checks), and read the outputs back as labels or pooled vectors. The
//! text front canister (`inference/text-canister`) tokenizes for agencies: it asks
//! [`text_model`] which version to tokenize for, reads the tokenizer with [`tokenizer_chunk`]
//! once per tokenizer, and calls the token endpoints on the agency's behalf.
//!
//! Tokenizing here would need the `tokenizers` crate, over a MiB of code: more than this
//! canister's code budget leaves (`tests/harness/tests/scenarios/inference_canister.rs`).

use candid::Principal;
use inference_api::{
    InferenceError, ModelInfo, TextClassification, TextEmbedding, TextEmbeddings, TextError, TextLabels, TextModel,
    TextSpec, TextTask, TokensRequest, Vocabulary, TOKENIZER_CHUNK_BYTES,
};
use inference_engine::text;

use crate::audit::{self, Pending};
use crate::inference::{self, engine_error, model_ref, Outcome, Ranking, MAX_OUTPUT_BYTES};
use crate::{auth, state};

/// The version's bundle and vocabulary, if it is a text model for `task` (compared by kind, not
/// settings).
fn text_spec(info: &ModelInfo, classify: bool) -> Result<(TextSpec, Vocabulary), InferenceError> {
    let spec =
        info.text.clone().ok_or_else(|| TextError::NotATextModel { name: info.name.clone(), version: info.version })?;
    let is_classifier = matches!(spec.task, TextTask::Classify { .. });
    if is_classifier != classify {
        let task = if is_classifier { "classify_text" } else { "embed_text" };
        return Err(TextError::WrongTask { name: info.name.clone(), version: info.version, task: task.into() }.into());
    }
    let vocabulary = match info.vocabulary {
        Some(vocabulary) => vocabulary,
        // A version recorded before the finish read it (stable layout 5): read it now.
        None => state::with(|s| s.registry.tokenizer_bytes(info))
            .ok_or_else(|| InferenceError::Engine("the version has no tokenizer".into()))
            .and_then(|bytes| text::vocabulary(&bytes).map_err(InferenceError::Engine))?,
    };
    Ok((spec, vocabulary))
}

/// What a text front tokenizes for, for `agency` (which must be an allowed caller with quota
/// left: a front tokenizes nothing for anyone else). The caller must be a front.
pub fn text_model(
    caller: Principal,
    name: &str,
    version: Option<u32>,
    agency: Principal,
    classify: bool,
) -> Result<TextModel, InferenceError> {
    let agency = auth::token_caller(caller, Some(agency))?;
    crate::quota::check(agency, ic_cdk::api::time())?;
    let info = inference::serving(name, version)?;
    let (spec, vocabulary) = text_spec(&info, classify)?;
    Ok(TextModel { model: model_ref(&info), spec, vocabulary })
}

/// Bytes `offset..` of a serving text version's tokenizer, at most [`TOKENIZER_CHUNK_BYTES`];
/// empty at the end.
pub fn tokenizer_chunk(name: &str, version: u32, offset: u64) -> Result<Vec<u8>, InferenceError> {
    let info = inference::serving(name, Some(version))?;
    let spec = info.text.as_ref().ok_or_else(|| TextError::NotATextModel { name: name.into(), version })?;
    let start = offset.min(spec.tokenizer_bytes);
    let len = (spec.tokenizer_bytes - start).min(TOKENIZER_CHUNK_BYTES);
    Ok(state::with(|s| s.registry.bytes_range(&info, info.model_bytes() + start, len)))
}

/// Checks the request's tokens against the version and runs the model on them for `caller`.
async fn run(
    caller: Principal,
    request: &TokensRequest,
    classify: bool,
) -> Result<(Outcome, TextSpec), InferenceError> {
    let caller = auth::token_caller(caller, request.on_behalf_of)?;
    let info = inference::serving(&request.model, request.version)?;
    let (spec, vocabulary) = text_spec(&info, classify)?;
    text::check_tokens(&request.texts, vocabulary, spec.max_tokens)?;
    let inputs = text::model_inputs(&request.texts, &info.inputs, vocabulary.pad_id, spec.max_tokens)?;
    let outcome = inference::run(caller, auth::inference_caller, info, &inputs, false).await?;
    Ok((outcome, spec))
}

/// The first floating-point output as f32 values and its shape.
fn scores_of(outcome: &Outcome) -> Result<(Vec<f32>, Vec<usize>), InferenceError> {
    let value = outcome
        .outputs
        .iter()
        .find(|v| v.datum_type().is_float())
        .ok_or_else(|| InferenceError::Engine("the model has no floating-point output".into()))?;
    let t = value.cast_to::<f32>().map_err(engine_error)?;
    let plain = t.try_as_plain_ram().map_err(engine_error)?;
    Ok((plain.as_slice::<f32>().map_err(engine_error)?.to_vec(), value.shape().to_vec()))
}

/// Checks who the call runs for (see [`auth::token_caller`]); what it then does is logged.
fn pending(caller: Principal, request: &TokensRequest, endpoint: &'static str) -> Result<Pending, InferenceError> {
    let runs_for = auth::token_caller(caller, request.on_behalf_of)?;
    let via = (runs_for != caller).then_some(caller);
    Pending::begin(runs_for, via, endpoint, &request.model, request.version, || audit::tokens_sha256(&request.texts))
}

pub async fn classify_tokens(caller: Principal, request: TokensRequest) -> Result<TextClassification, InferenceError> {
    let pending = pending(caller, &request, "classify_tokens")?;
    pending.close(classify_answer(caller, request).await)
}

pub async fn embed_tokens(caller: Principal, request: TokensRequest) -> Result<TextEmbeddings, InferenceError> {
    let pending = pending(caller, &request, "embed_tokens")?;
    pending.close(embed_answer(caller, request).await)
}

async fn classify_answer(
    caller: Principal,
    request: TokensRequest,
) -> Result<(TextClassification, Vec<u8>), InferenceError> {
    let (outcome, spec) = run(caller, &request, true).await?;
    let output_sha256 = outcome.output_sha256()?;
    let TextTask::Classify { softmax } = spec.task else { unreachable!("checked by text_spec") };
    let (scores, shape) = scores_of(&outcome)?;
    let texts = &request.texts;
    let classes = match shape[..] {
        [rows, classes] if rows >= texts.len() && classes > 0 => classes,
        _ => {
            return Err(InferenceError::Engine(format!(
                "a classifier's output of shape {shape:?} is not one row of scores per text"
            )))
        }
    };
    let ranking = Ranking::new(&outcome.info, classes, texts.len(), request.top_k)?;
    let texts = scores
        .chunks_exact(classes)
        .zip(texts)
        .map(|(row, tokens)| {
            let mut row = row.to_vec();
            if softmax {
                text::softmax(&mut row);
            }
            TextLabels { scores: ranking.rank(&row), tokens: tokens.count() }
        })
        .collect();
    let answer = TextClassification {
        texts,
        model: model_ref(&outcome.info),
        instructions: ic_cdk::api::performance_counter(1),
        messages: outcome.messages,
        receipt: None,
    };
    Ok((answer, output_sha256))
}

async fn embed_answer(caller: Principal, request: TokensRequest) -> Result<(TextEmbeddings, Vec<u8>), InferenceError> {
    let (outcome, spec) = run(caller, &request, false).await?;
    let output_sha256 = outcome.output_sha256()?;
    let TextTask::Embed { pooling, normalize } = spec.task else { unreachable!("checked by text_spec") };
    let (values, shape) = scores_of(&outcome)?;
    let vectors = text::pool(&values, &shape, &request.texts, pooling, normalize).map_err(InferenceError::Engine)?;
    let dimensions = vectors.first().map_or(0, Vec::len);
    let bytes = (vectors.len() * (dimensions * 4 + 32)) as u64;
    if bytes > MAX_OUTPUT_BYTES {
        return Err(InferenceError::OutputTooLarge { bytes, max: MAX_OUTPUT_BYTES });
    }
    let answer = TextEmbeddings {
        texts: vectors
            .into_iter()
            .zip(&request.texts)
            .map(|(vector, tokens)| TextEmbedding { vector, tokens: tokens.count() })
            .collect(),
        dimensions: dimensions as u32,
        model: model_ref(&outcome.info),
        instructions: ic_cdk::api::performance_counter(1),
        messages: outcome.messages,
        receipt: None,
    };
    Ok((answer, output_sha256))
}
