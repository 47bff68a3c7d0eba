//! Turning one [`Input`] into token ids and image bytes, before any tensor work.

use std::path::PathBuf;

use e5v_model::{ImagePipeline, anyres};
use e5v_prompt::{ChatTemplate, Modality, Prompt, Template};

use crate::{
    Error, Input, Prompts, Result, Truncation, input::ImageSource, tokenize::PromptTokenizer,
};

/// An input ready for the model: its tokens and, if it has one, its encoded image.
pub(crate) struct PreparedInput {
    /// Position in the caller's list.
    pub index: usize,
    /// Token ids with a single image token where the image goes.
    pub ids: Vec<u32>,
    /// The encoded image, read but not decoded.
    pub image: Option<EncodedImage>,
    /// Image feature vectors that replace the image token.
    pub image_tokens: Option<usize>,
    /// Crops the image processor will cut (0 without an image; at most, for the 4.41
    /// behaviour's smaller canvas).
    pub crops: usize,
}

impl PreparedInput {
    /// Length of the sequence the decoder will see.
    pub fn seq_len(&self) -> usize {
        match self.image_tokens {
            Some(n) => self.ids.len() - 1 + n,
            None => self.ids.len(),
        }
    }
}

/// An input's image as read: its bytes, its size from the header, and its file if any (errors
/// name it).
pub(crate) struct EncodedImage {
    pub bytes: Vec<u8>,
    /// (height, width).
    pub size: (u32, u32),
    pub path: Option<PathBuf>,
}

/// What [`prepare`] needs to know about the embedder.
pub(crate) struct PrepareContext<'a> {
    pub tokenizer: &'a PromptTokenizer,
    pub chat: ChatTemplate,
    pub prompts: &'a Prompts,
    pub truncation: Truncation,
    pub max_positions: usize,
    /// Rows of the embedding table: every id but the image token must index it.
    pub vocab_size: usize,
    pub pinpoints: &'a [(u32, u32)],
    pub crop_size: u32,
    pub patches_per_side: usize,
    pub image_pipeline: ImagePipeline,
}

