//! What can go wrong between a repo id and a model folder, each case named for what to do.

use std::path::PathBuf;

/// An error of the Hub client. Every variant names the repo (and file) it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The text is not a repo id the Hub accepts.
    #[error("{id:?} is not a Hub repo id (org/name[@revision]): {reason}")]
    InvalidRepoId {
        /// What was given.
        id: String,
        /// Why it was refused.
        reason: String,
    },
    /// A `--model` argument that is neither an existing folder nor a repo id.
    #[error("{arg:?}: no such folder, and not a Hub repo id (org/name[@revision]): {reason}")]
    NotAModel {
        /// What was given.
        arg: String,
        /// Why it is not a repo id.
        reason: String,
    },
    /// The Hub does not know the repo, or hides it (private or gated) from this caller.
    #[error(
        "repository {repo} not found on {endpoint}{}",
        if *authenticated {
            " (or the token has no access to it)"
        } else {
            " (if it is private, set HF_TOKEN or log in with `hf auth login`)"
        }
    )]
    RepoNotFound {
        /// `org/name`.
        repo: String,
        /// The Hub's address.
        endpoint: String,
        /// Whether a token was sent.
        authenticated: bool,
    },
    /// The repo is gated: its conditions must be accepted on the Hub, then a token sent.
    #[error(
        "{repo} is a gated repository: accept its conditions at {endpoint}/{repo}, then set HF_TOKEN{}",
        if *authenticated { " to a token of that account" } else { "" }
    )]
    Gated {
        /// `org/name`.
        repo: String,
        /// The Hub's address.
        endpoint: String,
        /// Whether a token was sent.
        authenticated: bool,
    },
    /// The token was refused (401 with a token, or 403).
    #[error("{repo}: access denied ({status}): {message} (check HF_TOKEN)")]
    AccessDenied {
        /// `org/name`.
        repo: String,
        /// The HTTP status.
        status: u16,
        /// The Hub's message.
        message: String,
    },
    /// The repo has no such branch, tag or commit.
    #[error("{repo} has no revision {revision:?}")]
    RevisionNotFound {
        /// `org/name`.
        repo: String,
        /// What was asked for.
        revision: String,
    },
    /// The repo at that revision has no such file.
    #[error("{repo}@{revision} has no file {file}")]
    FileNotFound {
        /// `org/name`.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The file (for a choice of files, all of them).
        file: String,
    },
    /// Offline (`HF_HUB_OFFLINE` or the option), and the cache does not hold the file.
    #[error(
        "offline, and the cache {} holds {}",
        cache.display(),
        match file.strip_prefix("refs/") {
            Some(_) => format!("no {repo}@{revision}"),
            None => format!("{repo}@{revision} without {file}"),
        }
    )]
    NotCached {
        /// `org/name`.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The missing file (`refs/<revision>` when even the revision is unknown).
        file: String,
        /// The cache folder searched.
        cache: PathBuf,
    },
    /// A downloaded file is not the file the Hub announced: nothing was moved into the cache.
    #[error(
        "{repo}: {file} is corrupt: expected {what} {expected}, got {actual} (the partial download was deleted; try again)"
    )]
    Corrupt {
        /// `org/name`.
        repo: String,
        /// The file.
        file: String,
        /// `sha256`, `git sha1` or `size`.
        what: &'static str,
        /// What the Hub announced.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// The disk is too full for the download: found before it starts, or when a write fails.
    #[error(
        "not enough disk space in {}: {file} of {repo} needs {needed} more bytes{}",
        path.display(),
        available.map_or(String::from(" (the disk is full)"), |a| format!(", {a} are free"))
    )]
    DiskFull {
        /// `org/name`.
        repo: String,
        /// The file (or files) being downloaded.
        file: String,
        /// Where it was being written.
        path: PathBuf,
        /// Bytes still to download.
        needed: u64,
        /// Bytes free, when known before the download (none when a write failed).
        available: Option<u64>,
    },
    /// The Hub (or a mirror) answered with an HTTP error not covered above.
    #[error("{repo}: {file}: HTTP {status} from {url}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Http {
        /// `org/name`.
        repo: String,
        /// The file.
        file: String,
        /// The address asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's message, if any.
        message: String,
    },
    /// The Hub could not be reached, or the connection failed past the retries.
    #[error(
        "{repo}: {file}: cannot reach {url} (to use a model already in the cache, set HF_HUB_OFFLINE=1)"
    )]
    Network {
        /// `org/name`.
        repo: String,
        /// The file.
        file: String,
        /// The address asked.
        url: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server answered, but not as the Hub does (a header missing, a bad redirect).
    #[error(
        "{url} does not answer as a Hugging Face Hub endpoint: {what} (check HF_ENDPOINT and proxies)"
    )]
    Protocol {
        /// The address asked.
        url: String,
        /// What was wrong.
        what: String,
    },
    /// A file of the model could not be parsed (e.g. a shard name in the index leaving the folder).
    #[error("{repo}: {file}: {message}")]
    InvalidFile {
        /// `org/name`.
        repo: String,
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A file or folder of the cache could not be read or written.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl HubError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
