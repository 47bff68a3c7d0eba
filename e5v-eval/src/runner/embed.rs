//! Streaming embedding: items are read, embedded and cached one batch at a time, and only
//! their vectors are kept.

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::backend::Backend;
use e5v_core::{ChatTemplate, Embeddings, ImageSource, Input, Template};
use e5v_prompt::Segment;
use sha2::{Digest, Sha256};

use super::cache::{CacheStats, EmbeddingCache, Key};
use super::model::EvalModel;
use super::progress::Progress;
use crate::error::{EvalError, Result};
use crate::render::CaptionRenderer;

/// The image of an item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ImageRef {
    /// A file, read when its batch comes.
    File(PathBuf),
    /// A caption to draw as an image ([`CaptionRenderer`]), drawn when its batch comes.
    Caption(String),
}

/// One thing to embed: an image, a text, or both, with the prompt of the embedding pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Item {
    pub image: Option<ImageRef>,
    pub text: Option<String>,
}

impl Item {
    pub(crate) fn text(text: impl Into<String>) -> Self {
        Self {
            image: None,
            text: Some(text.into()),
        }
    }

    pub(crate) fn file(path: PathBuf) -> Self {
        Self {
            image: Some(ImageRef::File(path)),
            text: None,
        }
    }

    pub(crate) fn rendered(caption: impl Into<String>) -> Self {
        Self {
            image: Some(ImageRef::Caption(caption.into())),
            text: None,
        }
    }

    pub(crate) fn composed(path: PathBuf, text: impl Into<String>) -> Self {
        Self {
            image: Some(ImageRef::File(path)),
            text: Some(text.into()),
        }
    }
}

/// The full prompt of `template` inside `chat`, with the `<image>` and `<sent>` slots kept, as
/// a template for a custom input with no further wrapper: tokenised exactly as the embedder's
/// own templates are, but chosen per call, so one loaded model serves every task.
pub(crate) fn wrap_template(chat: ChatTemplate, template: &Template) -> Result<Template> {
    let has_text = template.modality().has_text();
    let prompt = template
        .render(chat, has_text.then_some(Template::SENT))
        .map_err(|e| EvalError::InvalidArgument(format!("prompt {:?}: {e}", template.as_str())))?;
    let full: String = prompt
        .segments()
        .iter()
        .map(|s| match s {
            Segment::Text(text) => text.as_str(),
            Segment::Image => Template::IMAGE,
        })
        .collect();
    Template::new(full, template.modality())
        .map_err(|e| EvalError::InvalidArgument(format!("wrapped prompt: {e}")))
}

/// Hashes length-prefixed parts into a key.
fn key_of(parts: &[&[u8]]) -> Key {
    let mut hasher = Sha256::new();
    hasher.update(b"e5v-eval item v1\0");
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Embeds item lists for one run, through the cache.
pub(crate) struct Session<'a, B: Backend> {
    model: &'a EvalModel<B>,
    cache: Option<EmbeddingCache>,
    renderer: Option<CaptionRenderer>,
    progress: bool,
    pub stats: CacheStats,
}

impl<'a, B: Backend> Session<'a, B> {
    pub(crate) fn new(
        model: &'a EvalModel<B>,
        cache: Option<EmbeddingCache>,
        progress: bool,
    ) -> Self {
        Self {
            model,
            cache,
            renderer: None,
            progress,
            stats: CacheStats::default(),
        }
    }

    fn renderer(&mut self) -> Result<&CaptionRenderer> {
        if self.renderer.is_none() {
            self.renderer = Some(CaptionRenderer::new()?);
        }
        self.renderer
            .as_ref()
            .ok_or_else(|| EvalError::Render("renderer missing".into()))
    }

    /// The cache key of an item: its prompt, its text and its image (a file's bytes are read
    /// and hashed here, and read again only if the vector has to be computed).
    fn key(&mut self, prompt: &str, item: &Item) -> Result<Key> {
        let text = item.text.as_deref().unwrap_or("");
        let text_tag: &[u8] = if item.text.is_some() {
            b"text"
        } else {
            b"no text"
        };
        Ok(match &item.image {
            None => key_of(&[prompt.as_bytes(), b"no image", text_tag, text.as_bytes()]),
            Some(ImageRef::File(path)) => {
                let bytes = std::fs::read(path).map_err(|source| EvalError::Io {
                    path: path.clone(),
                    source,
                })?;
                let digest = Sha256::digest(&bytes);
                key_of(&[
                    prompt.as_bytes(),
                    b"file",
                    &digest,
                    text_tag,
                    text.as_bytes(),
                ])
            }
            Some(ImageRef::Caption(caption)) => {
                let id = self.renderer()?.id();
                key_of(&[
                    prompt.as_bytes(),
                    b"rendered caption",
                    id.as_bytes(),
                    caption.as_bytes(),
                    text_tag,
                    text.as_bytes(),
                ])
            }
        })
    }

