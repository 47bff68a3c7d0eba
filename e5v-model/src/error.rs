//! The crate's error type.

use std::path::PathBuf;

/// A name that is none of a type's names (the `FromStr` of [`ImagePipeline`](crate::ImagePipeline)
/// and of the option enums built on it), listing the names that are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?} (expected {})", expected.join(", "))]
pub struct UnknownName {
    /// What was being named, e.g. `image behaviour`.
    pub what: &'static str,
    /// What was given.
    pub given: String,
    /// The valid names.
    pub expected: &'static [&'static str],
}

impl UnknownName {
    /// The variant of `variants` whose name is `given` (names as `name` gives them).
    pub fn parse<T: Copy>(
        what: &'static str,
        given: &str,
        variants: &[T],
        name: impl Fn(T) -> &'static str,
        expected: &'static [&'static str],
    ) -> Result<T, Self> {
        variants
            .iter()
            .copied()
            .find(|&v| name(v) == given)
            .ok_or_else(|| Self {
                what,
                given: given.to_owned(),
                expected,
            })
    }
}

/// Everything that can go wrong while reading a config, loading weights or running the model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file is not valid JSON or does not have the expected structure.
    #[error("cannot parse {path}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The config asks for something this crate does not implement.
    #[error("unsupported {field}: found {found}, supported: {supported}")]
    Unsupported {
        /// The config field.
        field: &'static str,
        /// What the config says.
        found: String,
        /// What is supported.
        supported: &'static str,
    },
    /// The config is inconsistent (e.g. heads that do not divide the hidden size).
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The model directory has neither `model.safetensors` nor `model.safetensors.index.json`.
    #[error("no weights in {0}: expected model.safetensors or model.safetensors.index.json")]
    NoWeights(PathBuf),
    /// A safetensors file is truncated or its header is corrupt.
    #[error("corrupt or truncated safetensors file {path}: {reason}")]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tensor the model needs is not in the checkpoint.
    #[error("missing tensor `{0}` in the checkpoint")]
    MissingTensor(String),
    /// A tensor has another shape than the config implies.
    #[error("tensor `{key}` in {path} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The checkpoint key.
        key: String,
        /// The file holding it.
        path: PathBuf,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a dtype the loader does not read.
    #[error("tensor `{key}` in {path} has unsupported dtype {dtype} (supported: F32, F16, BF16)")]
    UnsupportedDtype {
        /// The checkpoint key.
        key: String,
        /// The file holding it.
        path: PathBuf,
        /// The dtype in the file.
        dtype: String,
    },
    /// The checkpoint holds tensors the model does not use, outside the allow-list.
    #[error("{} unexpected tensor(s) in the checkpoint, e.g. `{}`", .0.len(), .0.first().map(String::as_str).unwrap_or_default())]
    UnexpectedTensors(Vec<String>),
    /// A weight holds NaN or an infinity ([`Checkpoint::check_finite`](crate::Checkpoint::check_finite)).
    #[error("tensor `{key}` in {path} holds NaN or infinite values")]
    NonFinite {
        /// The checkpoint key.
        key: String,
        /// The file holding it.
        path: PathBuf,
    },
    /// A LoRA adapter folder cannot be applied: a tensor or an option this crate does not
    /// compute, a missing factor, a shape that does not fit the decoder.
    #[error("cannot use the LoRA adapter {path}: {reason}")]
    InvalidAdapter {
        /// The adapter's file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The inputs given to the model are inconsistent with it.
    #[error("invalid model input: {0}")]
    InvalidInput(String),
}

/// The crate's result type.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
