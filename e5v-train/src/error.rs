//! The crate's errors.

use std::path::PathBuf;

/// Why training, export or a merge failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The training data is malformed.
    #[error("{path}, line {line}: {reason}")]
    Data {
        /// The data file.
        path: PathBuf,
        /// The 1-based line.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The model, its adapter or a checkpoint could not be loaded or written.
    #[error(transparent)]
    Model(#[from] e5v_model::ModelError),
    /// The tokenizer could not be loaded or failed on a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A training option is out of range or inconsistent.
    #[error("invalid training option: {0}")]
    InvalidOption(String),
    /// A training checkpoint cannot be resumed (missing file, another configuration).
    #[error("cannot resume from {path}: {reason}")]
    Resume {
        /// The checkpoint folder.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The loss became NaN or infinite.
    #[error("the loss is not finite at step {step}")]
    Diverged {
        /// The optimizer step (1-based).
        step: usize,
    },
}

/// The crate's result type.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
