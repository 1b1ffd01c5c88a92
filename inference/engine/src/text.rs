//! Text models: checking a bundle at upload, tokenizing a batch of texts into the model's
//! inputs exactly as Python's `tokenizers` does, and reading the outputs back as labels or
//! pooled vectors.
//!
//! Batches are padded to fixed sizes (rows to a power of two, tokens to a bucket of
//! [`SEQUENCE_BUCKETS`]) so that a model serves every batch with a handful of plans: a plan is
//! built per concrete input shape, and building one costs far more than running it once.

use inference_api::{
    DType, InputTensor, Pooling, TensorData, TensorSpec, TextError, TextInput, TextSpec, TokenCount, Truncation,
    MAX_TEXTS, MAX_TEXT_TOKENS,
};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// Token lengths a batch is padded to (the smallest that holds its longest text, at most the
/// bundle's `max_tokens`).
pub const SEQUENCE_BUCKETS: [usize; 6] = [16, 32, 64, 128, 256, 512];

/// What each model input carries, recognised by the names transformers' exporters give them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    InputIds,
    AttentionMask,
    TokenTypeIds,
    PositionIds,
}

fn role(name: &str) -> Option<Role> {
    Some(match name {
        "input_ids" => Role::InputIds,
        "attention_mask" => Role::AttentionMask,
        "token_type_ids" => Role::TokenTypeIds,
        "position_ids" => Role::PositionIds,
        _ => return None,
    })
}

/// A bundle is sound: a tokenizer that loads, a length within bounds, and model inputs that
/// are all token tensors (`input_ids` among them) of rank 2 and an integer type.
pub fn check_bundle(spec: &TextSpec, inputs: &[TensorSpec], tokenizer: &[u8]) -> Result<(), String> {
    if spec.max_tokens < 2 || spec.max_tokens > MAX_TEXT_TOKENS {
        return Err(format!("max_tokens is {}; it must be 2 to {MAX_TEXT_TOKENS}", spec.max_tokens));
    }
    for input in inputs {
        let Some(_) = role(&input.name) else {
            return Err(format!(
                "input \"{}\" is not one a tokenizer fills (input_ids, attention_mask, token_type_ids, position_ids)",
                input.name
            ));
        };
        if !matches!(input.dtype, DType::I64 | DType::I32) {
            return Err(format!("input \"{}\" is {}; token inputs are i64 or i32", input.name, input.dtype));
        }
        if !input.shape.is_empty() && input.shape.len() != 2 {
            return Err(format!(
                "input \"{}\" has {} dimensions; token inputs are [batch, tokens]",
                input.name,
                input.shape.len()
            ));
        }
    }
    if !inputs.iter().any(|i| role(&i.name) == Some(Role::InputIds)) {
        return Err("the model has no \"input_ids\" input".into());
    }
    TextTokenizer::new(tokenizer, spec).map(|_| ())
}

/// A bundle's tokenizer, set up for the bundle's length and truncation (the tokenizer file's
/// own padding and truncation settings are replaced: this module pads, and the bundle decides
/// how to truncate).
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    max_tokens: u32,
    truncation: Truncation,
    pad_id: u32,
}

/// One text's tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub truncated: bool,
}

impl Encoded {
    pub fn count(&self) -> TokenCount {
        TokenCount { tokens: self.ids.len() as u32, truncated: self.truncated }
    }
}

impl TextTokenizer {
    pub fn new(bytes: &[u8], spec: &TextSpec) -> Result<TextTokenizer, String> {
        let mut inner = Tokenizer::from_bytes(bytes).map_err(|e| format!("the tokenizer does not load: {e}"))?;
        let pad_id = inner
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| ["[PAD]", "<pad>", "<|endoftext|>"].iter().find_map(|t| inner.token_to_id(t)))
            .unwrap_or(0);
        inner.with_padding(None);
        let truncation = match spec.truncation {
            Truncation::Refuse => None,
            Truncation::KeepStart => Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: spec.max_tokens as usize,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }),
        };
        inner.with_truncation(truncation).map_err(|e| format!("the tokenizer cannot truncate: {e}"))?;
        Ok(TextTokenizer { inner, max_tokens: spec.max_tokens, truncation: spec.truncation, pad_id })
    }

    /// Text `index` of a request as tokens, with the tokenizer's special tokens.
    pub fn encode(&self, index: u32, text: &str) -> Result<Encoded, TextError> {
        let encoding =
            self.inner.encode_fast(text, true).map_err(|e| TextError::Tokenizer { index, message: e.to_string() })?;
        let ids = encoding.get_ids().to_vec();
        if ids.len() > self.max_tokens as usize {
            // Only with `Refuse`: `KeepStart` truncated it already.
            return Err(TextError::TooLong { index, tokens: ids.len() as u64, max: self.max_tokens });
        }
        let truncated = self.truncation == Truncation::KeepStart && !encoding.get_overflowing().is_empty();
        Ok(Encoded { type_ids: encoding.get_type_ids().to_vec(), ids, truncated })
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
}

/// The request's texts as strings: at least one, at most [`MAX_TEXTS`], none empty, all UTF-8.
pub fn texts_of(inputs: &[TextInput]) -> Result<Vec<&str>, TextError> {
    if inputs.is_empty() {
        return Err(TextError::NoTexts);
    }
    if inputs.len() > MAX_TEXTS as usize {
        return Err(TextError::TooManyTexts { count: inputs.len() as u64, max: MAX_TEXTS });
    }
    inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let index = index as u32;
            let text = match input {
                TextInput::Text(s) => s.as_str(),
                TextInput::Utf8(bytes) => std::str::from_utf8(bytes)
                    .map_err(|e| TextError::InvalidUtf8 { index, valid_up_to: e.valid_up_to() as u64 })?,
            };
            if text.trim().is_empty() {
                return Err(TextError::Empty { index });
            }
            Ok(text)
        })
        .collect()
}

