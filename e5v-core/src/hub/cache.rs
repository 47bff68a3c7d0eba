//! The cache layout `huggingface_hub` writes and reads, so one download serves Python and Rust:
//!
//! ```text
//! <cache>/models--org--name/
//!     blobs/<etag>                      file contents, named by sha256 (LFS) or git sha1
//!     blobs/<etag>.incomplete           a download in progress (resumed from its length)
//!     refs/<revision>                   the commit a branch or tag pointed to
//!     snapshots/<commit>/<file>         relative symlink to ../../blobs/<etag>
//!     .no_exist/<commit>/<file>         empty: the file is known not to exist at that commit
//! <cache>/.locks/models--org--name/<etag>.lock
//! ```

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use super::{HubError, RepoId, remote::FileMeta, repo::is_commit_hash};

/// One repo's folder in the cache.
#[derive(Debug, Clone)]
pub(crate) struct RepoCache {
    root: PathBuf,
    dir: PathBuf,
    folder: String,
}

impl RepoCache {
    pub fn new(root: &Path, repo: &RepoId) -> Self {
        let folder = repo.folder_name();
        Self {
            root: root.to_owned(),
            dir: root.join(&folder),
            folder,
        }
    }

    /// The commit `revision` names in the cache: itself if it is a commit hash, else the
    /// commit its ref recorded.
    pub fn commit_of(&self, revision: &str) -> Option<String> {
        if is_commit_hash(revision) {
            return Some(revision.to_owned());
        }
        let commit = fs::read_to_string(self.dir.join("refs").join(revision)).ok()?;
        let commit = commit.trim();
        is_commit_hash(commit).then(|| commit.to_owned())
    }

    /// Records that `revision` pointed to `commit` (atomically: readers never see half a ref).
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<(), HubError> {
        if revision == commit || self.commit_of(revision).as_deref() == Some(commit) {
            return Ok(());
        }
        let path = self.dir.join("refs").join(revision);
        write_atomically(&path, commit.as_bytes())
    }

    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    /// The file of `commit` if the cache holds it (a snapshot entry whose blob is there).
    pub fn file(&self, commit: &str, file: &str) -> Option<PathBuf> {
        let path = self.snapshot(commit).join(file);
        // `exists` follows the symlink: a link to a deleted blob is not a cached file.
        path.exists().then_some(path)
    }

    /// Whether the cache knows `file` does not exist at `commit`.
    pub fn known_missing(&self, commit: &str, file: &str) -> bool {
        self.dir.join(".no_exist").join(commit).join(file).is_file()
    }

    /// Records that `file` does not exist at `commit` (best effort, as Python does).
    pub fn mark_missing(&self, commit: &str, file: &str) {
        let path = self.dir.join(".no_exist").join(commit).join(file);
        if let Some(parent) = path.parent() {
            let _ = fs::create_dir_all(parent).and_then(|()| fs::File::create(&path).map(drop));
        }
    }

    pub fn blobs(&self) -> PathBuf {
        self.dir.join("blobs")
    }

    /// Bytes a download of `meta` still needs on disk (what a partial file holds is there).
    pub fn still_needed(&self, meta: &FileMeta) -> u64 {
        let size = meta.size.unwrap_or_default();
        if self.blob(&meta.etag).exists() {
            return 0;
        }
        let partial = fs::metadata(self.incomplete(&meta.etag)).map_or(0, |m| m.len());
        size.saturating_sub(partial)
    }

    pub fn blob(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(etag)
    }

    pub fn incomplete(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{etag}.incomplete"))
    }

    /// The lock file Python's `huggingface_hub` takes for the same blob (`flock` on both sides).
    pub fn lock(&self, etag: &str) -> PathBuf {
        self.root
            .join(".locks")
            .join(&self.folder)
            .join(format!("{etag}.lock"))
    }

