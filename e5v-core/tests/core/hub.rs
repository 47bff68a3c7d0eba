//! The Hub client against a local server that answers as the Hub does (`hub_server.rs`), and
//! against a cache laid out as Python's `huggingface_hub` writes it. No test leaves 127.0.0.1.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use e5v_core::{
    Embedder, EmbedderOptions, Error,
    hub::{DownloadProgress, Hub, HubError, RepoId},
};

use crate::{
    fixtures::root,
    hub_server::{Access, Faults, HubFile, HubRepo, HubServer, git_blob_sha1, sha256_hex},
};

type B = burn::backend::NdArray<f32>;

const COMMIT: &str = "4f2f2b1c0d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b";
const WEIGHTS: &str = "model.safetensors";
/// A port nothing listens on: a test that must not touch the network points there.
const NOWHERE: &str = "http://127.0.0.1:9";

/// The tiny checkpoint's files, as a repo: weights through LFS, a README the model does not need.
fn tiny_files() -> Vec<HubFile> {
    let dir = root().join("tiny-e5v");
    let mut files: Vec<HubFile> = fs::read_dir(&dir)
        .expect("tiny-e5v")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            HubFile {
                lfs: name.ends_with(".safetensors"),
                bytes: fs::read(&path).expect("file"),
                path: name,
            }
        })
        .collect();
    files.push(HubFile {
        path: "README.md".into(),
        bytes: b"# tiny\n".to_vec(),
        lfs: false,
    });
    files
}

fn repo(id: &str, files: Vec<HubFile>, access: Access) -> HubRepo {
    HubRepo {
        id: id.into(),
        commit: COMMIT.into(),
        branches: vec!["main".into()],
        files,
        access,
    }
}

