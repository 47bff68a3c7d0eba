//! One blob into the cache: under Python's lock, into `<etag>.incomplete` (resumed from its
//! length, also after a cut connection), checked against the sha256 or git sha1 the Hub
//! announced, and only then renamed into `blobs/<etag>`: a crash never leaves a partial file
//! where a whole one is expected.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{
    HubError, RepoId,
    cache::RepoCache,
    remote::{FileMeta, Remote},
};

/// Consecutive attempts that bring no new byte before a download gives up (Python's count).
const ATTEMPTS_WITHOUT_PROGRESS: u32 = 5;
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const CHUNK: usize = 1 << 20;

/// The blob of `meta` in the cache, downloaded unless already there. `on_bytes` hears how many
/// bytes of the file are on disk, as they arrive.
pub(crate) fn fetch_blob(
    remote: &Remote,
    cache: &RepoCache,
    repo: &RepoId,
    file: &str,
    meta: &FileMeta,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<PathBuf, HubError> {
    let blob = cache.blob(&meta.etag);
    if blob.exists() {
        return Ok(blob);
    }
    let lock_path = cache.lock(&meta.etag);
    for dir in [blob.parent(), lock_path.parent()].into_iter().flatten() {
        fs::create_dir_all(dir).map_err(HubError::io("create", dir))?;
    }
    // Another process (Rust or Python) may be fetching the same blob: wait for it.
    let lock = File::create(&lock_path).map_err(HubError::io("create", &lock_path))?;
    lock.lock().map_err(HubError::io("lock", &lock_path))?;
    if blob.exists() {
        return Ok(blob);
    }
    let partial = cache.incomplete(&meta.etag);
    let context = Context {
        remote,
        repo,
        file,
        meta,
        partial: &partial,
    };
    let result = context.download(on_bytes);
    if let Err(HubError::Corrupt { .. }) = &result {
        // Bad bytes cannot be resumed from: the next attempt starts over.
        let _ = fs::remove_file(&partial);
    }
    result?;
    fs::rename(&partial, &blob).map_err(HubError::io("move into place", &blob))?;
    Ok(blob)
}

struct Context<'a> {
    remote: &'a Remote,
    repo: &'a RepoId,
    file: &'a str,
    meta: &'a FileMeta,
    partial: &'a Path,
}

impl Context<'_> {
    /// Fills the partial file up to the announced size, then checks it.
    fn download(&self, on_bytes: &mut dyn FnMut(u64)) -> Result<(), HubError> {
        let mut out = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.partial)
            .map_err(HubError::io("open", self.partial))?;
        let mut pos = out
            .metadata()
            .map_err(HubError::io("read", self.partial))?
            .len();
        if self.meta.size.is_some_and(|size| pos > size) {
            pos = self.restart(&mut out)?;
        }
        let mut check = Check::new(&self.meta.etag, self.meta.size);
        // What an earlier run left is part of the file: hash it before going on.
        check
            .update_from(&mut out, pos)
            .map_err(HubError::io("read", self.partial))?;
        on_bytes(pos);

        let mut failures = 0;
        let mut pause = FIRST_PAUSE;
        while self.meta.size != Some(pos) {
            let before = pos;
            let error = match self.receive(&mut out, &mut pos, &mut check, on_bytes) {
                Ok(true) => break,
                Ok(false) => self.network(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed before the end of the file",
                )),
                Err(Retry::No(e)) => return Err(e),
                Err(Retry::Yes(e)) => e,
            };
            // Resume at once after an attempt that brought bytes; give up after five in a
            // row that brought none, pausing longer each time.
            if pos > before {
                failures = 0;
                pause = FIRST_PAUSE;
            } else {
                failures += 1;
                if failures >= ATTEMPTS_WITHOUT_PROGRESS {
                    return Err(error);
                }
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(8));
            }
        }
        out.sync_all()
            .map_err(HubError::io("write", self.partial))?;
        if let Some(size) = self.meta.size.filter(|&size| size != pos) {
            return Err(self.corrupt("size", size.to_string(), pos.to_string()));
        }
        if let Some((what, expected, actual)) = check.finish()
            && expected != actual
        {
            return Err(self.corrupt(what, expected, actual));
        }
        Ok(())
    }

    /// One GET from `pos`, appended to `out`. `Ok(true)` when the body ended and the size was
    /// not announced (the end is the end); `Ok(false)` when it stopped short (resume).
    fn receive(
        &self,
        out: &mut File,
        pos: &mut u64,
        check: &mut Check,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<bool, Retry> {
        let body = self
            .remote
            .get(self.repo, self.file, self.meta, *pos)
            .map_err(|e| match e {
                HubError::Network { .. } => Retry::Yes(e),
                e => Retry::No(e),
            })?;
        if body.start != *pos {
            // The server ignored the range: start over rather than append a second copy.
            *pos = self.restart(out).map_err(Retry::No)?;
            *check = Check::new(&self.meta.etag, self.meta.size);
            on_bytes(0);
        }
        out.seek(SeekFrom::Start(*pos))
            .map_err(|e| Retry::No(HubError::io("write", self.partial)(e)))?;
        let mut reader = body.reader;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(self.meta.size.is_none()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Retry::Yes(self.network(e))),
            };
            if self.meta.size.is_some_and(|size| *pos + n as u64 > size) {
                let got = (*pos + n as u64).to_string();
                let size = self.meta.size.unwrap_or_default().to_string();
                return Err(Retry::No(self.corrupt(
                    "size",
                    size,
                    format!("at least {got}"),
                )));
            }
            out.write_all(&buf[..n])
                .map_err(|e| Retry::No(self.write_error(e)))?;
            check.update(&buf[..n]);
            *pos += n as u64;
            on_bytes(*pos);
        }
    }

    fn restart(&self, out: &mut File) -> Result<u64, HubError> {
        out.set_len(0)
            .map_err(HubError::io("truncate", self.partial))?;
        Ok(0)
    }

    fn corrupt(&self, what: &'static str, expected: String, actual: String) -> HubError {
        HubError::Corrupt {
            repo: self.repo.id().to_owned(),
            file: self.file.to_owned(),
            what,
            expected,
            actual,
        }
    }

    fn network(&self, source: io::Error) -> HubError {
        HubError::Network {
            repo: self.repo.id().to_owned(),
            file: self.file.to_owned(),
            url: self.meta.url.clone(),
            source: Box::new(source),
        }
    }

    fn write_error(&self, source: io::Error) -> HubError {
        if matches!(
            source.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        ) {
            return HubError::DiskFull {
                repo: self.repo.id().to_owned(),
                file: self.file.to_owned(),
                path: self.partial.to_owned(),
                needed: self.meta.size.unwrap_or_default(),
                available: None,
            };
        }
        HubError::io("write", self.partial)(source)
    }
}