impl PrepareContext<'_> {
    /// Renders, tokenises and measures an input; reads (but does not decode) its image.
    pub fn prepare(&self, index: usize, input: &Input) -> Result<PreparedInput> {
        let custom;
        let (template, chat, text) = match input {
            Input::Text(text) => (
                self.prompts.get(Modality::Text),
                self.chat,
                Some(text.as_str()),
            ),
            Input::Image(_) => (self.prompts.get(Modality::Image), self.chat, None),
            Input::Composed { text, .. } => (
                self.prompts.get(Modality::Composed),
                self.chat,
                Some(text.as_str()),
            ),
            Input::Custom {
                prompt,
                image,
                text,
            } => {
                let modality = match (image.is_some(), text.is_some()) {
                    (true, true) => Modality::Composed,
                    (true, false) => Modality::Image,
                    (false, true) => Modality::Text,
                    (false, false) => return self.prepare_verbatim(index, prompt),
                };
                custom = Template::new(prompt.clone(), modality)
                    .map_err(|source| Error::Prompt { index, source })?;
                (&custom, ChatTemplate::Raw, text.as_deref())
            }
        };
        if let Some(text) = text {
            self.tokenizer
                .check_text(text)
                .map_err(|source| Error::Prompt { index, source })?;
        }
        let image = match input.image_source() {
            Some(source) => Some(self.read_image(index, source)?),
            None => None,
        };
        let image_tokens = image.as_ref().map(|image| {
            anyres::image_token_count(
                image.size,
                self.pinpoints,
                self.crop_size,
                self.patches_per_side,
                self.image_pipeline,
            )
        });
        let crops = image.as_ref().map_or(0, |image| {
            let (rows, cols) = anyres::grid_shape(
                image.size,
                self.pinpoints,
                self.crop_size,
                self.image_pipeline,
            );
            1 + rows * cols
        });
        let render = |text: Option<&str>| -> Result<Vec<u32>> {
            let prompt: Prompt = template
                .render(chat, text)
                .map_err(|source| Error::Prompt { index, source })?;
            self.tokenizer.encode(&prompt)
        };
        let mut prepared = PreparedInput {
            index,
            ids: render(text)?,
            image,
            image_tokens,
            crops,
        };
        if prepared.seq_len() > self.max_positions {
            let too_long = Error::TooLong {
                index,
                length: prepared.seq_len(),
                max: self.max_positions,
            };
            match (self.truncation, text) {
                (Truncation::TruncateText, Some(text)) => {
                    prepared.ids = self.truncate(text, &prepared, render)?.ok_or(too_long)?;
                }
                _ => return Err(too_long),
            }
        }
        self.check_vocabulary(index, &prepared.ids)?;
        Ok(prepared)
    }

    /// A custom prompt with no slots, tokenised as it is.
    fn prepare_verbatim(&self, index: usize, prompt: &str) -> Result<PreparedInput> {
        for placeholder in [Template::IMAGE, Template::SENT] {
            if prompt.contains(placeholder) {
                return Err(Error::InvalidArgument(format!(
                    "input {index}: the custom prompt has a {placeholder} slot but nothing to fill it with"
                )));
            }
        }
        let ids = self.tokenizer.encode_str(prompt)?;
        if ids.len() > self.max_positions {
            return Err(Error::TooLong {
                index,
                length: ids.len(),
                max: self.max_positions,
            });
        }
        self.check_vocabulary(index, &ids)?;
        Ok(PreparedInput {
            index,
            ids,
            image: None,
            image_tokens: None,
            crops: 0,
        })
    }

    /// Every id has a row in the embedding table (an added token such as `<pad>` in a custom
    /// prompt may not), the image token aside.
    fn check_vocabulary(&self, index: usize, ids: &[u32]) -> Result<()> {
        let image_token = self.tokenizer.image_token_id();
        match ids
            .iter()
            .find(|&&id| id != image_token && id as usize >= self.vocab_size)
        {
            Some(&id) => Err(Error::UnknownToken {
                index,
                id,
                vocab_size: self.vocab_size,
            }),
            None => Ok(()),
        }
    }

    /// The ids of the prompt with the longest prefix of `text` (cut at a token boundary)
    /// that fits, found by bisection over the text's tokens.
    fn truncate(
        &self,
        text: &str,
        prepared: &PreparedInput,
        render: impl Fn(Option<&str>) -> Result<Vec<u32>>,
    ) -> Result<Option<Vec<u32>>> {
        let ends = self.tokenizer.token_ends(text)?;
        let fits = |ids: &Vec<u32>| {
            let extra = prepared.image_tokens.map_or(0, |n| n - 1);
            ids.len() + extra <= self.max_positions
        };
        let prefix = |kept: usize| match kept {
            0 => "",
            k => text.get(..ends[k - 1]).unwrap_or(text),
        };
        let (mut lo, mut hi) = (0, ends.len());
        let mut best = None;
        while lo <= hi {
            let mid = (lo + hi) / 2;
            let ids = render(Some(prefix(mid)))?;
            if fits(&ids) {
                best = Some(ids);
                lo = mid + 1;
            } else if mid == 0 {
                break;
            } else {
                hi = mid - 1;
            }
        }
        Ok(best)
    }

    fn read_image(&self, index: usize, source: &ImageSource) -> Result<EncodedImage> {
        let (bytes, path) = match source {
            ImageSource::Path(path) => {
                let bytes = std::fs::read(path).map_err(|source| Error::ReadInput {
                    index,
                    path: path.clone(),
                    source,
                })?;
                (bytes, Some(path.clone()))
            }
            ImageSource::Bytes(bytes) => (bytes.clone(), None),
        };
        let image_error = |source| Error::Image {
            index,
            path: path.clone(),
            source,
        };
        let (width, height) = crate::image::dimensions(&bytes).map_err(image_error)?;
        Ok(EncodedImage {
            bytes,
            size: (height, width),
            path,
        })
    }
}
