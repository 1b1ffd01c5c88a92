//! Text models: checking a bundle at upload, checking a batch of tokenized texts and padding
//! it into the model's inputs, and reading the outputs back as labels or pooled vectors.
//! Tokenizing itself happens in the text front canister (`inference-tokenizer`), outside this
//! canister's code budget.
//!
//! Batches are padded to fixed sizes (rows to a power of two, tokens to a bucket of
//! [`SEQUENCE_BUCKETS`]) so that a model serves every batch with a handful of plans: a plan is
//! built per concrete input shape, and building one costs far more than running it once.

use inference_api::{
    DType, InputTensor, Pooling, TensorData, TensorSpec, TextError, TextSpec, Tokens, Vocabulary, MAX_TEXTS,
    MAX_TEXT_TOKENS,
};

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

/// A bundle is sound: a tokenizer file whose ids [`vocabulary`] reads, a length within bounds,
/// and model inputs that are all token tensors (`input_ids` among them) of rank 2 and an
/// integer type. Answers the vocabulary.
pub fn check_bundle(spec: &TextSpec, inputs: &[TensorSpec], tokenizer: &[u8]) -> Result<Vocabulary, String> {
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
    vocabulary(tokenizer)
}

/// A tokenizer file's ids, read with serde rather than loaded as a tokenizer (the tokenizer
/// itself runs in the text front canister): the size is one more than the largest id of the
/// model's vocabulary and the added tokens; the pad id is the file's padding setting, else the
/// first of `[PAD]`, `<pad>`, `<|endoftext|>` it has, else 0 (as the front's tokenizer pads).
pub fn vocabulary(tokenizer: &[u8]) -> Result<Vocabulary, String> {
    #[derive(serde::Deserialize)]
    struct File {
        model: Model,
        #[serde(default)]
        added_tokens: Vec<Added>,
        #[serde(default)]
        padding: Option<Padding>,
    }
    #[derive(serde::Deserialize)]
    struct Model {
        vocab: Vocab,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Vocab {
        /// WordPiece, BPE, WordLevel: token → id.
        Map(std::collections::HashMap<String, u32>),
        /// Unigram: (piece, score), the id is the position.
        List(Vec<(String, f64)>),
    }
    #[derive(serde::Deserialize)]
    struct Added {
        id: u32,
        content: String,
    }
    #[derive(serde::Deserialize)]
    struct Padding {
        pad_id: u32,
    }
    let file: File =
        serde_json::from_slice(tokenizer).map_err(|e| format!("the tokenizer is not a tokenizer.json file: {e}"))?;
    let id_of = |token: &str| {
        file.added_tokens.iter().find(|a| a.content == token).map(|a| a.id).or_else(|| match &file.model.vocab {
            Vocab::Map(map) => map.get(token).copied(),
            Vocab::List(list) => list.iter().position(|(piece, _)| piece == token).map(|i| i as u32),
        })
    };
    let largest_model_id = match &file.model.vocab {
        Vocab::Map(map) => map.values().copied().max(),
        Vocab::List(list) => list.len().checked_sub(1).map(|i| i as u32),
    };
    let largest = largest_model_id.into_iter().chain(file.added_tokens.iter().map(|a| a.id)).max();
    let size = largest.and_then(|id| id.checked_add(1)).ok_or("the tokenizer has no tokens")?;
    let pad_id = file
        .padding
        .as_ref()
        .map(|p| p.pad_id)
        .or_else(|| ["[PAD]", "<pad>", "<|endoftext|>"].iter().find_map(|t| id_of(t)))
        .unwrap_or(0);
    Ok(Vocabulary { size, pad_id })
}

/// A batch of tokenized texts fits the bundle: at least one text, at most [`MAX_TEXTS`], none
/// empty or longer than `max_tokens`, every id in the vocabulary, token types absent or one per
/// token.
pub fn check_tokens(texts: &[Tokens], vocabulary: Vocabulary, max_tokens: u32) -> Result<(), TextError> {
    if texts.is_empty() {
        return Err(TextError::NoTexts);
    }
    if texts.len() > MAX_TEXTS as usize {
        return Err(TextError::TooManyTexts { count: texts.len() as u64, max: MAX_TEXTS });
    }
    for (index, text) in texts.iter().enumerate() {
        let index = index as u32;
        if text.ids.is_empty() {
            return Err(TextError::Empty { index });
        }
        if text.ids.len() > max_tokens as usize {
            return Err(TextError::TooLong { index, tokens: text.ids.len() as u64, max: max_tokens });
        }
        if !text.type_ids.is_empty() && text.type_ids.len() != text.ids.len() {
            let (ids, type_ids) = (text.ids.len() as u64, text.type_ids.len() as u64);
            return Err(TextError::TokenTypes { index, ids, type_ids });
        }
        if let Some(&id) = text.ids.iter().find(|&&id| id >= vocabulary.size) {
            return Err(TextError::UnknownToken { index, id, size: vocabulary.size });
        }
    }
    Ok(())
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
fn batch_shape(encoded: &[Tokens], specs: &[TensorSpec], max_tokens: u32) -> Result<(usize, usize), TextError> {
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
    encoded: &[Tokens],
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
    encoded: &[Tokens],
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
