//! Models from the Hugging Face Hub, in the cache Python's `huggingface_hub` uses (feature `hub`).
//!
//! A [`Hub`] turns a repo id (`royokong/e5-v`, `org/name@revision`) into a local folder the
//! [`Embedder`](crate::Embedder) loads: it fetches only the files the model needs (config,
//! safetensors and their index, tokenizer and image processor configs) into the shared cache,
//! so a model Python downloaded is used without the network, and one downloaded here is used by
//! Python. Settings come from the same environment variables: `HF_HUB_CACHE` / `HF_HOME`,
//! `HF_ENDPOINT`, `HF_TOKEN` (or the token file of `hf auth login`), `HF_HUB_OFFLINE`.
//!
//! Downloads resume (after a cut connection, and across runs), are checked against the sha256
//! (LFS files) or git sha1 the Hub announces before they are moved into place, and report
//! progress through a callback; the library never prints.
//!
//! ```no_run
//! use e5v_core::hub::Hub;
//!
//! let hub = Hub::from_env().with_progress(|p| {
//!     eprint!("\r{} {}/{} bytes", p.file, p.bytes, p.total_bytes);
//! });
//! let dir = hub.model_dir("royokong/e5-v")?; // a folder that exists is used as it is
//! # Ok::<(), e5v_core::hub::HubError>(())
//! ```

mod cache;
mod download;
mod env;
mod error;
mod remote;
mod repo;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use cache::RepoCache;
pub use env::DEFAULT_ENDPOINT;
use env::HubEnv;
pub use error::HubError;
use remote::{FileMeta, Lookup, Remote};
pub use repo::{DEFAULT_REVISION, RepoId};

/// Progress of [`Hub::download_model`], reported as bytes arrive.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct DownloadProgress<'a> {
    /// `org/name`.
    pub repo: &'a str,
    /// The file being downloaded.
    pub file: &'a str,
    /// Bytes of that file on disk (a resumed download starts above zero).
    pub file_bytes: u64,
    /// That file's size, when the Hub said.
    pub file_size: Option<u64>,
    /// Bytes on disk of all the files this call downloads.
    pub bytes: u64,
    /// Bytes of all the files this call downloads (those already cached are not counted).
    pub total_bytes: u64,
}

type ProgressFn = dyn Fn(&DownloadProgress<'_>) + Send + Sync;

/// The Hub client and its cache. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Hub {
    cache: PathBuf,
    remote: Remote,
    offline: bool,
    progress: Option<Arc<ProgressFn>>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("cache", &self.cache)
            .field("endpoint", &self.remote.endpoint)
            .field("token", &self.remote.authenticated().then_some("<set>"))
            .field("offline", &self.offline)
            .finish_non_exhaustive()
    }
}

/// A file of the model and whether the model can do without it.
#[derive(Clone, Copy)]
enum Need {
    Required,
    Optional,
}

/// The configs the [`Embedder`](crate::Embedder) reads. The image processor's config has two
/// names (transformers 4.x and 5.x); at least one must exist.
const CONFIGS: [(&str, Need); 4] = [
    ("config.json", Need::Required),
    ("tokenizer.json", Need::Required),
    ("tokenizer_config.json", Need::Optional),
    ("special_tokens_map.json", Need::Optional),
];
const PROCESSOR_CONFIGS: [&str; 2] = ["preprocessor_config.json", "processor_config.json"];
const WEIGHTS_INDEX: &str = "model.safetensors.index.json";
const WEIGHTS: &str = "model.safetensors";

impl Hub {
    /// Settings from the environment, as `huggingface_hub` reads them: the cache is
    /// `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`; the endpoint
    /// `HF_ENDPOINT`; the token `HF_TOKEN`, else the file `hf auth login` writes;
    /// `HF_HUB_OFFLINE=1` never touches the network.
    pub fn from_env() -> Self {
        let env = HubEnv::from_process();
        Self {
            cache: env.cache,
            remote: Remote::new(&env.endpoint, env.token),
            offline: env.offline,
            progress: None,
        }
    }