/// The tiny checkpoint cut in two shards with an index, as big checkpoints are published.
fn sharded_files() -> Vec<HubFile> {
    let bytes = fs::read(root().join("tiny-e5v").join(WEIGHTS)).expect("weights");
    let tensors = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut names: Vec<String> = tensors.names().into_iter().map(str::to_owned).collect();
    names.sort();
    let half = names.len() / 2;
    let mut weight_map = BTreeMap::new();
    let mut files: Vec<HubFile> = tiny_files()
        .into_iter()
        .filter(|f| f.path != WEIGHTS)
        .collect();
    for (i, part) in [&names[..half], &names[half..]].into_iter().enumerate() {
        let shard = format!("model-0000{}-of-00002.safetensors", i + 1);
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = part
            .iter()
            .map(|n| (n.clone(), tensors.tensor(n).expect("tensor")))
            .collect();
        let bytes = safetensors::serialize(views, None).expect("serialize");
        part.iter()
            .for_each(|n| drop(weight_map.insert(n.clone(), shard.clone())));
        files.push(HubFile {
            path: shard,
            bytes,
            lfs: true,
        });
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    files.push(HubFile {
        path: "model.safetensors.index.json".into(),
        bytes: index.to_string().into_bytes(),
        lfs: false,
    });
    files
}

fn hub(server: &HubServer, cache: &Path) -> Hub {
    Hub::from_env()
        .with_cache_dir(cache)
        .with_endpoint(&server.endpoint())
        .with_token(None)
        .with_offline(false)
}

fn text_vector(dir: &Path) -> Vec<f32> {
    let embedder =
        Embedder::<B>::new(dir, EmbedderOptions::default(), &Default::default()).expect("load");
    embedder
        .embed_texts(&["a dog on the beach"])
        .expect("embed")
        .get(0)
        .expect("row")
        .to_vec()
}

fn reference_vector() -> Vec<f32> {
    text_vector(&root().join("tiny-e5v"))
}

/// `models--org--name` of a cache.
fn repo_dir(cache: &Path, id: &str) -> PathBuf {
    cache.join(format!("models--{}", id.replace('/', "--")))
}

#[test]
fn a_model_downloaded_through_the_hub_protocol_lands_in_pythons_layout() {
    let server = HubServer::start(vec![repo("org/tiny", tiny_files(), Access::Public)]);
    let cache = tempfile::tempdir().expect("cache");
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let hub = hub(&server, cache.path())
        .with_token(Some("hf_secret".into()))
        .with_progress(move |p: &DownloadProgress<'_>| {
            seen.lock()
                .expect("events")
                .push((p.file.to_owned(), p.bytes, p.total_bytes))
        });
    let dir = hub.model_dir("org/tiny").expect("download");

    let repo_dir = repo_dir(cache.path(), "org/tiny");
    assert_eq!(dir, repo_dir.join("snapshots").join(COMMIT));
    assert_eq!(
        fs::read_to_string(repo_dir.join("refs/main")).expect("ref"),
        COMMIT
    );
    assert!(cache.path().join("CACHEDIR.TAG").is_file());
    for file in tiny_files() {
        let pointer = dir.join(&file.path);
        let needed = !["README.md", "generation_config.json"].contains(&file.path.as_str());
        assert_eq!(pointer.exists(), needed, "{}", file.path);
        if needed {
            let blob = if file.lfs {
                sha256_hex(&file.bytes)
            } else {
                git_blob_sha1(&file.bytes)
            };
            assert_eq!(
                fs::read_link(&pointer).expect("a symlink"),
                Path::new("../../blobs").join(&blob)
            );
            assert_eq!(fs::read(&pointer).expect("read"), file.bytes);
        }
    }
    let leftovers: Vec<_> = fs::read_dir(repo_dir.join("blobs"))
        .expect("blobs")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.contains('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // The token went to the Hub, never to the storage the Hub redirected to.
    let requests = server.requests();
    let (storage, hub_side): (Vec<_>, Vec<_>) =
        requests.iter().partition(|r| r.path.starts_with("/cdn/"));
    assert!(!storage.is_empty() && storage.iter().all(|r| r.header("authorization").is_none()));
    assert!(
        hub_side
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer hf_secret"))
    );

    let events = events.lock().expect("events").clone();
    let total: u64 = tiny_files()
        .iter()
        .filter(|f| dir.join(&f.path).exists())
        .map(|f| f.bytes.len() as u64)
        .sum();
    let last = events.last().expect("progress was reported");
    assert_eq!((last.1, last.2), (total, total));
    assert!(
        events.windows(2).all(|w| w[0].1 <= w[1].1),
        "progress never goes back"
    );

    assert_eq!(text_vector(&dir), reference_vector());

    // Again: one HEAD for the revision's commit, nothing downloaded.
    server.clear_requests();
    assert_eq!(hub.model_dir("org/tiny").expect("cached"), dir);
    let again = server.requests();
    assert_eq!(
        again.len(),
        1,
        "{:?}",
        again.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert_eq!(again[0].method, "HEAD");
    // Offline, and at the commit itself, the network is not touched at all.
    let offline = hub.clone().with_endpoint(NOWHERE).with_offline(true);
    assert_eq!(offline.model_dir("org/tiny").expect("offline"), dir);
    assert_eq!(
        hub.clone()
            .with_endpoint(NOWHERE)
            .model_dir(&format!("org/tiny@{COMMIT}"))
            .expect("commit"),
        dir
    );
}

#[test]
fn threads_sharing_a_cache_download_each_blob_once() {
    let server = HubServer::start(vec![repo("org/tiny", tiny_files(), Access::Public)]);
    let cache = tempfile::tempdir().expect("cache");
    let hub = hub(&server, cache.path());
    let dirs: Vec<PathBuf> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| hub.model_dir("org/tiny").expect("download")))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(dirs.iter().all(|d| *d == dirs[0]));
    let gets = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(
        gets, 5,
        "each needed file fetched once (the lock held the other threads)"
    );
    assert_eq!(text_vector(&dirs[0]), reference_vector());
}

