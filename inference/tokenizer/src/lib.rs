//! A text bundle's tokenizer: the Hugging Face `tokenizer.json` of a text model, set up for the
//! bundle's length and truncation, turning a request's texts into the [`Tokens`] the inference
//! canister's token endpoints take, exactly as Python's `tokenizers` does.
//!
//! It lives outside the inference canister: the `tokenizers` crate (with fancy-regex and its
//! Unicode tables) is over a MiB of code, more than the inference canister's budget leaves. The
//! text front canister tokenizes with it; the maintainers' tool checks a bundle with it before
//! uploading.

use inference_api::{TextError, TextInput, TextSpec, Tokens, Truncation, MAX_TEXTS};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// A bundle's tokenizer, set up for the bundle's length and truncation (the tokenizer file's
/// own padding and truncation settings are replaced: the inference canister pads, and the
/// bundle decides how to truncate).
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    max_tokens: u32,
    truncation: Truncation,
    pad_id: u32,
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
    pub fn encode(&self, index: u32, text: &str) -> Result<Tokens, TextError> {
        let encoding =
            self.inner.encode_fast(text, true).map_err(|e| TextError::Tokenizer { index, message: e.to_string() })?;
        let ids = encoding.get_ids().to_vec();
        if ids.len() > self.max_tokens as usize {
            // Only with `Refuse`: `KeepStart` truncated it already.
            return Err(TextError::TooLong { index, tokens: ids.len() as u64, max: self.max_tokens });
        }
        let truncated = self.truncation == Truncation::KeepStart && !encoding.get_overflowing().is_empty();
        Ok(Tokens { type_ids: encoding.get_type_ids().to_vec(), ids, truncated })
    }

    /// Every text of a request, in order; the first refusal stops it.
    pub fn encode_all(&self, texts: &[&str]) -> Result<Vec<Tokens>, TextError> {
        texts.iter().enumerate().map(|(i, t)| self.encode(i as u32, t)).collect()
    }

    /// The id padding takes (the inference canister reads the same from the file).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Ids run from 0 to this less one, added tokens included.
    pub fn vocabulary_size(&self) -> u32 {
        self.inner.get_vocab_size(true) as u32
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