    /// Points `snapshots/<commit>/<file>` at the blob, with a relative symlink.
    pub fn link(&self, commit: &str, file: &str, blob: &Path) -> Result<PathBuf, HubError> {
        let pointer = self.snapshot(commit).join(file);
        let parent = pointer.parent().unwrap_or(&self.dir);
        fs::create_dir_all(parent).map_err(HubError::io("create", parent))?;
        // From snapshots/<commit>/<dirs of file>/ back up to the repo folder, then into blobs.
        let depth = 2 + file.matches('/').count();
        let mut target = PathBuf::new();
        (0..depth).for_each(|_| target.push(".."));
        target.push("blobs");
        target.push(blob.file_name().unwrap_or_default());
        if pointer.exists() {
            // Linked already (by another thread or process): a valid link is never removed.
            return Ok(pointer);
        }
        // A link left dangling (its blob deleted) is replaced.
        let _ = fs::remove_file(&pointer);
        match link_or_copy(&target, blob, &pointer) {
            Err(e) if !(e.kind() == std::io::ErrorKind::AlreadyExists && pointer.exists()) => {
                Err(HubError::io("link", &pointer)(e))
            }
            _ => Ok(pointer),
        }
    }

    /// Marks the cache root as a cache for backup tools, as Python does.
    pub fn tag_root(&self) {
        let tag = self.root.join("CACHEDIR.TAG");
        if !tag.exists() {
            let _ = fs::write(
                tag,
                "Signature: 8a477f597d28d172789f06886806bc55\n\
                 # This file is a cache directory tag created by huggingface_hub.\n\
                 # For information about cache directory tags, see:\n\
                 #\thttps://bford.info/cachedir/\n",
            );
        }
    }
}

#[cfg(unix)]
fn link_or_copy(relative_target: &Path, _blob: &Path, pointer: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(relative_target, pointer)
}

/// Where symlinks need privileges (Windows), Python copies the blob: so do we.
#[cfg(not(unix))]
fn link_or_copy(_relative_target: &Path, blob: &Path, pointer: &Path) -> std::io::Result<()> {
    fs::copy(blob, pointer).map(drop)
}

/// Writes `path` through a temporary sibling and a rename.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), HubError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(HubError::io("create", parent))?;
    let mut tmp = tempfile::NamedTempFile::new_in(parent)
        .map_err(HubError::io("create a file in", parent))?;
    tmp.write_all(contents)
        .map_err(HubError::io("write", tmp.path()))?;
    tmp.persist(path).map_err(|e| HubError::Io {
        action: "write",
        path: path.to_owned(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_and_refs_atomic() {
        let root = tempfile::tempdir().expect("a temporary folder");
        let repo: RepoId = "org/name".parse().expect("a valid repo id");
        let cache = RepoCache::new(root.path(), &repo);
        let commit = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(cache.commit_of("main"), None);
        cache.write_ref("main", commit).expect("cache operation");
        assert_eq!(
            fs::read_to_string(root.path().join("models--org--name/refs/main"))
                .expect("cache operation"),
            commit
        );
        assert_eq!(cache.commit_of("main").as_deref(), Some(commit));
        assert_eq!(cache.commit_of(commit).as_deref(), Some(commit));

        let blob = cache.blob("abc");
        fs::create_dir_all(blob.parent().expect("a blobs folder")).expect("cache operation");
        fs::write(&blob, b"x").expect("cache operation");
        assert_eq!(cache.file(commit, "sub/f.json"), None);
        let pointer = cache
            .link(commit, "sub/f.json", &blob)
            .expect("cache operation");
        #[cfg(unix)]
        assert_eq!(
            fs::read_link(&pointer).expect("cache operation"),
            Path::new("../../../blobs/abc")
        );
        assert_eq!(cache.file(commit, "sub/f.json"), Some(pointer));
        fs::remove_file(&blob).expect("cache operation");
        assert_eq!(
            cache.file(commit, "sub/f.json"),
            None,
            "a dangling link is not a cached file"
        );

        assert!(!cache.known_missing(commit, "x.json"));
        cache.mark_missing(commit, "x.json");
        assert!(cache.known_missing(commit, "x.json"));
        assert_eq!(
            cache.lock("abc"),
            root.path().join(".locks/models--org--name/abc.lock")
        );
    }
}