    /// Another cache folder.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache = dir.into();
        self
    }

    /// Another Hub address (a mirror, or a test server).
    pub fn with_endpoint(mut self, endpoint: &str) -> Self {
        self.remote = Remote::new(endpoint, self.remote_token());
        self
    }

    /// The token sent to the Hub (never to the storage it redirects to); `None` for none.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.remote = Remote::new(&self.remote.endpoint.clone(), token);
        self
    }

    /// Offline: models come from the cache only, and the network is never touched.
    pub fn with_offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Calls `progress` as bytes arrive (binaries draw a progress bar; the library never prints).
    pub fn with_progress(
        mut self,
        progress: impl Fn(&DownloadProgress<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }

    /// The cache folder.
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// The Hub's address.
    pub fn endpoint(&self) -> &str {
        &self.remote.endpoint
    }

    /// Whether the network is off.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// The folder of a `--model` argument: a folder that exists as it is, else a repo id
    /// (`org/name[@revision]`) downloaded (or found in the cache) with [`Hub::download_model`].
    pub fn model_dir(&self, model: &str) -> Result<PathBuf, HubError> {
        let path = Path::new(model);
        if path.is_dir() {
            return Ok(path.to_owned());
        }
        if model.starts_with(['.', '/', '~']) || model.matches('/').count() > 1 {
            return Err(HubError::NotAModel {
                arg: model.to_owned(),
                reason: "it is a path".into(),
            });
        }
        let repo: RepoId = model.parse().map_err(|e| match e {
            HubError::InvalidRepoId { reason, .. } => HubError::NotAModel {
                arg: model.to_owned(),
                reason,
            },
            e => e,
        })?;
        self.download_model(&repo)
    }

    /// The snapshot folder of `repo` holding every file the model needs, downloading the ones
    /// the cache lacks. Offline, or when `repo`'s revision is a commit the cache holds whole,
    /// the network is not touched.
    pub fn download_model(&self, repo: &RepoId) -> Result<PathBuf, HubError> {
        let cache = RepoCache::new(&self.cache, repo);
        if self.offline {
            return self.cached_model(&cache, repo);
        }
        if repo::is_commit_hash(repo.revision())
            && let Ok(dir) = self.cached_model(&cache, repo)
        {
            return Ok(dir);
        }
        // The revision's commit, from the first file; every other file is asked at that commit
        // so that all come from one snapshot even if the branch moves meanwhile.
        let config = match self.remote.head(repo, "config.json")? {
            Lookup::Found(meta) => meta,
            Lookup::Missing { .. } => return Err(not_found(repo, "config.json")),
        };
        let commit = config.commit.clone();
        cache.write_ref(repo.revision(), &commit)?;
        let pinned = repo.at(&commit)?;
        let find = |file: &str| self.lookup(&cache, &pinned, file);
        let mut plan = Vec::new();
        let mut add = |file: &str, entry: Entry| {
            if let Entry::Remote(meta) = entry {
                plan.push((file.to_owned(), meta));
            }
        };
        match cache.file(&commit, "config.json") {
            Some(path) => add("config.json", Entry::Cached(path)),
            None => add("config.json", Entry::Remote(config)),
        }
        for (file, need) in &CONFIGS[1..] {
            match (find(file)?, need) {
                (Some(entry), _) => add(file, entry),
                (None, Need::Optional) => {}
                (None, Need::Required) => return Err(not_found(repo, file)),
            }
        }
        let mut processor = false;
        for file in PROCESSOR_CONFIGS {
            if let Some(entry) = find(file)? {
                add(file, entry);
                processor = true;
            }
        }
        if !processor {
            return Err(not_found(repo, &PROCESSOR_CONFIGS.join(" or ")));
        }
        if let Some(index) = find(WEIGHTS_INDEX)? {
            // The shards are named in the index: fetch it first.
            let path = match index {
                Entry::Cached(path) => path,
                Entry::Remote(meta) => {
                    self.fetch(&cache, &pinned, WEIGHTS_INDEX, &meta, &mut Tally::default())?
                }
            };
            for shard in shards(repo, &path)? {
                let entry = find(&shard)?.ok_or_else(|| not_found(repo, &shard))?;
                add(&shard, entry);
            }
        } else {
            let entry = find(WEIGHTS)?
                .ok_or_else(|| not_found(repo, &format!("{WEIGHTS_INDEX} or {WEIGHTS}")))?;
            add(WEIGHTS, entry);
        }

        cache.tag_root();
        let mut tally = Tally {
            total: plan.iter().filter_map(|(_, meta)| meta.size).sum(),
            ..Tally::default()
        };
        let needed = plan.iter().map(|(_, meta)| cache.still_needed(meta)).sum();
        let what = format!("{} files", plan.len());
        download::check_space(&cache.blobs(), needed, repo, &what)?;
        for (file, meta) in &plan {
            self.fetch(&cache, &pinned, file, meta, &mut tally)?;
        }
        Ok(cache.snapshot(&commit))
    }

    /// One file of `repo` (any file: a README, a dataset file of a model repo), downloaded
    /// unless cached; offline, from the cache only.
    pub fn download_file(&self, repo: &RepoId, file: &str) -> Result<PathBuf, HubError> {
        repo::check_relative_path(file).map_err(|reason| HubError::InvalidFile {
            repo: repo.id().to_owned(),
            file: file.to_owned(),
            message: reason,
        })?;
        let cache = RepoCache::new(&self.cache, repo);
        let cached = cache
            .commit_of(repo.revision())
            .and_then(|commit| cache.file(&commit, file));
        if self.offline || (repo::is_commit_hash(repo.revision()) && cached.is_some()) {
            return cached.ok_or_else(|| self.not_cached(repo, file));
        }
        let meta = match self.remote.head(repo, file)? {
            Lookup::Found(meta) => meta,
            Lookup::Missing { commit } => {
                if let Some(commit) = commit {
                    cache.mark_missing(&commit, file);
                }
                return Err(not_found(repo, file));
            }
        };
        cache.write_ref(repo.revision(), &meta.commit)?;
        let pinned = repo.at(&meta.commit)?;
        if let Some(path) = cache.file(&meta.commit, file) {
            return Ok(path);
        }
        cache.tag_root();
        let mut tally = Tally {
            total: meta.size.unwrap_or_default(),
            ..Tally::default()
        };
        download::check_space(&cache.blobs(), cache.still_needed(&meta), repo, file)?;
        self.fetch(&cache, &pinned, file, &meta, &mut tally)
    }

    /// A file at a pinned commit: in the cache, or where to fetch it; `None` if the repo does
    /// not have it. Files the cache holds, or knows to be missing, cost no request.
    fn lookup(
        &self,
        cache: &RepoCache,
        pinned: &RepoId,
        file: &str,
    ) -> Result<Option<Entry>, HubError> {
        let commit = pinned.revision();
        if cache.known_missing(commit, file) {
            return Ok(None);
        }
        if let Some(path) = cache.file(commit, file) {
            return Ok(Some(Entry::Cached(path)));
        }
        match self.remote.head(pinned, file)? {
            Lookup::Found(meta) => Ok(Some(Entry::Remote(meta))),
            Lookup::Missing { commit: seen } => {
                cache.mark_missing(seen.as_deref().unwrap_or(commit), file);
                Ok(None)
            }
        }
    }

    /// `file` into the cache and its snapshot (unless it is there already).
    fn fetch(
        &self,
        cache: &RepoCache,
        pinned: &RepoId,
        file: &str,
        meta: &FileMeta,
        tally: &mut Tally,
    ) -> Result<PathBuf, HubError> {
        let commit = pinned.revision();
        if let Some(path) = cache.file(commit, file) {
            return Ok(path);
        }
        let done = tally.done;
        let mut on_bytes = |file_bytes: u64| {
            if let Some(progress) = &self.progress {
                progress(&DownloadProgress {
                    repo: pinned.id(),
                    file,
                    file_bytes,
                    file_size: meta.size,
                    bytes: done + file_bytes,
                    total_bytes: tally.total.max(done + file_bytes),
                });
            }
        };
        let blob = download::fetch_blob(&self.remote, cache, pinned, file, meta, &mut on_bytes)?;
        tally.done += meta.size.unwrap_or_default();
        cache.link(commit, file, &blob)
    }

    /// The model's snapshot, from the cache alone.
    fn cached_model(&self, cache: &RepoCache, repo: &RepoId) -> Result<PathBuf, HubError> {
        let commit = cache
            .commit_of(repo.revision())
            .ok_or_else(|| self.not_cached(repo, &format!("refs/{}", repo.revision())))?;
        let has = |file: &str| cache.file(&commit, file).is_some();
        for (file, need) in CONFIGS {
            if matches!(need, Need::Required) && !has(file) {
                return Err(self.not_cached(repo, file));
            }
        }
        if !PROCESSOR_CONFIGS.iter().any(|f| has(f)) {
            return Err(self.not_cached(repo, &PROCESSOR_CONFIGS.join(" or ")));
        }
        if let Some(index) = cache.file(&commit, WEIGHTS_INDEX) {
            if let Some(shard) = shards(repo, &index)?.into_iter().find(|s| !has(s)) {
                return Err(self.not_cached(repo, &shard));
            }
        } else if !has(WEIGHTS) {
            return Err(self.not_cached(repo, &format!("{WEIGHTS_INDEX} or {WEIGHTS}")));
        }
        Ok(cache.snapshot(&commit))
    }

    fn not_cached(&self, repo: &RepoId, file: &str) -> HubError {
        HubError::NotCached {
            repo: repo.id().to_owned(),
            revision: repo.revision().to_owned(),
            file: file.to_owned(),
            cache: self.cache.clone(),
        }
    }

    fn remote_token(&self) -> Option<String> {
        self.remote.token().map(str::to_owned)
    }
}

/// A file of the model: already in the snapshot, or to be fetched.
enum Entry {
    Cached(PathBuf),
    Remote(FileMeta),
}

/// Bytes of the files of one call, for the progress report.
#[derive(Default)]
struct Tally {
    done: u64,
    total: u64,
}

fn not_found(repo: &RepoId, file: &str) -> HubError {
    HubError::FileNotFound {
        repo: repo.id().to_owned(),
        revision: repo.revision().to_owned(),
        file: file.to_owned(),
    }
}

/// The shard files an index names (each once, in order), each a path inside the snapshot.
fn shards(repo: &RepoId, index: &Path) -> Result<Vec<String>, HubError> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let invalid = |message: String| HubError::InvalidFile {
        repo: repo.id().to_owned(),
        file: WEIGHTS_INDEX.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(index).map_err(HubError::io("read", index))?;
    let index: Index = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let mut shards: Vec<String> = index.weight_map.into_values().collect();
    shards.sort();
    shards.dedup();
    for shard in &shards {
        repo::check_relative_path(shard).map_err(|reason| invalid(format!("shard {reason}")))?;
    }
    if shards.is_empty() {
        return Err(invalid("the weight map is empty".into()));
    }
    Ok(shards)
}
