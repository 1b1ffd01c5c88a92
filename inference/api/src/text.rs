//! Text models: the bundle a maintainer declares (tokenizer, length, truncation, task), what
//! agencies send (`classify_text`, `embed_text`) and what they get back.

use candid::{CandidType, Deserialize};
use thiserror::Error;

use crate::{LabelScore, ModelRef};

/// A text model's bundle, declared at upload and kept with every version: the uploaded file is
/// the ONNX model followed by its tokenizer (a Hugging Face `tokenizer.json`), so the two are
/// verified by one sha256, versioned, copied between pool members and activated together.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TextSpec {
    /// The file's last `tokenizer_bytes` bytes are the tokenizer; the bytes before them are
    /// the model.
    pub tokenizer_bytes: u64,
    /// The tokenizer's own sha256 (checked at the upload's finish).
    pub tokenizer_sha256: Vec<u8>,
    /// Most tokens one text may take, special tokens included (at most [`MAX_TEXT_TOKENS`]).
    pub max_tokens: u32,
    pub truncation: Truncation,
    pub task: TextTask,
}

/// What happens to a text longer than `max_tokens`.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truncation {
    /// The call is refused with `TextError::TooLong`.
    Refuse,
    /// Its first tokens are kept (the tokenizer's own truncation, special tokens kept); the
    /// answer says the text was truncated.
    KeepStart,
}

/// What the model's output means.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextTask {
    /// One row of scores per text (`[batch, classes]`), labelled by the version's labels;
    /// `softmax` turns logits into probabilities.
    Classify { softmax: bool },
    /// One vector per text: the output pooled over the text's tokens (for `[batch, seq, dim]`
    /// outputs) and, with `normalize`, scaled to unit length.
    Embed { pooling: Pooling, normalize: bool },
}

/// How a `[batch, seq, dim]` output becomes one vector per text.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// The mean over the text's tokens (attention mask 1), as sentence-transformers pools.
    Mean,
    /// The first token's vector (`[CLS]`).
    Cls,
    /// The output is already one vector per text (`[batch, dim]`).
    Pooled,
}

/// Longest text a bundle may declare, in tokens.
pub const MAX_TEXT_TOKENS: u32 = 8192;
/// Most texts one call may carry.
pub const MAX_TEXTS: u32 = 64;

/// A text as an agency sends it.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum TextInput {
    Text(String),
    /// UTF-8 bytes, for callers holding a document's raw bytes; invalid UTF-8 is refused.
    Utf8(serde_bytes::ByteBuf),
}

impl From<&str> for TextInput {
    fn from(s: &str) -> Self {
        TextInput::Text(s.to_string())
    }
}

/// `classify_text` and `embed_text`'s request: a batch of texts for one model version.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TextRequest {
    pub model: String,
    /// The active version when absent.
    pub version: Option<u32>,
    pub texts: Vec<TextInput>,
    /// How many labels to return per text, best first (default 5; `classify_text` only).
    pub top_k: Option<u32>,
}

/// A text model's token ids, as the inference canister reads them from the bundle's tokenizer
/// at the upload's finish: ids run from 0 to `size - 1`; batches are padded with `pad_id`.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vocabulary {
    pub size: u32,
    pub pad_id: u32,
}

/// One text's tokens, special tokens included, as the bundle's tokenizer makes them.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Tokens {
    pub ids: Vec<u32>,
    /// The segment of each token (`token_type_ids`), as many as `ids`; empty: all 0.
    pub type_ids: Vec<u32>,
    /// The tokenizer cut the text (the bundle's `KeepStart` truncation).
    pub truncated: bool,
}

impl Tokens {
    pub fn count(&self) -> TokenCount {
        TokenCount { tokens: self.ids.len() as u32, truncated: self.truncated }
    }
}

