//! `classify_text` and `embed_text`: the texts are tokenized here with the version's own
//! tokenizer, run through the model as `classify` runs tensors (across messages, with the same
//! slots, quotas and re-checks), and read back as labels or pooled vectors.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use candid::Principal;
use inference_api::{
    InferenceError, ModelInfo, TextClassification, TextEmbedding, TextEmbeddings, TextError, TextLabels, TextRequest,
    TextSpec, TextTask,
};
use inference_engine::text::{self, Encoded, TextTokenizer};

use crate::inference::{self, engine_error, model_ref, Outcome, Ranking, MAX_OUTPUT_BYTES};
use crate::{auth, state};

/// Tokenizers kept loaded (parsing a tokenizer file takes tens of millions of instructions).
const TOKENIZERS_KEPT: usize = 8;

/// A version's file: name, version, sha256.
type FileKey = (String, u32, Vec<u8>);

thread_local! {
    /// Loaded tokenizers by file, with when each was last used.
    static TOKENIZERS: RefCell<BTreeMap<FileKey, (u64, Rc<TextTokenizer>)>> = RefCell::default();
    static CLOCK: RefCell<u64> = const { RefCell::new(0) };
}

/// The loaded tokenizer of a text model's version.
fn tokenizer_of(info: &ModelInfo, spec: &TextSpec) -> Result<Rc<TextTokenizer>, InferenceError> {
    let key = (info.name.clone(), info.version, info.sha256.clone());
    let now = CLOCK.with_borrow_mut(|c| {
        *c += 1;
        *c
    });
    if let Some(found) = TOKENIZERS.with_borrow_mut(|m| {
        m.get_mut(&key).map(|(used, t)| {
            *used = now;
            t.clone()
        })
    }) {
        return Ok(found);
    }
    let bytes = state::with(|s| s.registry.tokenizer_bytes(info))
        .ok_or_else(|| InferenceError::Engine("the version has no tokenizer".into()))?;
    // Checked at upload: failing here means the stored bytes changed, which they cannot.
    let tokenizer = Rc::new(TextTokenizer::new(&bytes, spec).map_err(InferenceError::Engine)?);
    TOKENIZERS.with_borrow_mut(|m| {
        if m.len() >= TOKENIZERS_KEPT {
            if let Some(oldest) = m.iter().min_by_key(|(_, (used, _))| *used).map(|(k, _)| k.clone()) {
                m.remove(&oldest);
            }
        }
        m.insert(key, (now, tokenizer.clone()));
    });
    Ok(tokenizer)
}

/// The version's bundle, if it is a text model for `task` (compared by kind, not settings).
fn text_spec(info: &ModelInfo, classify: bool) -> Result<TextSpec, InferenceError> {
    let spec =
        info.text.clone().ok_or_else(|| TextError::NotATextModel { name: info.name.clone(), version: info.version })?;
    let is_classifier = matches!(spec.task, TextTask::Classify { .. });
    if is_classifier != classify {
        let task = if is_classifier { "classify_text" } else { "embed_text" };
        return Err(TextError::WrongTask { name: info.name.clone(), version: info.version, task: task.into() }.into());
    }
    Ok(spec)
}

/// Tokenizes the request's texts and runs the model on them for `caller`.
async fn run(
    caller: Principal,
    request: &TextRequest,
    classify: bool,
) -> Result<(Outcome, Vec<Encoded>, TextSpec), InferenceError> {
    let info = inference::serving(&request.model, request.version)?;
    let spec = text_spec(&info, classify)?;
    // Before tokenizing: a caller whose quota is spent gets no tokenization either (it would be
    // charged, but only once its inference ran).
    crate::quota::check(caller, ic_cdk::api::time())?;
    let texts = text::texts_of(&request.texts)?;
    let tokenizer = tokenizer_of(&info, &spec)?;
    let encoded =
        texts.iter().enumerate().map(|(i, t)| tokenizer.encode(i as u32, t)).collect::<Result<Vec<_>, _>>()?;
    let inputs = text::model_inputs(&encoded, &info.inputs, tokenizer.pad_id(), spec.max_tokens)?;
    drop(tokenizer);
    let outcome = inference::run(caller, auth::inference_caller, info, &inputs, false).await?;
    Ok((outcome, encoded, spec))
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

pub async fn classify_text(caller: Principal, request: TextRequest) -> Result<TextClassification, InferenceError> {
    let (outcome, encoded, spec) = run(caller, &request, true).await?;
    let TextTask::Classify { softmax } = spec.task else { unreachable!("checked by text_spec") };
    let (scores, shape) = scores_of(&outcome)?;
    let classes = match shape[..] {
        [rows, classes] if rows >= encoded.len() && classes > 0 => classes,
        _ => {
            return Err(InferenceError::Engine(format!(
                "a classifier's output of shape {shape:?} is not one row of scores per text"
            )))
        }
    };
    let ranking = Ranking::new(&outcome.info, classes, encoded.len(), request.top_k)?;
    let texts = scores
        .chunks_exact(classes)
        .zip(&encoded)
        .map(|(row, e)| {
            let mut row = row.to_vec();
            if softmax {
                text::softmax(&mut row);
            }
            TextLabels { scores: ranking.rank(&row), tokens: e.count() }
        })
        .collect();
    Ok(TextClassification {
        texts,
        model: model_ref(&outcome.info),
        instructions: ic_cdk::api::performance_counter(1),
        messages: outcome.messages,
    })
}

pub async fn embed_text(caller: Principal, request: TextRequest) -> Result<TextEmbeddings, InferenceError> {
    let (outcome, encoded, spec) = run(caller, &request, false).await?;
    let TextTask::Embed { pooling, normalize } = spec.task else { unreachable!("checked by text_spec") };
    let (values, shape) = scores_of(&outcome)?;
    let vectors = text::pool(&values, &shape, &encoded, pooling, normalize).map_err(InferenceError::Engine)?;
    let dimensions = vectors.first().map_or(0, Vec::len);
    let bytes = (vectors.len() * (dimensions * 4 + 32)) as u64;
    if bytes > MAX_OUTPUT_BYTES {
        return Err(InferenceError::OutputTooLarge { bytes, max: MAX_OUTPUT_BYTES });
    }
    Ok(TextEmbeddings {
        texts: vectors
            .into_iter()
            .zip(&encoded)
            .map(|(vector, e)| TextEmbedding { vector, tokens: e.count() })
            .collect(),
        dimensions: dimensions as u32,
        model: model_ref(&outcome.info),
        instructions: ic_cdk::api::performance_counter(1),
        messages: outcome.messages,
    })
}