    /// Embeds `items` with `template` (an inner prompt, wrapped in the model's chat template)
    /// and returns their raw vectors in item order. Items already in the cache (or repeated)
    /// are not computed; the others stream through [`Embedder::embed_iter`](e5v_core::Embedder::embed_iter),
    /// their images read (or captions drawn) a chunk at a time, and are cached as they come.
    pub(crate) fn embed(
        &mut self,
        label: &str,
        template: &Template,
        items: &[Item],
    ) -> Result<Embeddings> {
        let embedder = self.model.embedder();
        let dim = self.model.dim();
        let prompt = wrap_template(embedder.chat_template(), template)?;
        let mut rows = vec![0.0f32; items.len() * dim];
        let mut first_of: HashMap<Key, usize> = HashMap::new();
        let mut copies: Vec<(usize, usize)> = Vec::new();
        let mut computed: Vec<(usize, Key)> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let key = self.key(prompt.as_str(), item)?;
            if let Some(&earlier) = first_of.get(&key) {
                copies.push((index, earlier));
                continue;
            }
            first_of.insert(key, index);
            if let Some(vector) = match self.cache.as_mut() {
                Some(cache) => cache.get(&key)?,
                None => None,
            } {
                rows[index * dim..(index + 1) * dim].copy_from_slice(&vector);
                self.stats.hits += 1;
                continue;
            }
            computed.push((index, key));
        }
        let mut progress = Progress::new(label, items.len(), self.progress);
        let skipped = items.len() - computed.len();
        progress.advance(skipped, skipped);
        if computed
            .iter()
            .any(|&(i, _)| matches!(items[i].image, Some(ImageRef::Caption(_))))
        {
            self.renderer()?;
        }
        let Self {
            cache,
            renderer,
            stats,
            ..
        } = self;
        // A caption that cannot be drawn ends the stream; the error is returned after it.
        let mut render_error = None;
        let inputs = computed.iter().map_while(|&(index, _)| {
            let item = &items[index];
            let image = match &item.image {
                None => None,
                Some(ImageRef::File(path)) => Some(ImageSource::Path(path.clone())),
                Some(ImageRef::Caption(caption)) => {
                    let drawn = renderer
                        .as_ref()
                        .ok_or_else(|| EvalError::Render("renderer missing".into()))
                        .and_then(|r| r.render_png(caption));
                    match drawn {
                        Ok(png) => Some(ImageSource::Bytes(png)),
                        Err(e) => {
                            render_error = Some(e);
                            return None;
                        }
                    }
                }
            };
            Some(Input::custom(prompt.as_str(), image, item.text.clone()))
        });
        let mut reported = 0;
        let stream = embedder
            .embed_iter(inputs)
            .with_total(computed.len())
            .with_progress(|p| {
                progress.advance(p.done - reported, 0);
                reported = p.done;
            });
        let mut start = 0;
        for chunk in stream {
            let vectors = chunk.map_err(|source| EvalError::Embedding {
                context: match source.input_index().and_then(|i| computed.get(i)) {
                    Some(&(index, _)) => format!("{label}, item {index}"),
                    None => label.to_owned(),
                },
                source,
            })?;
            let done = &computed[start..start + vectors.len()];
            for (&(index, _), vector) in done.iter().zip(vectors.rows()) {
                rows[index * dim..(index + 1) * dim].copy_from_slice(vector);
            }
            if let Some(cache) = cache.as_mut() {
                cache.put_all(done.iter().map(|(_, key)| *key).zip(vectors.rows()))?;
            }
            stats.embedded += vectors.len();
            start += vectors.len();
        }
        if let Some(error) = render_error {
            return Err(error);
        }
        for (index, earlier) in copies {
            rows.copy_within(earlier * dim..(earlier + 1) * dim, index * dim);
        }
        progress.finish();
        Ok(Embeddings::from_matrix(dim, rows)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use e5v_core::Preset;

    #[test]
    fn wrapped_templates_keep_their_slots() {
        let text = wrap_template(ChatTemplate::Llama3, &Preset::Text.template()).expect("wrap");
        assert_eq!(
            text.as_str(),
            "<|start_header_id|>user<|end_header_id|>\n\n<sent>\nSummary above sentence in one \
             word: <|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n \n"
        );
        let query =
            wrap_template(ChatTemplate::Llama3, &Preset::CirrQuery.template()).expect("wrap");
        let filled = query
            .render(ChatTemplate::Raw, Some("make it red"))
            .expect("render")
            .to_string();
        let direct = Preset::CirrQuery
            .template()
            .render(ChatTemplate::Llama3, Some("make it red"))
            .expect("render")
            .to_string();
        assert_eq!(filled, direct);
        assert_eq!(
            query
                .render(ChatTemplate::Raw, Some("x"))
                .expect("render")
                .segments(),
            Preset::CirrQuery
                .template()
                .render(ChatTemplate::Llama3, Some("x"))
                .expect("render")
                .segments()
        );
    }

    #[test]
    fn keys_separate_prompt_image_and_text() {
        let a = key_of(&[b"p", b"no image", b"text", b"ab"]);
        assert_ne!(a, key_of(&[b"p", b"no image", b"text", b"a", b"b"]));
        assert_ne!(a, key_of(&[b"q", b"no image", b"text", b"ab"]));
        assert_eq!(a, key_of(&[b"p", b"no image", b"text", b"ab"]));
    }
}