/// `classify_tokens` and `embed_tokens`'s request: texts already tokenized with the version's
/// own tokenizer (by the text front canister, or by a caller that tokenizes itself).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TokensRequest {
    pub model: String,
    /// The active version when absent; a front pins the version it tokenized for.
    pub version: Option<u32>,
    pub texts: Vec<Tokens>,
    /// How many labels to return per text, best first (default 5; `classify_tokens` only).
    pub top_k: Option<u32>,
    /// Set by a text front only: the allowed caller it runs for, whose access, quota and slots
    /// the call takes. Anyone else leaves it absent.
    pub on_behalf_of: Option<candid::Principal>,
}

/// What a text front needs to tokenize for a caller (`text_model`): the version it will pin,
/// its bundle and its tokenizer's size and hash (the front caches tokenizers by that hash).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TextModel {
    pub model: ModelRef,
    pub spec: TextSpec,
    pub vocabulary: Vocabulary,
}

/// Bytes of a tokenizer `tokenizer_chunk` returns at most per call.
pub const TOKENIZER_CHUNK_BYTES: u64 = 1 << 20;

/// How a text was tokenized.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenCount {
    /// Tokens the model saw, special tokens included.
    pub tokens: u32,
    /// Tokens were cut (the bundle's `KeepStart` truncation).
    pub truncated: bool,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct TextLabels {
    /// The best scores, best first.
    pub scores: Vec<LabelScore>,
    pub tokens: TokenCount,
}

/// What `classify_text` answers: one classification per text, in request order.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct TextClassification {
    pub texts: Vec<TextLabels>,
    pub model: ModelRef,
    pub instructions: u64,
    pub messages: u32,
    /// The audit log's entry of this inference.
    pub receipt: Option<crate::Receipt>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct TextEmbedding {
    pub vector: Vec<f32>,
    pub tokens: TokenCount,
}

/// What `embed_text` answers: one vector per text, in request order.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq)]
pub struct TextEmbeddings {
    pub texts: Vec<TextEmbedding>,
    pub dimensions: u32,
    pub model: ModelRef,
    pub instructions: u64,
    pub messages: u32,
    /// The audit log's entry of this inference.
    pub receipt: Option<crate::Receipt>,
}

/// Why a batch of texts was refused (`InferenceError::Text`); `index` is the text's position in
/// the request.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Error)]
pub enum TextError {
    #[error("the request has no texts")]
    NoTexts,
    #[error("{count} texts in one call; at most {max}")]
    TooManyTexts { count: u64, max: u32 },
    #[error("text {index} is empty")]
    Empty { index: u32 },
    #[error("text {index} is not UTF-8 (valid up to byte {valid_up_to})")]
    InvalidUtf8 { index: u32, valid_up_to: u64 },
    #[error("text {index} takes {tokens} tokens; the model takes at most {max}")]
    TooLong { index: u32, tokens: u64, max: u32 },
    /// The version is not a text model (it was uploaded without a tokenizer).
    #[error("\"{name}\" v{version} is not a text model: send tensors with classify or infer")]
    NotATextModel { name: String, version: u32 },
    /// `classify_text` on an embedding model, or `embed_text` on a classifier.
    #[error("\"{name}\" v{version} is a model for {task}")]
    WrongTask { name: String, version: u32, task: String },
    /// The tokenizer could not encode the text (or, at a text front, could not be loaded).
    #[error("text {index} could not be tokenized: {message}")]
    Tokenizer { index: u32, message: String },
    /// A token id the model's vocabulary does not have.
    #[error("text {index} has token id {id}; the vocabulary has {size}")]
    UnknownToken { index: u32, id: u32, size: u32 },
    /// `type_ids` is neither empty nor as long as `ids`.
    #[error("text {index} has {type_ids} token types for {ids} tokens")]
    TokenTypes { index: u32, ids: u64, type_ids: u64 },
}

/// The text front canister's settings: its install argument, and what `settings` answers.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FrontSettings {
    /// The inference canister it tokenizes for (which must grant it `allow_front`).
    pub inference_canister: candid::Principal,
}
