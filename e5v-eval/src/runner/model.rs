//! The model under evaluation: an e5v-core [`Embedder`] plus what identifies its vectors.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use e5v_core::{Embedder, EmbedderOptions, ImagePipeline, Precision};
use sha2::{Digest, Sha256};

use super::cache::Key;
use super::fingerprint::model_fingerprint;
use crate::error::{EvalError, Result};

/// How the model is run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelOptions {
    /// Weights and activations dtype (the paper ran fp16; ndarray only has f32).
    pub precision: Precision,
    /// Image preprocessing behaviour. Defaults to [`ImagePipeline::Transformers441`], the
    /// transformers version the paper's numbers were made with.
    pub image_pipeline: ImagePipeline,
    /// Inputs per forward pass; also how many inputs are read and cached at a time.
    pub batch_size: usize,
    /// Padded tokens per forward pass (`None`: the backend's default; see
    /// [`EmbedderOptions::max_batch_tokens`]).
    pub max_batch_tokens: Option<usize>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            precision: Precision::F32,
            image_pipeline: ImagePipeline::Transformers441,
            batch_size: 8,
            max_batch_tokens: None,
        }
    }
}

impl ModelOptions {
    /// The defaults: f32, the paper's image behaviour, batches of 8.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`Self::precision`].
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Sets [`Self::image_pipeline`].
    pub fn with_image_pipeline(mut self, pipeline: ImagePipeline) -> Self {
        self.image_pipeline = pipeline;
        self
    }

    /// Sets [`Self::batch_size`] (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets [`Self::max_batch_tokens`] (at least 1).
    pub fn with_max_batch_tokens(mut self, tokens: usize) -> Self {
        self.max_batch_tokens = Some(tokens);
        self
    }
}

/// A loaded model, ready for [`run_task`](super::run_task).
///
/// The embedder returns raw (unnormalised) vectors: the runner normalises them itself, after
/// FashionIQ's sum of the two caption orders.
pub struct EvalModel<B: Backend> {
    embedder: Embedder<B>,
    dir: PathBuf,
    options: ModelOptions,
    fingerprint: Key,
}

impl<B: Backend> std::fmt::Debug for EvalModel<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvalModel")
            .field("dir", &self.dir)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The backend's type name without module paths (`NdArray<f32>`, `Flex`).
fn backend_name<B: Backend>() -> String {
    let full = std::any::type_name::<B>();
    let mut out = String::new();
    let mut word = String::new();
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            word.clear();
        } else if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            out.push_str(&word);
            word.clear();
            out.push(c);
        }
    }
    out + &word
}

impl<B: Backend> EvalModel<B> {
    /// Loads the HF model directory `dir` onto `device`.
    pub fn load(dir: impl AsRef<Path>, options: ModelOptions, device: &B::Device) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if options.batch_size == 0 {
            return Err(EvalError::InvalidArgument(
                "batch size must be at least 1".into(),
            ));
        }
        let fingerprint = model_fingerprint(&dir)?;
        let mut embedder_options = EmbedderOptions::new()
            .with_precision(options.precision)
            .with_image_pipeline(options.image_pipeline)
            .with_batch_size(options.batch_size)
            .with_normalize(false);
        embedder_options.max_batch_tokens = options.max_batch_tokens;
        let embedder = Embedder::new(&dir, embedder_options, device).map_err(|source| {
            EvalError::Embedding {
                context: format!("loading {}", dir.display()),
                source,
            }
        })?;
        Ok(Self {
            embedder,
            dir,
            options,
            fingerprint,
        })
    }

    /// The embedder.
    pub fn embedder(&self) -> &Embedder<B> {
        &self.embedder
    }

    /// The options it was loaded with.
    pub fn options(&self) -> &ModelOptions {
        &self.options
    }

    /// Width of the vectors.
    pub fn dim(&self) -> usize {
        self.embedder.dim()
    }

    /// What the report names as the model: directory, backend, precision, image behaviour.
    pub fn label(&self) -> String {
        format!(
            "{} ({}, {}, image pipeline {})",
            self.dir.display(),
            backend_name::<B>(),
            self.options.precision.name(),
            self.options.image_pipeline.name()
        )
    }

    /// The cache namespace: everything that changes the vector of a given prompt and input.
    pub(crate) fn namespace(&self) -> Key {
        let mut hasher = Sha256::new();
        hasher.update(b"e5v-eval namespace v1\0");
        hasher.update(self.fingerprint);
        for part in [
            std::any::type_name::<B>(),
            self.options.precision.name(),
            self.options.image_pipeline.name(),
        ] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        hasher.update((self.dim() as u64).to_le_bytes());
        hasher.finalize().into()
    }

    /// What `meta.json` of the cache namespace records.
    pub(crate) fn cache_meta(&self) -> serde_json::Value {
        serde_json::json!({
            "model_dir": self.dir.display().to_string(),
            "backend": std::any::type_name::<B>(),
            "precision": self.options.precision.name(),
            "image_pipeline": self.options.image_pipeline.name(),
            "dim": self.dim(),
            "vectors": "raw (not normalised) f32",
            "written_by": concat!("e5v-eval ", env!("CARGO_PKG_VERSION")),
        })
    }
}