#[test]
fn sharded_weights_are_fetched_from_the_index_and_load() {
    let server = HubServer::start(vec![repo("org/sharded", sharded_files(), Access::Public)]);
    let cache = tempfile::tempdir().expect("cache");
    let dir = hub(&server, cache.path())
        .model_dir("org/sharded")
        .expect("download");
    for shard in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        assert!(dir.join(shard).is_file(), "{shard}");
    }
    assert!(!dir.join(WEIGHTS).exists());
    assert_eq!(text_vector(&dir), reference_vector());
}

/// The `Range` headers the server received, in order.
fn ranges_asked(server: &HubServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter_map(|r| r.header("range").map(str::to_owned))
        .collect()
}

/// A new cache holding the first `len` bytes of `weights` as an interrupted download of
/// org/tiny, and the path of that partial file.
fn cache_with_partial(weights: &[u8], len: usize) -> (tempfile::TempDir, PathBuf) {
    let cache = tempfile::tempdir().expect("cache");
    let blobs = repo_dir(cache.path(), "org/tiny").join("blobs");
    fs::create_dir_all(&blobs).expect("blobs");
    let partial = blobs.join(format!("{}.incomplete", sha256_hex(weights)));
    fs::write(&partial, &weights[..len]).expect("partial");
    (cache, partial)
}

#[test]
fn downloads_resume_after_a_cut_connection_and_across_runs() {
    let weights = fs::read(root().join("tiny-e5v").join(WEIGHTS)).expect("weights");
    let server = HubServer::start(vec![repo("org/tiny", tiny_files(), Access::Public)]);
    let repo: RepoId = "org/tiny".parse().expect("repo id");

    // Cut once after 100 kB: the same call resumes from there.
    let cache = tempfile::tempdir().expect("cache");
    server.set_faults(Faults {
        cut_after: Some(100_000),
        cut_times: 1,
        ..Faults::default()
    });
    let path = hub(&server, cache.path())
        .download_file(&repo, WEIGHTS)
        .expect("resumed download");
    assert_eq!(fs::read(path).expect("read"), weights);
    let ranges = ranges_asked(&server);
    assert_eq!(ranges, ["bytes=100000-"]);

    // Cut every time after 300 kB: each attempt brings bytes, so the download goes on.
    let cache = tempfile::tempdir().expect("cache");
    server.clear_requests();
    server.set_faults(Faults {
        cut_after: Some(300_000),
        cut_times: 100,
        ..Faults::default()
    });
    let path = hub(&server, cache.path())
        .download_file(&repo, WEIGHTS)
        .expect("resumed download");
    assert_eq!(fs::read(path).expect("read"), weights);
    let ranges = ranges_asked(&server);
    assert_eq!(ranges, ["bytes=300000-", "bytes=600000-", "bytes=900000-"]);

    // A server that never sends a byte: five attempts, then a typed error (not a loop).
    let cache = tempfile::tempdir().expect("cache");
    server.set_faults(Faults {
        cut_after: Some(0),
        cut_times: 100,
        ..Faults::default()
    });
    let err = hub(&server, cache.path())
        .download_file(&repo, WEIGHTS)
        .expect_err("no bytes");
    assert!(
        matches!(&err, HubError::Network { file, .. } if file == WEIGHTS),
        "{err}"
    );

    // A run that died halfway left `<sha256>.incomplete`: the next one asks for the rest only.
    let (cache, partial) = cache_with_partial(&weights, 500_000);
    server.set_faults(Faults::default());
    server.clear_requests();
    let path = hub(&server, cache.path())
        .download_file(&repo, WEIGHTS)
        .expect("resumed download");
    assert_eq!(fs::read(path).expect("read"), weights);
    let gets: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].header("range"), Some("bytes=500000-"));
    assert!(!partial.exists());

    // A server that ignores Range: the partial file is replaced, not appended to.
    let (cache, _) = cache_with_partial(&weights, 500_000);
    server.set_faults(Faults {
        ignore_range: true,
        ..Faults::default()
    });
    let path = hub(&server, cache.path())
        .download_file(&repo, WEIGHTS)
        .expect("full download");
    assert_eq!(fs::read(path).expect("read"), weights);
}

