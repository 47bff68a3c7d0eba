//! Sentences to token ids as E5-V's training prepared them: each sentence cut to its first
//! `max_tokens` tokens (tokenised without special tokens, then decoded back to text), put into
//! the text prompt inside the model's chat wrapper, and tokenised with the tokenizer's special
//! tokens (BOS).

use std::path::Path;

use e5v_model::{DecoderConfig, DecoderFamily};
use e5v_prompt::{ChatTemplate, Preset, Segment, Template, find_special_token};
use tokenizers::Tokenizer;

use crate::{Result, TrainError};

/// The checkpoint's tokenizer with the prompt sentences are trained under.
pub struct TextEncoder {
    tokenizer: Tokenizer,
    added_tokens: Vec<String>,
    chat: ChatTemplate,
    template: Template,
    max_tokens: usize,
}

impl TextEncoder {
    /// Loads `tokenizer.json` from the model folder; the chat wrapper follows the decoder
    /// (Llama-3's for Llama, `[INST]` for Mistral), the prompt is E5-V's text prompt.
    pub fn new(model_dir: &Path, decoder: &DecoderConfig, max_tokens: usize) -> Result<Self> {
        let path = model_dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&path)
            .map_err(|e| TrainError::Tokenizer(format!("cannot load {}: {e}", path.display())))?;
        let chat = match decoder.family {
            DecoderFamily::Mistral => ChatTemplate::Mistral,
            _ => ChatTemplate::Llama3,
        };
        Self::with_template(tokenizer, chat, Preset::Text.template(), max_tokens)
    }

    /// An encoder with another chat wrapper and text template (it must have a `<sent>` slot
    /// and no image).
    pub fn with_template(
        tokenizer: Tokenizer,
        chat: ChatTemplate,
        template: Template,
        max_tokens: usize,
    ) -> Result<Self> {
        if max_tokens == 0 {
            return Err(TrainError::InvalidOption(
                "max_tokens must be at least 1".into(),
            ));
        }
        if template.modality() != e5v_prompt::Modality::Text {
            return Err(TrainError::InvalidOption(format!(
                "the training template `{}` must be a text template",
                template.as_str()
            )));
        }
        let added_tokens = tokenizer
            .get_added_tokens_decoder()
            .values()
            .map(|t| t.content.clone())
            .collect();
        Ok(Self {
            tokenizer,
            added_tokens,
            chat,
            template,
            max_tokens,
        })
    }

    /// The sentence cut to its first `max_tokens` tokens, as text (decoded from those
    /// tokens, as the reference does even when nothing is cut).
    pub fn truncate(&self, sentence: &str) -> Result<String> {
        let encoding = self
            .tokenizer
            .encode(sentence, false)
            .map_err(|e| TrainError::Tokenizer(e.to_string()))?;
        let ids = encoding.get_ids();
        let ids = &ids[..ids.len().min(self.max_tokens)];
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| TrainError::Tokenizer(e.to_string()))
    }

    /// The token ids of a sentence's training prompt. A sentence holding one of the
    /// tokenizer's special tokens is refused (it would be read as that token).
    pub fn encode(&self, sentence: &str) -> Result<Vec<u32>> {
        if let Some(token) = find_special_token(sentence, &self.added_tokens) {
            return Err(TrainError::Tokenizer(format!(
                "the sentence {sentence:?} contains the special token {token}"
            )));
        }
        let text = self.truncate(sentence)?;
        let prompt = self
            .template
            .render(self.chat, Some(&text))
            .map_err(|e| TrainError::Tokenizer(e.to_string()))?;
        let text: String = prompt
            .segments()
            .iter()
            .map(|segment| match segment {
                Segment::Text(text) => text.as_str(),
                Segment::Image => "",
            })
            .collect();
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| TrainError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }
}
