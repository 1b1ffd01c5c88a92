//! A typed client of the text front canister (`inference/text-canister`): what agencies call
//! with texts. It tokenizes them with the model's own tokenizer and runs them on the inference
//! canister on the agency's behalf.

use inference_api::*;

use crate::Transport;

/// The text front canister's endpoints, over any [`Transport`].
pub struct TextClient<T> {
    transport: T,
}

impl<T: Transport> TextClient<T> {
    pub fn new(transport: T) -> Self {
        TextClient { transport }
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }
}

crate::typed_endpoints! {
    TextClient;

    /// Classifies a batch of texts with a text model (tokenized by the version's own
    /// tokenizer): labels and scores per text, in request order.
    Update classify_text(request: &TextRequest) -> Result<TextClassification, InferenceError>;
    /// One pooled vector per text from a text embedding model.
    Update embed_text(request: &TextRequest) -> Result<TextEmbeddings, InferenceError>;
    /// Which inference canister the front tokenizes for.
    Query settings() -> FrontSettings;
}
