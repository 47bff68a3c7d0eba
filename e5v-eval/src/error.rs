//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading a benchmark or computing a metric.
///
/// Malformed data always names the file and where in it the problem is: a line (and column for
/// JSON), or for consistency problems between files, the entry (e.g. `pairid 12063`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A file could not be read or written.
    #[error("cannot access {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file is not valid JSON, or its content does not have the expected shape (a missing
    /// field, a wrong type, a wrong number of captions). `line` and `column` are 1-based and point
    /// at (or just after) the offending value.
    #[error("{}:{line}:{column}: {message}", path.display())]
    MalformedJson {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A line of a text file (STS, STS-B, SICK) is malformed: wrong column count, bad score,
    /// invalid UTF-8, or the input and gold files disagree on their line count.
    #[error("{}:{line}: {message}", path.display())]
    MalformedLine {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A well-formed entry refers to something that does not exist (an image missing from the
    /// split file, an image with too few captions).
    #[error("{}: {entry}: {message}", path.display())]
    MalformedEntry {
        /// The file holding the entry.
        path: PathBuf,
        /// Which entry, e.g. `pairid 12063` or `images[17] (1000092795.jpg)`.
        entry: String,
        /// What is wrong.
        message: String,
    },
    /// A caller passed inconsistent arguments (mismatched lengths, an index out of range,
    /// non-finite embeddings).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The model could not be loaded, or failed to embed an input.
    #[error("embedding failed: {context}")]
    Embedding {
        /// What was being embedded (e.g. `flickr30k images, batch at item 64`).
        context: String,
        /// The embedder's error.
        #[source]
        source: e5v_core::Error,
    },
    /// An embedding cache file is unusable (wrong header, another model's vectors).
    #[error("embedding cache {}: {message}", path.display())]
    Cache {
        /// The cache file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A caption could not be rendered (the bundled font could not be read).
    #[error("caption rendering: {0}")]
    Render(String),
}

/// Matrix errors of [`e5v_core::Embeddings`] (a bad shape, a width mismatch, a non-finite
/// value) become [`EvalError::InvalidArgument`] with the same message; any other error of
/// `e5v_core` becomes [`EvalError::Embedding`] (the runner gives embedding calls their own
/// context with `map_err` instead).
impl From<e5v_core::Error> for EvalError {
    fn from(error: e5v_core::Error) -> Self {
        match error {
            e5v_core::Error::InvalidArgument(message) => Self::InvalidArgument(message),
            source => Self::Embedding {
                context: "e5v-core".into(),
                source,
            },
        }
    }
}

/// The crate's result type.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;