#[test]
fn a_corrupted_body_is_rejected_and_nothing_is_moved_into_place() {
    let server = HubServer::start(vec![repo("org/tiny", tiny_files(), Access::Public)]);
    let cache = tempfile::tempdir().expect("cache");
    let hub = hub(&server, cache.path());
    let repo: RepoId = "org/tiny".parse().expect("repo id");
    for file in [WEIGHTS, "config.json"] {
        server.set_faults(Faults {
            corrupt: Some(file.into()),
            ..Faults::default()
        });
        let err = hub.download_file(&repo, file).expect_err("corrupt body");
        let what = if file == WEIGHTS {
            "sha256"
        } else {
            "git sha1"
        };
        assert!(
            matches!(&err, HubError::Corrupt { what: w, file: f, .. } if *w == what && f == file),
            "{err}"
        );
        let dir = repo_dir(cache.path(), "org/tiny");
        assert!(!dir.join("snapshots").join(COMMIT).join(file).exists());
        let blobs: Vec<_> = fs::read_dir(dir.join("blobs")).expect("blobs").collect();
        assert!(blobs.is_empty(), "nothing kept of a corrupt download");
    }
    server.set_faults(Faults::default());
    assert!(hub.download_file(&repo, WEIGHTS).is_ok());
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_a_typed_error() {
    let server = HubServer::start(vec![repo("org/tiny", tiny_files(), Access::Public)]);
    let cache = tempfile::tempdir().expect("cache");
    let weights = fs::read(root().join("tiny-e5v").join(WEIGHTS)).expect("weights");
    let blobs = repo_dir(cache.path(), "org/tiny").join("blobs");
    fs::create_dir_all(&blobs).expect("blobs");
    // Every write to /dev/full fails with ENOSPC, as on a full disk.
    std::os::unix::fs::symlink(
        "/dev/full",
        blobs.join(format!("{}.incomplete", sha256_hex(&weights))),
    )
    .expect("link");
    let err = hub(&server, cache.path())
        .download_file(&"org/tiny".parse().expect("repo id"), WEIGHTS)
        .expect_err("disk full");
    assert!(
        matches!(&err, HubError::DiskFull { file, .. } if file == WEIGHTS),
        "{err}"
    );
}

#[test]
fn hub_errors_name_the_repo_and_say_what_to_do() {
    let server = HubServer::start(vec![
        repo("org/tiny", tiny_files(), Access::Public),
        repo(
            "org/private",
            tiny_files(),
            Access::Private {
                token: "hf_good".into(),
            },
        ),
        repo(
            "org/gated",
            tiny_files(),
            Access::Gated {
                token: "hf_good".into(),
            },
        ),
        repo(
            "org/no-processor",
            tiny_files()
                .into_iter()
                .filter(|f| f.path != "processor_config.json")
                .collect(),
            Access::Public,
        ),
    ])
    .with_alias("org/old-name", "org/tiny");
    let cache = tempfile::tempdir().expect("cache");
    let hub = hub(&server, cache.path());
    let with_token = |t: &str| hub.clone().with_token(Some(t.into()));

    let err = hub.model_dir("org/missing").expect_err("404");
    assert!(
        matches!(&err, HubError::RepoNotFound { repo, authenticated: false, .. } if repo == "org/missing"),
        "{err}"
    );
    assert!(err.to_string().contains("HF_TOKEN"), "{err}");
    let err = hub.model_dir("org/private").expect_err("401");
    assert!(matches!(&err, HubError::RepoNotFound { .. }), "{err}");
    let err = with_token("hf_bad")
        .model_dir("org/private")
        .expect_err("bad token");
    assert!(
        matches!(&err, HubError::AccessDenied { status: 401, .. }),
        "{err}"
    );
    assert!(with_token("hf_good").model_dir("org/private").is_ok());
    let err = hub.model_dir("org/gated").expect_err("gated");
    assert!(
        matches!(&err, HubError::Gated { repo, .. } if repo == "org/gated"),
        "{err}"
    );
    assert!(err.to_string().contains("accept its conditions"), "{err}");
    let err = hub.model_dir("org/tiny@v9").expect_err("revision");
    assert!(
        matches!(&err, HubError::RevisionNotFound { revision, .. } if revision == "v9"),
        "{err}"
    );
    let err = hub
        .model_dir("org/no-processor")
        .expect_err("processor config");
    assert!(
        matches!(&err, HubError::FileNotFound { file, .. } if file == "preprocessor_config.json or processor_config.json"),
        "{err}"
    );
    let err = hub
        .download_file(&"org/tiny".parse().expect("repo id"), "nope.json")
        .expect_err("missing file");
    assert!(
        matches!(&err, HubError::FileNotFound { file, .. } if file == "nope.json"),
        "{err}"
    );
    assert!(
        repo_dir(cache.path(), "org/tiny")
            .join(".no_exist")
            .join(COMMIT)
            .join("nope.json")
            .is_file()
    );
    // A renamed repo answers with a relative redirect to its new name.
    assert!(hub.model_dir("org/old-name").is_ok());

    let offline = hub
        .clone()
        .with_offline(true)
        .with_cache_dir(tempfile::tempdir().expect("empty").path());
    let err = offline.model_dir("org/tiny").expect_err("not cached");
    assert!(
        matches!(&err, HubError::NotCached { file, .. } if file == "refs/main"),
        "{err}"
    );
    let err = hub
        .clone()
        .with_endpoint(NOWHERE)
        .model_dir("org/elsewhere")
        .expect_err("no network");
    assert!(matches!(&err, HubError::Network { .. }), "{err}");
    assert!(err.to_string().contains("HF_HUB_OFFLINE"), "{err}");
    let err = hub.model_dir("no/such/folder").expect_err("neither");
    assert!(matches!(&err, HubError::NotAModel { .. }), "{err}");
}

/// The cache exactly as Python's `huggingface_hub` leaves it after `snapshot_download`.
fn python_cache(cache: &Path, id: &str) {
    let dir = repo_dir(cache, id);
    fs::create_dir_all(dir.join("blobs")).expect("blobs");
    fs::create_dir_all(dir.join("refs")).expect("refs");
    let snapshot = dir.join("snapshots").join(COMMIT);
    fs::create_dir_all(&snapshot).expect("snapshot");
    fs::write(dir.join("refs/main"), COMMIT).expect("ref");
    for file in tiny_files() {
        let etag = if file.lfs {
            sha256_hex(&file.bytes)
        } else {
            git_blob_sha1(&file.bytes)
        };
        fs::write(dir.join("blobs").join(&etag), &file.bytes).expect("blob");
        std::os::unix::fs::symlink(
            Path::new("../../blobs").join(&etag),
            snapshot.join(&file.path),
        )
        .expect("link");
    }
}

#[test]
fn a_cache_python_wrote_is_used_offline() {
    let cache = tempfile::tempdir().expect("cache");
    python_cache(cache.path(), "royokong/e5-v");
    let hub = Hub::from_env()
        .with_cache_dir(cache.path())
        .with_endpoint(NOWHERE)
        .with_offline(true);
    let dir = hub.model_dir("royokong/e5-v").expect("cached");
    assert_eq!(text_vector(&dir), reference_vector());
    let err = hub
        .model_dir("royokong/e5-v@other")
        .expect_err("no such ref");
    assert!(matches!(&err, HubError::NotCached { .. }), "{err}");

    // The environment's way in: `from_pretrained` with HF_HUB_OFFLINE=1 and HF_HUB_CACHE, in a
    // child process (the environment is the process's).
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "hub::from_pretrained_child",
            "--ignored",
            "--test-threads=1",
        ])
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", cache.path())
        .env("HF_ENDPOINT", NOWHERE)
        .env("E5V_HUB_CHILD", "royokong/e5-v")
        .output()
        .expect("run the child");
    assert!(
        status.status.success(),
        "{}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
}

