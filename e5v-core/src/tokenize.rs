//! Tokenising rendered prompts with the checkpoint's own `tokenizer.json`.

use std::path::Path;

use e5v_prompt::{Prompt, PromptError, Segment, find_special_token};
use tokenizers::Tokenizer;

use crate::{Error, Result};

/// The checkpoint's tokenizer, with the image token it splices at.
pub(crate) struct PromptTokenizer {
    inner: Tokenizer,
    image_token: String,
    image_token_id: u32,
    /// Strings the tokenizer turns into added tokens wherever they appear.
    added_tokens: Vec<String>,
}

impl PromptTokenizer {
    /// Loads `tokenizer.json`; `image_token_id` (from the model config) must name one of its
    /// added tokens.
    pub fn from_file(path: &Path, image_token_id: u32) -> Result<Self> {
        let inner = Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            message: format!("cannot load {}", path.display()),
            source: Some(e),
        })?;
        let added_tokens: Vec<String> = inner
            .get_added_tokens_decoder()
            .values()
            .map(|t| t.content.clone())
            .collect();
        let image_token = inner.id_to_token(image_token_id).ok_or_else(|| {
            Error::Mismatch(format!(
                "the config's image token id {image_token_id} is not in {}",
                path.display()
            ))
        })?;
        if !added_tokens.contains(&image_token) {
            return Err(Error::Mismatch(format!(
                "the config's image token `{image_token}` ({image_token_id}) is not an added token of {}",
                path.display()
            )));
        }
        Ok(Self {
            inner,
            image_token,
            image_token_id,
            added_tokens,
        })
    }

    pub fn image_token_id(&self) -> u32 {
        self.image_token_id
    }

    /// Rejects a user text that contains one of the tokenizer's added tokens: the tokenizer
    /// would read it as that token, not as text (transformers would silently do so).
    pub fn check_text(&self, text: &str) -> Result<(), PromptError> {
        match find_special_token(text, &self.added_tokens) {
            Some(token) => Err(PromptError::SpecialTokenInText {
                token: token.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Token ids of a prompt, with the tokenizer's own special tokens (BOS) and the image
    /// slot as the single image token: exactly what the transformers processor produces
    /// before it expands the image token.
    pub fn encode(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        let text: String = prompt
            .segments()
            .iter()
            .map(|segment| match segment {
                Segment::Text(text) => text.as_str(),
                Segment::Image => self.image_token.as_str(),
            })
            .collect();
        self.encode_str(&text)
    }

    /// Token ids of a complete prompt string, with the tokenizer's special tokens (BOS).
    pub fn encode_str(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(text, true).map_err(|e| Error::Tokenizer {
            message: "encoding failed".into(),
            source: Some(e),
        })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Byte offsets in `text` where each of its tokens ends, for cutting it at a token
    /// boundary.
    pub fn token_ends(&self, text: &str) -> Result<Vec<usize>> {
        let encoding = self.inner.encode(text, false).map_err(|e| Error::Tokenizer {
            message: "encoding failed".into(),
            source: Some(e),
        })?;
        Ok(encoding.get_offsets().iter().map(|&(_, end)| end).collect())
    }
}