/// Fails early, before a byte is written, when `dir`'s disk cannot hold `needed` more bytes
/// (a 16 GB download should not fail at 90%).
pub(crate) fn check_space(
    dir: &Path,
    needed: u64,
    repo: &RepoId,
    file: &str,
) -> Result<(), HubError> {
    fs::create_dir_all(dir).map_err(HubError::io("create", dir))?;
    match available_space(dir) {
        Some(available) if available < needed => Err(HubError::DiskFull {
            repo: repo.id().to_owned(),
            file: file.to_owned(),
            path: dir.to_owned(),
            needed,
            available: Some(available),
        }),
        _ => Ok(()),
    }
}

/// Bytes an unprivileged process may still write on `dir`'s file system.
#[cfg(unix)]
fn available_space(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn available_space(_dir: &Path) -> Option<u64> {
    None
}

enum Retry {
    Yes(HubError),
    No(HubError),
}

/// The hash the etag names: sha256 for LFS files (64 hex digits), git's blob sha1 for the others
/// (40 hex digits, needs the size up front). Other etags (a mirror's) are checked by size only.
enum Check {
    Sha256(Sha256, String),
    GitSha1(Sha1, String),
    SizeOnly,
}

impl Check {
    fn new(etag: &str, size: Option<u64>) -> Self {
        let hex = |len| etag.len() == len && etag.bytes().all(|b| b.is_ascii_hexdigit());
        match size {
            _ if hex(64) => Self::Sha256(Sha256::new(), etag.to_ascii_lowercase()),
            Some(size) if hex(40) => {
                let mut sha1 = Sha1::new();
                sha1.update(format!("blob {size}\0"));
                Self::GitSha1(sha1, etag.to_ascii_lowercase())
            }
            _ => Self::SizeOnly,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h, _) => h.update(bytes),
            Self::GitSha1(h, _) => h.update(bytes),
            Self::SizeOnly => {}
        }
    }

    /// Feeds the first `len` bytes of `file`.
    fn update_from(&mut self, file: &mut File, len: u64) -> io::Result<()> {
        if matches!(self, Self::SizeOnly) || len == 0 {
            return Ok(());
        }
        file.seek(SeekFrom::Start(0))?;
        let mut reader = file.take(len);
        let mut buf = vec![0u8; CHUNK];
        loop {
            match reader.read(&mut buf)? {
                0 => return Ok(()),
                n => self.update(&buf[..n]),
            }
        }
    }

    /// `(what, expected, actual)`, or nothing to compare.
    fn finish(self) -> Option<(&'static str, String, String)> {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        match self {
            Self::Sha256(h, etag) => Some(("sha256", etag, hex(&h.finalize()))),
            Self::GitSha1(h, etag) => Some(("git sha1", etag, hex(&h.finalize()))),
            Self::SizeOnly => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_the_ones_etags_name() {
        // `git hash-object` of "hello\n" and the sha256 of the same bytes.
        let mut check = Check::new("ce013625030ba8dba906f756967f9e9ca394464a", Some(6));
        check.update(b"hello\n");
        let (_, expected, actual) = check.finish().expect("a hash to compare");
        assert_eq!(expected, actual);
        let sha = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
        let mut check = Check::new(sha, None);
        check.update(b"hello\n");
        let (what, expected, actual) = check.finish().expect("a hash to compare");
        assert_eq!((what, expected), ("sha256", actual));
        assert!(Check::new("some-mirror-etag", Some(6)).finish().is_none());
    }

    #[cfg(unix)]
    #[test]
    fn a_download_larger_than_the_free_space_fails_before_it_starts() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let repo: RepoId = "org/name".parse().expect("a valid repo id");
        assert!(check_space(dir.path(), 1, &repo, "f").is_ok());
        let err = check_space(dir.path(), u64::MAX, &repo, "4 files").expect_err("too big");
        assert!(
            matches!(&err, HubError::DiskFull { available: Some(_), file, .. } if file == "4 files"),
            "{err}"
        );
    }
}