/// Run by `a_cache_python_wrote_is_used_offline` in a child process with the Hub's variables set.
#[test]
#[ignore = "run as a child process by a_cache_python_wrote_is_used_offline"]
fn from_pretrained_child() {
    let repo = std::env::var("E5V_HUB_CHILD").expect("E5V_HUB_CHILD names the repo to load");
    let embedder =
        Embedder::<B>::from_pretrained(&repo, EmbedderOptions::default(), &Default::default())
            .expect("from the cache, offline");
    let vector = embedder
        .embed_texts(&["a dog on the beach"])
        .expect("embed")
        .get(0)
        .expect("row")
        .to_vec();
    assert_eq!(vector, reference_vector());
    let err = Embedder::<B>::from_pretrained(
        "royokong/not-cached",
        EmbedderOptions::default(),
        &Default::default(),
    )
    .expect_err("offline");
    assert!(
        matches!(&err, Error::Hub(e) if matches!(**e, HubError::NotCached { .. })),
        "{err}"
    );
}

/// Python's own client against the same server and caches: what Python downloads, e5v loads
/// offline; what e5v downloads, Python finds offline and `scan_cache_dir` finds sound. Needs
/// `huggingface_hub`: `E5V_PYTHON=/path/to/python` (scripts/hub/python-interop.sh).
#[test]
#[ignore = "needs Python with huggingface_hub: scripts/hub/python-interop.sh"]
fn python_interop() {
    let python = std::env::var("E5V_PYTHON").expect("E5V_PYTHON: a Python with huggingface_hub");
    let server = HubServer::start(vec![repo("org/tiny", tiny_files(), Access::Public)]);
    let needed = [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "processor_config.json",
        WEIGHTS,
    ];
    let script = r#"
import sys
from huggingface_hub import hf_hub_download, scan_cache_dir
mode, repo, files = sys.argv[1], sys.argv[2], sys.argv[3:]
for f in files:
    print(hf_hub_download(repo, f, local_files_only=(mode == "read")))
if mode == "read":
    info = scan_cache_dir()
    assert not info.warnings, info.warnings
    (r,) = info.repos
    print(r.repo_id, r.size_on_disk, sorted(rev.commit_hash for rev in r.revisions), sorted(r.refs))
"#;
    let python_run = |mode: &str, cache: &Path| {
        let output = std::process::Command::new(&python)
            .args(["-c", script, mode, "org/tiny"])
            .args(needed)
            .env("HF_HUB_CACHE", cache)
            .env("HF_ENDPOINT", server.endpoint())
            .env("HF_HUB_OFFLINE", if mode == "read" { "1" } else { "0" })
            .env("HF_HUB_DISABLE_TELEMETRY", "1")
            .env_remove("HF_TOKEN")
            .output()
            .expect("run python");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };

    // Python downloads, e5v loads offline.
    let by_python = tempfile::tempdir().expect("cache");
    python_run("download", by_python.path());
    let hub = Hub::from_env()
        .with_cache_dir(by_python.path())
        .with_endpoint(NOWHERE)
        .with_offline(true);
    let dir = hub
        .model_dir("org/tiny")
        .expect("Python's download, offline");
    assert_eq!(text_vector(&dir), reference_vector());

    // e5v downloads, Python reads offline and finds the cache sound.
    let by_e5v = tempfile::tempdir().expect("cache");
    hub.clone()
        .with_cache_dir(by_e5v.path())
        .with_endpoint(&server.endpoint())
        .with_offline(false)
        .model_dir("org/tiny")
        .expect("download");
    let stdout = python_run("read", by_e5v.path());
    let lines: Vec<&str> = stdout.lines().collect();
    for (file, path) in needed.iter().zip(&lines) {
        let expected = fs::read(root().join("tiny-e5v").join(file)).expect("fixture");
        assert_eq!(fs::read(path).expect("Python's path"), expected, "{file}");
    }
    assert_eq!(
        lines[needed.len()],
        format!(
            "org/tiny {} ['{COMMIT}'] ['main']",
            needed
                .iter()
                .map(|f| fs::metadata(root().join("tiny-e5v").join(f))
                    .expect("fixture")
                    .len())
                .sum::<u64>()
        )
    );
}
