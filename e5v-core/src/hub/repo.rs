//! Repository ids (`org/name@revision`) and the names that become paths in the cache.

use std::fmt;

use super::HubError;

/// The branch a repo id without `@revision` means.
pub const DEFAULT_REVISION: &str = "main";

/// A model repository on the Hub: `org/name`, optionally at a revision (branch, tag or commit).
///
/// ```
/// use e5v_core::hub::RepoId;
///
/// let repo: RepoId = "royokong/e5-v@main".parse()?;
/// assert_eq!((repo.id(), repo.revision()), ("royokong/e5-v", "main"));
/// assert_eq!("royokong/e5-v".parse::<RepoId>()?.revision(), "main");
/// # Ok::<(), e5v_core::hub::HubError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoId {
    id: String,
    revision: String,
}

impl RepoId {
    /// `org/name` (or a bare legacy `name`) at `revision`, validated as the Hub validates them.
    pub fn new(id: &str, revision: &str) -> Result<Self, HubError> {
        let invalid = |reason: &str| HubError::InvalidRepoId {
            id: id.to_owned(),
            reason: reason.to_owned(),
        };
        // The Hub's rule: one or two parts of [A-Za-z0-9_.-], no "--" or "..", at most 96
        // characters. "--" is also what joins the parts of the cache folder's name.
        let parts: Vec<&str> = id.split('/').collect();
        if parts.len() > 2 {
            return Err(invalid("expected `org/name`"));
        }
        let valid_char = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
        for part in &parts {
            if part.is_empty() || !part.chars().all(valid_char) {
                return Err(invalid("each part is letters, digits, `_`, `-` or `.`"));
            }
            if part.starts_with(['-', '.']) || part.ends_with(['-', '.']) {
                return Err(invalid("a part cannot start or end with `-` or `.`"));
            }
        }
        if id.contains("--") || id.contains("..") {
            return Err(invalid("`--` and `..` are not allowed"));
        }
        if id.len() > 96 {
            return Err(invalid("longer than 96 characters"));
        }
        check_relative_path(revision).map_err(|reason| HubError::InvalidRepoId {
            id: format!("{id}@{revision}"),
            reason: format!("revision: {reason}"),
        })?;
        Ok(Self {
            id: id.to_owned(),
            revision: revision.to_owned(),
        })
    }

    /// `org/name`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The branch, tag or commit (`main` unless given).
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The same repo at another revision.
    pub fn at(&self, revision: &str) -> Result<Self, HubError> {
        Self::new(&self.id, revision)
    }

    /// The cache folder's name, as `huggingface_hub` writes it: `models--org--name`.
    pub(crate) fn folder_name(&self) -> String {
        format!("models--{}", self.id.replace('/', "--"))
    }
}

impl std::str::FromStr for RepoId {
    type Err = HubError;

    fn from_str(s: &str) -> Result<Self, HubError> {
        match s.split_once('@') {
            Some((id, revision)) => Self::new(id, revision),
            None => Self::new(s, DEFAULT_REVISION),
        }
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.revision)
    }
}

/// Whether `revision` is a full commit hash (40 lowercase hex digits).
pub(crate) fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40
        && revision
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Revisions and file names become paths inside the cache (`refs/<revision>`,
/// `snapshots/<commit>/<file>`): they must stay inside it, whatever a user or a remote index says.
pub(crate) fn check_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty".into());
    }
    if path.starts_with('/') || path.contains('\\') || path.chars().any(char::is_control) {
        return Err(format!("{path:?} is not a relative path"));
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(format!("{path:?} has an empty, `.` or `..` component"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_and_revisions() {
        let repo: RepoId = "royokong/e5-v".parse().expect("a valid repo id");
        assert_eq!((repo.id(), repo.revision()), ("royokong/e5-v", "main"));
        assert_eq!(repo.folder_name(), "models--royokong--e5-v");
        let repo: RepoId = "gpt2@refs/pr/1".parse().expect("a valid repo id");
        assert_eq!((repo.id(), repo.revision()), ("gpt2", "refs/pr/1"));
        assert_eq!(repo.folder_name(), "models--gpt2");
        assert_eq!(repo.to_string(), "gpt2@refs/pr/1");
    }

    #[test]
    fn rejects_what_the_hub_rejects_and_paths_that_escape() {
        for bad in [
            "", "a/b/c", "/abs", "org/", "org//x", "a--b/c", "a/b..c", "a b/c", "-a/b", "a/b.",
            "a/b@", "a/b@../x", "a/b@x//y", "a/b@/x", "./x",
        ] {
            assert!(bad.parse::<RepoId>().is_err(), "{bad:?} accepted");
        }
        assert!(format!("a/{}", "b".repeat(95)).parse::<RepoId>().is_err());
    }

    #[test]
    fn recognises_commit_hashes() {
        assert!(is_commit_hash("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit_hash("main"));
        assert!(!is_commit_hash("0123456789ABCDEF0123456789abcdef01234567"));
    }
}