/// Tokens a batch whose longest text has `longest` is padded to: its bucket, or beyond the
/// last bucket the next multiple of it, never beyond `max_tokens`.
pub fn sequence_length(longest: usize, max_tokens: u32) -> usize {
    let last = SEQUENCE_BUCKETS[SEQUENCE_BUCKETS.len() - 1];
    let fitting = SEQUENCE_BUCKETS.iter().copied().find(|&b| b >= longest).unwrap_or(longest.div_ceil(last) * last);
    fitting.min(max_tokens as usize).max(longest)
}

/// Rows a batch of `texts` is padded to: the next power of two.
pub fn batch_rows(texts: usize) -> usize {
    texts.next_power_of_two()
}

/// The batch's shape: rows and tokens, each the model's own where its input fixes them (a text
/// or a batch beyond it refused), else the padded sizes of [`batch_rows`] and
/// [`sequence_length`].
fn batch_shape(encoded: &[Encoded], specs: &[TensorSpec], max_tokens: u32) -> Result<(usize, usize), TextError> {
    let fixed = |dim: usize| specs.iter().find_map(|s| s.shape.get(dim).and_then(|&d| usize::try_from(d).ok()));
    let longest = encoded.iter().map(|e| e.ids.len()).max().unwrap_or(1);
    let rows = match fixed(0) {
        Some(rows) if encoded.len() > rows => {
            return Err(TextError::TooManyTexts { count: encoded.len() as u64, max: rows as u32 })
        }
        Some(rows) => rows,
        None => batch_rows(encoded.len()),
    };
    let seq = match fixed(1) {
        Some(seq) => {
            if let Some(index) = encoded.iter().position(|e| e.ids.len() > seq) {
                let tokens = encoded[index].ids.len() as u64;
                return Err(TextError::TooLong { index: index as u32, tokens, max: seq as u32 });
            }
            seq
        }
        None => sequence_length(longest, max_tokens),
    };
    Ok((rows, seq))
}

/// The model's inputs for a batch, in the model's input order: token ids padded with the
/// tokenizer's pad id, the attention mask (0 on padding), token types and positions, as the
/// model's element type. Rows beyond the texts are all padding (mask 0).
pub fn model_inputs(
    encoded: &[Encoded],
    specs: &[TensorSpec],
    pad_id: u32,
    max_tokens: u32,
) -> Result<Vec<InputTensor>, TextError> {
    let (rows, seq) = batch_shape(encoded, specs, max_tokens)?;
    Ok(specs
        .iter()
        .map(|spec| {
            let mut values = vec![0i64; rows * seq];
            for (r, row) in values.chunks_exact_mut(seq).enumerate() {
                let text = encoded.get(r);
                let len = text.map_or(0, |t| t.ids.len());
                match role(&spec.name) {
                    Some(Role::InputIds) => {
                        row.fill(pad_id as i64);
                        for (v, &id) in row.iter_mut().zip(text.map(|t| t.ids.as_slice()).unwrap_or(&[])) {
                            *v = id as i64;
                        }
                    }
                    Some(Role::AttentionMask) => row[..len].fill(1),
                    Some(Role::TokenTypeIds) => {
                        for (v, &t) in row.iter_mut().zip(text.map(|t| t.type_ids.as_slice()).unwrap_or(&[])) {
                            *v = t as i64;
                        }
                    }
                    Some(Role::PositionIds) => {
                        for (i, v) in row.iter_mut().enumerate() {
                            *v = i as i64;
                        }
                    }
                    // Refused at upload.
                    None => {}
                }
            }
            let data = match spec.dtype {
                DType::I32 => TensorData::I32(values.into_iter().map(|v| v as i32).collect()),
                _ => TensorData::I64(values),
            };
            InputTensor { shape: vec![rows as u64, seq as u64], data }
        })
        .collect())
}

/// Probabilities from one row of logits (max-subtracted, so no overflow).
pub fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// One vector per text from an output of shape `[rows, seq, dim]` (or `[rows, dim]`, taken as
/// it is whatever the pooling), pooled over each text's tokens.
pub fn pool(
    output: &[f32],
    shape: &[usize],
    encoded: &[Encoded],
    pooling: Pooling,
    normalize: bool,
) -> Result<Vec<Vec<f32>>, String> {
    let vectors: Vec<Vec<f32>> = match *shape {
        [rows, dim] if rows >= encoded.len() => {
            output.chunks_exact(dim).take(encoded.len()).map(<[f32]>::to_vec).collect()
        }
        [rows, seq, dim] if rows >= encoded.len() && pooling != Pooling::Pooled => encoded
            .iter()
            .enumerate()
            .map(|(r, text)| {
                let tokens = &output[r * seq * dim..(r + 1) * seq * dim];
                match pooling {
                    Pooling::Cls => tokens[..dim].to_vec(),
                    _ => {
                        let n = text.ids.len().clamp(1, seq);
                        let mut sum = vec![0f32; dim];
                        for token in tokens.chunks_exact(dim).take(n) {
                            for (s, v) in sum.iter_mut().zip(token) {
                                *s += v;
                            }
                        }
                        sum.iter().map(|s| s / n as f32).collect()
                    }
                }
            })
            .collect(),
        _ => {
            return Err(format!(
                "an output of shape {shape:?} is not one vector or one per token for each of {} texts",
                encoded.len()
            ))
        }
    };
    Ok(if normalize {
        vectors
            .into_iter()
            .map(|v| {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.into_iter().map(|x| x / norm).collect()
            })
            .collect()
    } else {
        vectors
    })
}
