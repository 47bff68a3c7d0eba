//! The crate's error type.

use std::path::PathBuf;

use crate::image::ImageError;

/// Everything that can go wrong while building an [`Embedder`](crate::Embedder) or embedding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model could not be loaded or run.
    #[error(transparent)]
    Model(#[from] e5v_model::ModelError),
    /// A prompt template is invalid, or a text cannot go into a prompt.
    #[error("input {index}: {source}")]
    Prompt {
        /// Position of the input in the call (0 when building the embedder).
        index: usize,
        /// The cause.
        #[source]
        source: e5v_prompt::PromptError,
    },
    /// A template given in the options is invalid.
    #[error("invalid template option: {0}")]
    Template(#[source] e5v_prompt::PromptError),
    /// An image could not be decoded or preprocessed.
    #[error("input {index}: {}{source}", path.as_ref().map_or(String::new(), |p| format!("{}: ", p.display())))]
    Image {
        /// Position of the input in the call.
        index: usize,
        /// The image's file, when it came from one.
        path: Option<PathBuf>,
        /// The cause.
        #[source]
        source: ImageError,
    },
    /// The image processor config could not be read.
    #[error("image processor config: {0}")]
    ImageConfig(#[source] ImageError),
    /// The tokenizer could not be loaded, or failed on a text.
    #[error("tokenizer: {message}")]
    Tokenizer {
        /// What failed.
        message: String,
        /// The tokenizer's own error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The tokenizer and the model config disagree (e.g. on the `<image>` token).
    #[error("tokenizer and model disagree: {0}")]
    Mismatch(String),
    /// A prompt is longer than the model's context and the truncation policy is `Error`.
    #[error("input {index}: the prompt has {length} tokens, more than the model's {max}")]
    TooLong {
        /// Position of the input in the call.
        index: usize,
        /// Tokens in the prompt (image features included).
        length: usize,
        /// The model's maximum number of positions.
        max: usize,
    },
    /// A prompt holds a token the model has no embedding for (e.g. an added token such as
    /// `<pad>` written into a custom prompt).
    #[error(
        "input {index}: token id {id} has no embedding (the model's table has {vocab_size} rows)"
    )]
    UnknownToken {
        /// Position of the input in the call.
        index: usize,
        /// The token id.
        id: u32,
        /// Rows of the model's embedding table.
        vocab_size: usize,
    },
    /// An input's image file could not be read.
    #[error("input {index}: cannot read {path}")]
    ReadInput {
        /// Position of the input in the call.
        index: usize,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A tensor would not fit one buffer of the device (wgpu adapters cap each storage
    /// binding, at 128 MiB on some): refused rather than computed wrong.
    #[error(
        "{}{what} needs {bytes} bytes in one buffer, more than the device's limit of {limit} bytes{}",
        index.map_or(String::new(), |i| format!("input {i}: ")),
        if index.is_some() { " (lower max_batch_tokens / max_batch_crops, or use another backend)" } else { "" }
    )]
    DeviceLimit {
        /// The input whose batch does not fit (`None` for the weights).
        index: Option<usize>,
        /// What does not fit.
        what: String,
        /// Bytes it needs.
        bytes: u64,
        /// The device's limit.
        limit: u64,
    },
    /// A model could not be found or downloaded from the Hugging Face Hub.
    #[cfg(feature = "hub")]
    #[cfg_attr(docsrs, doc(cfg(feature = "hub")))]
    #[error(transparent)]
    Hub(Box<crate::hub::HubError>),
    /// An argument is out of its valid range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A bug in this crate: an internal invariant did not hold.
    #[error("internal error (please report): {0}")]
    Internal(String),
    /// Reading results back from the device failed.
    #[error("cannot read results from the device: {0}")]
    Device(String),
}

#[cfg(feature = "hub")]
#[cfg_attr(docsrs, doc(cfg(feature = "hub")))]
impl From<crate::hub::HubError> for Error {
    fn from(error: crate::hub::HubError) -> Self {
        Self::Hub(Box::new(error))
    }
}

impl Error {
    /// The position of the input (in the call to `embed`) this error is about, if it is about
    /// one input: a binary maps it back to a line number, a server to a request item.
    pub fn input_index(&self) -> Option<usize> {
        match self {
            Self::Prompt { index, .. }
            | Self::Image { index, .. }
            | Self::ReadInput { index, .. }
            | Self::TooLong { index, .. }
            | Self::UnknownToken { index, .. } => Some(*index),
            Self::DeviceLimit { index, .. } => *index,
            _ => None,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
