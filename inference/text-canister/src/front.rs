//! One text call: ask the inference canister which version to tokenize for (and whether the
//! caller may), load that version's tokenizer (cached by its sha256), tokenize, and run the
//! tokens on the inference canister on the caller's behalf, pinned to that version.

use std::cell::RefCell;
use std::rc::Rc;

use candid::Principal;
use inference_api::{
    InferenceError, TextClassification, TextEmbeddings, TextModel, TextRequest, TextSpec, Tokens, TokensRequest,
    TOKENIZER_CHUNK_BYTES,
};
use inference_client::{CallError, CdkTransport, InferenceClient};
use inference_tokenizer::{texts_of, TextTokenizer};
use sha2::{Digest, Sha256};

/// Tokenizers kept loaded (parsing a tokenizer file takes tens of millions of instructions; a
/// large one holds tens of MB of heap).
const TOKENIZERS_KEPT: usize = 4;

/// A loaded tokenizer: the file's sha256 and the bundle settings it was set up with.
type TokenizerKey = (Vec<u8>, u32, inference_api::Truncation);

thread_local! {
    /// Loaded tokenizers, least recently used first.
    static TOKENIZERS: RefCell<Vec<(TokenizerKey, Rc<TextTokenizer>)>> = const { RefCell::new(Vec::new()) };
}

fn unreachable(e: CallError) -> InferenceError {
    InferenceError::Unreachable(e.to_string())
}

/// The version's tokenizer: from the cache, or read from the inference canister chunk by chunk
/// and checked against the bundle's sha256.
async fn tokenizer(
    inference: &InferenceClient<CdkTransport>,
    model: &TextModel,
) -> Result<Rc<TextTokenizer>, InferenceError> {
    let spec: &TextSpec = &model.spec;
    let key = (spec.tokenizer_sha256.clone(), spec.max_tokens, spec.truncation);
    let cached = TOKENIZERS.with_borrow_mut(|kept| {
        let at = kept.iter().position(|(k, _)| *k == key)?;
        let entry = kept.remove(at);
        let tokenizer = entry.1.clone();
        kept.push(entry);
        Some(tokenizer)
    });
    if let Some(tokenizer) = cached {
        return Ok(tokenizer);
    }
    let mut bytes = Vec::with_capacity(spec.tokenizer_bytes as usize);
    while (bytes.len() as u64) < spec.tokenizer_bytes {
        let chunk = inference
            .tokenizer_chunk(&model.model.name, model.model.version, bytes.len() as u64)
            .await
            .map_err(unreachable)??;
        if chunk.is_empty() || chunk.len() as u64 > TOKENIZER_CHUNK_BYTES {
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.len() as u64 != spec.tokenizer_bytes || Sha256::digest(&bytes).as_slice() != spec.tokenizer_sha256 {
        return Err(InferenceError::Engine(format!(
            "\"{}\" v{}'s tokenizer did not arrive whole ({} of {} bytes, or another sha256)",
            model.model.name,
            model.model.version,
            bytes.len(),
            spec.tokenizer_bytes
        )));
    }
    let tokenizer = Rc::new(
        TextTokenizer::new(&bytes, spec)
            .map_err(|message| inference_api::TextError::Tokenizer { index: 0, message })?,
    );
    TOKENIZERS.with_borrow_mut(|kept| {
        if kept.len() >= TOKENIZERS_KEPT {
            kept.remove(0);
        }
        kept.push((key, tokenizer.clone()));
    });
    Ok(tokenizer)
}

/// Asks, loads, tokenizes: the token request for `caller`, pinned to the version tokenized for.
async fn tokenize(
    inference: &InferenceClient<CdkTransport>,
    caller: Principal,
    request: &TextRequest,
    classify: bool,
) -> Result<TokensRequest, InferenceError> {
    let model =
        inference.text_model(&request.model, request.version, caller, classify).await.map_err(unreachable)??;
    let texts = texts_of(&request.texts)?;
    let tokenizer = tokenizer(inference, &model).await?;
    let texts: Vec<Tokens> = tokenizer.encode_all(&texts)?;
    Ok(TokensRequest {
        model: request.model.clone(),
        version: Some(model.model.version),
        texts,
        top_k: request.top_k,
        on_behalf_of: Some(caller),
    })
}

pub async fn classify_text(
    inference: Principal,
    caller: Principal,
    request: TextRequest,
) -> Result<TextClassification, InferenceError> {
    let inference = InferenceClient::new(CdkTransport { canister: inference });
    let tokens = tokenize(&inference, caller, &request, true).await?;
    inference.classify_tokens(&tokens).await.map_err(unreachable)?
}

pub async fn embed_text(
    inference: Principal,
    caller: Principal,
    request: TextRequest,
) -> Result<TextEmbeddings, InferenceError> {
    let inference = InferenceClient::new(CdkTransport { canister: inference });
    let tokens = tokenize(&inference, caller, &request, false).await?;
    inference.embed_tokens(&tokens).await.map_err(unreachable)?
}
