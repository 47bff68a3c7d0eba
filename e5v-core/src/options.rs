//! Typed options of an [`Embedder`](crate::Embedder).

use e5v_model::ImagePipeline;
use e5v_prompt::{ChatTemplate, Template};

use crate::{Prompts, image::DecodeLimits};

/// The floating-point type the weights and activations are held in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Precision {
    /// 32-bit floats: exact to the reference; the only choice on the ndarray backend.
    #[default]
    F32,
    /// 16-bit floats, as the reference runs the real model (flex, wgpu with f16, cuda).
    F16,
    /// bfloat16.
    Bf16,
}

impl Precision {
    /// Every precision, the default first.
    pub const ALL: [Self; 3] = [Self::F32, Self::F16, Self::Bf16];
    const NAMES: &[&str] = &["f32", "f16", "bf16"];

    /// burn's dtype for it.
    pub fn dtype(self) -> burn::tensor::DType {
        match self {
            Self::F32 => burn::tensor::DType::F32,
            Self::F16 => burn::tensor::DType::F16,
            Self::Bf16 => burn::tensor::DType::BF16,
        }
    }

    /// `f32`, `f16` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = e5v_model::UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        e5v_model::UnknownName::parse("precision", s, &Self::ALL, Self::name, Self::NAMES)
    }
}

/// What to do with a prompt longer than the model's context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Truncation {
    /// Fail with [`Error::TooLong`](crate::Error::TooLong). The default: an embedding of a cut
    /// text is a different embedding, so it is never done silently.
    #[default]
    Error,
    /// Cut the end of the user's text (never the prompt around it) until the prompt fits.
    /// Inputs whose prompt is too long without any text still fail.
    TruncateText,
}

/// How an [`Embedder`](crate::Embedder) turns inputs into vectors.
///
/// ```
/// use e5v_core::{EmbedderOptions, Precision};
///
/// let options = EmbedderOptions::new().with_batch_size(4).with_precision(Precision::F32);
/// assert_eq!(options.batch_size, 4);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EmbedderOptions {
    /// Weights and activations dtype.
    pub precision: Precision,
    /// Most inputs run through the model together.
    pub batch_size: usize,
    /// Most padded tokens in one batch (inputs x the longest sequence), as
    /// text-embeddings-inference's `max_batch_tokens`; `None` picks the backend's default
    /// (16384, fewer where a device buffer could not hold the widest activation). An input
    /// longer than the budget runs in a batch of its own.
    pub max_batch_tokens: Option<usize>,
    /// Most image crops in one batch (they go through the vision tower together); `None`
    /// picks the backend's default (32, fewer where a device buffer could not hold them).
    pub max_batch_crops: Option<usize>,
    /// Which reference image pipeline to reproduce (the default is current transformers; the
    /// paper's numbers used [`ImagePipeline::Transformers441`]).
    pub image_pipeline: ImagePipeline,
    /// L2-normalise the vectors (so that similarity is a dot product).
    pub normalize: bool,
    /// The chat wrapper; `None` picks it from the model (llama -> Llama-3, mistral -> Mistral).
    pub chat_template: Option<ChatTemplate>,
    /// The inner prompt of each modality (the paper's retrieval prompts by default); a call
    /// can use others ([`Embedder::embed_with`](crate::Embedder::embed_with)).
    pub prompts: Prompts,
    /// Policy for prompts longer than the model's context.
    pub truncation: Truncation,
    /// Limits applied when decoding images, checked before allocating.
    pub decode_limits: DecodeLimits,
    /// Scan every weight for NaN or infinite values while loading and fail with
    /// [`ModelError::NonFinite`](e5v_model::ModelError::NonFinite) naming the tensor and file.
    /// Off by default: it reads the whole checkpoint once more (seconds per 10 GB).
    pub check_finite_weights: bool,
    /// A LoRA adapter folder in PEFT's format (e5v-train's output, or Python `peft`'s),
    /// merged into the decoder's weights while loading. An adapter that does not fit the
    /// model, or uses options that are not implemented (DoRA, per-layer ranks, trained
    /// biases), is an error: it is applied completely or not at all.
    pub lora_adapter: Option<std::path::PathBuf>,
}

impl Default for EmbedderOptions {
    fn default() -> Self {
        Self {
            precision: Precision::default(),
            batch_size: 8,
            max_batch_tokens: None,
            max_batch_crops: None,
            image_pipeline: ImagePipeline::default(),
            normalize: true,
            chat_template: None,
            prompts: Prompts::default(),
            truncation: Truncation::default(),
            decode_limits: DecodeLimits::default(),
            check_finite_weights: false,
            lora_adapter: None,
        }
    }
}

impl EmbedderOptions {
    /// The defaults: f32, batches of 8, current transformers' image pipeline, normalised vectors, the
    /// paper's retrieval prompts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`Self::precision`].
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Sets [`Self::batch_size`] (must be at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets [`Self::max_batch_tokens`] (must be at least 1).
    pub fn with_max_batch_tokens(mut self, tokens: usize) -> Self {
        self.max_batch_tokens = Some(tokens);
        self
    }

    /// Sets [`Self::max_batch_crops`] (must be at least 1).
    pub fn with_max_batch_crops(mut self, crops: usize) -> Self {
        self.max_batch_crops = Some(crops);
        self
    }

    /// Sets [`Self::image_pipeline`].
    pub fn with_image_pipeline(mut self, pipeline: ImagePipeline) -> Self {
        self.image_pipeline = pipeline;
        self
    }

    /// Sets [`Self::normalize`].
    pub fn with_normalize(mut self, normalize: bool) -> Self {
        self.normalize = normalize;
        self
    }

    /// Sets [`Self::chat_template`].
    pub fn with_chat_template(mut self, chat_template: ChatTemplate) -> Self {
        self.chat_template = Some(chat_template);
        self
    }

    /// Sets [`Self::prompts`].
    pub fn with_prompts(mut self, prompts: Prompts) -> Self {
        self.prompts = prompts;
        self
    }

    /// Replaces the prompt of `template`'s modality in [`Self::prompts`]:
    /// `.with_template(Preset::Sts)` embeds texts with the STS prompt.
    pub fn with_template(mut self, template: impl Into<Template>) -> Self {
        self.prompts.set(template.into());
        self
    }

    /// Sets [`Self::truncation`].
    pub fn with_truncation(mut self, truncation: Truncation) -> Self {
        self.truncation = truncation;
        self
    }

    /// Sets [`Self::decode_limits`].
    pub fn with_decode_limits(mut self, limits: DecodeLimits) -> Self {
        self.decode_limits = limits;
        self
    }

    /// Sets [`Self::lora_adapter`].
    pub fn with_lora_adapter(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.lora_adapter = Some(dir.into());
        self
    }

    /// Sets [`Self::check_finite_weights`].
    pub fn with_check_finite_weights(mut self, check: bool) -> Self {
        self.check_finite_weights = check;
        self
    }
}
