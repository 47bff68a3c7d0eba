//! A fake Hugging Face Hub for the download client's integration tests.
//!
//! It answers `/resolve/` the way the Hub does for `huggingface_hub` (2.4): the headers the client
//! reads (`X-Repo-Commit`, `ETag`, `X-Linked-Etag`, `X-Linked-Size`, `Location`, `X-Error-Code`,
//! `X-Error-Message`) carry the same meaning, and LFS files are 302-redirected to a signed CDN
//! URL. The CDN listens on a *second port*: `huggingface_hub` keeps following (and keeps the
//! `Authorization` header on) redirects to the same origin, so only a different origin makes the
//! "CDN is off-Hub, drop the token" rule observable, as with the real `cdn-lfs.hf.co`.
//!
//! Plain `std`: one thread per connection, `Connection: close` on every response.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Cap on a request head: anything longer is answered 400.
const MAX_HEAD: usize = 64 * 1024;

/// One file of a repository at its single commit.
#[derive(Clone, Debug)]
pub struct HubFile {
    /// Path in the repository, `/`-separated (`"onnx/model.onnx"`).
    pub path: String,
    /// The content.
    pub bytes: Vec<u8>,
    /// Stored with Git LFS: `/resolve/` redirects to the CDN instead of serving the bytes.
    pub lfs: bool,
}

/// A model repository with one commit, reachable by its branch names or its full commit hash.
#[derive(Clone, Debug)]
pub struct HubRepo {
    /// `"org/name"` (or a bare `"name"`).
    pub id: String,
    /// 40 lowercase hex digits, sent back as `X-Repo-Commit`.
    pub commit: String,
    /// Branch names that resolve to `commit`, e.g. `["main"]`.
    pub branches: Vec<String>,
    /// The files at `commit`.
    pub files: Vec<HubFile>,
    /// Who may read it.
    pub access: Access,
}

/// Access control of a repository, checked against `Authorization: Bearer <token>`.
#[derive(Clone, Debug)]
pub enum Access {
    /// Anyone.
    Public,
    /// Only this token; others get 401 `RepoNotFound` (the Hub hides private repos).
    Private {
        /// The token that grants access.
        token: String,
    },
    /// Only this token; others get 401 `GatedRepo`.
    Gated {
        /// The token of a user whose access request was approved.
        token: String,
    },
}

/// Faults injected in following responses (see [`HubServer::set_faults`]).
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Cut the connection (write headers announcing the full Content-Length, send this many body
    /// bytes, then close) on the first `cut_times` GETs of blob bodies (both /cdn and
    /// regular-file GETs). Each such GET counts, even one whose body is not longer than this.
    pub cut_after: Option<usize>,
    /// How many blob GETs are still to be cut; counts down.
    pub cut_times: usize,
    /// Flip one byte in the middle of every body served for this path (repo file path, e.g.
    /// "model.safetensors"). Hashes and sizes in headers stay those of the true content.
    pub corrupt: Option<String>,
    /// Answer GETs with Range as if Range were unsupported (200 + full body).
    pub ignore_range: bool,
}

/// A request as the server received it.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The raw request target, still percent-encoded, query included.
    pub path: String,
    /// Headers in arrival order, names lowercased.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the connection threads share with the test.
struct State {
    repos: Vec<HubRepo>,
    /// Renamed repos: old id -> new id.
    aliases: Vec<(String, String)>,
    faults: Faults,
    requests: Vec<Request>,
    cdn_port: u16,
}

type Shared = Arc<Mutex<State>>;

/// Locks the state even if a test thread panicked while holding it: the log is still useful.
fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The running fake Hub; stops accepting connections when dropped.
pub struct HubServer {
    state: Shared,
    port: u16,
    cdn_port: u16,
    stop: Arc<AtomicBool>,
    acceptors: Vec<JoinHandle<()>>,
}

impl HubServer {
    /// Starts serving `repos` on `127.0.0.1` (Hub and CDN each on a free port).
    pub fn start(repos: Vec<HubRepo>) -> HubServer {
        let hub = TcpListener::bind("127.0.0.1:0").expect("bind the fake Hub");
        let cdn = TcpListener::bind("127.0.0.1:0").expect("bind the fake CDN");
        let port = hub.local_addr().expect("Hub address").port();
        let cdn_port = cdn.local_addr().expect("CDN address").port();
        let state = Arc::new(Mutex::new(State {
            repos,
            aliases: Vec::new(),
            faults: Faults::default(),
            requests: Vec::new(),
            cdn_port,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptors = [hub, cdn]
            .into_iter()
            .map(|listener| {
                let (state, stop) = (Arc::clone(&state), Arc::clone(&stop));
                thread::spawn(move || accept_loop(&listener, &state, &stop))
            })
            .collect();
        HubServer {
            state,
            port,
            cdn_port,
            stop,
            acceptors,
        }
    }

    /// Declares `old` (`"org/name"`) renamed to `new`: requests for `old` get a relative 307.
    pub fn with_alias(self, old: &str, new: &str) -> Self {
        lock(&self.state)
            .aliases
            .push((old.to_owned(), new.to_owned()));
        self
    }

    /// Replaces the faults applied to the following requests.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.state).faults = faults;
    }

    /// `http://127.0.0.1:PORT`, the Hub endpoint to give the client.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` of the CDN that LFS redirects point to (another origin).
    pub fn cdn_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.cdn_port)
    }

    /// Every request received so far by the Hub and the CDN, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state).requests.clone()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        lock(&self.state).requests.clear();
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // `accept` blocks: a throwaway connection wakes each acceptor up to see the flag.
        for port in [self.port, self.cdn_port] {
            let _ = TcpStream::connect(("127.0.0.1", port));
        }
        for acceptor in self.acceptors.drain(..) {
            let _ = acceptor.join();
        }
    }
}

/// Lowercase hex of the git blob id: SHA-1 of `"blob {len}\0"` + content (the Hub's ETag).
pub fn git_blob_sha1(bytes: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    hex(&hasher.finalize())
}

/// Lowercase hex SHA-256 (the LFS oid).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn accept_loop(listener: &TcpListener, state: &Shared, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        let state = Arc::clone(state);
        thread::spawn(move || handle(stream, &state));
    }
}

/// A response; `body` is what a GET would carry (HEAD announces its length but sends none).
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes, then close (a [`Faults::cut_after`] fault).
    cut: Option<usize>,
}

impl Response {
    fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cut: None,
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// A Hub error: `X-Error-Code` (when given) and `X-Error-Message` are what the client reads.
    fn hub_error(status: u16, code: Option<&str>, message: &str) -> Self {
        let mut response = Response::new(status).header("X-Error-Message", message);
        if let Some(code) = code {
            response = response.header("X-Error-Code", code);
        }
        response.body = format!("{{\"error\":\"{message}\"}}").into_bytes();
        response.header("Content-Type", "application/json")
    }
}

fn handle(mut stream: TcpStream, state: &Shared) {
    // A stuck client must not pin a thread forever.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let (response, head_only) = match read_head(&mut stream) {
        Ok(Some(head)) => match parse_request(&head) {
            Some(request) => {
                let mut st = lock(state);
                st.requests.push(request.clone());
                (route(&request, &mut st), request.method == "HEAD")
            }
            None => (Response::hub_error(400, None, "Bad request"), false),
        },
        Ok(None) => return, // closed before a full head, e.g. the wake-up connection of Drop
        Err(()) => (
            Response::hub_error(400, None, "Request head too large"),
            false,
        ),
    };
    let _ = write_response(&mut stream, &response, head_only);
    let _ = stream.shutdown(Shutdown::Both);
}

/// Reads up to the blank line; `Ok(None)` on EOF or I/O error before it, `Err` past the cap.
fn read_head(stream: &mut TcpStream) -> Result<Option<Vec<u8>>, ()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(end);
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Err(());
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

fn parse_request(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, path, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || !path.starts_with('/') {
        return None;
    }
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Some(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
    })
}

fn write_response(
    stream: &mut TcpStream,
    response: &Response,
    head_only: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        response.body.len()
    ));
    stream.write_all(out.as_bytes())?;
    if !head_only {
        let sent = response.cut.unwrap_or(usize::MAX).min(response.body.len());
        stream.write_all(&response.body[..sent])?;
    }
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        _ => "Unknown",
    }
}

fn route(request: &Request, st: &mut State) -> Response {
    if request.method != "GET" && request.method != "HEAD" {
        return Response::hub_error(405, None, "Method not allowed");
    }
    let raw_path = request
        .path
        .split_once('?')
        .map_or(request.path.as_str(), |(p, _)| p);
    let segments: Vec<&str> = raw_path[1..].split('/').collect();
    if let ["cdn", oid] = segments.as_slice() {
        return serve_cdn(request, st, oid);
    }
    // `/{org}/{name}/resolve/...` or `/{name}/resolve/...`, with a revision and a non-empty path.
    match segments.iter().position(|s| *s == "resolve") {
        Some(at @ (1 | 2)) if segments.len() > at + 2 => resolve(
            request,
            st,
            &segments[..at],
            segments[at + 1],
            &segments[at + 2..],
        ),
        _ => Response::hub_error(404, None, "Not found"),
    }
}

/// `/resolve/`: the Hub's checks in its order (repo, access, revision, entry), then the file.
fn resolve(request: &Request, st: &mut State, repo: &[&str], rev: &str, file: &[&str]) -> Response {
    let decoded = (
        repo.iter()
            .map(|s| percent_decode(s))
            .collect::<Option<Vec<_>>>(),
        percent_decode(rev),
        percent_decode(&file.join("/")),
    );
    let (Some(repo_id), Some(revision), Some(path)) = decoded else {
        return Response::hub_error(400, None, "Invalid percent-encoding");
    };
    let repo_id = repo_id.join("/");
    let Some(repo) = st.repos.iter().find(|r| r.id == repo_id) else {
        if let Some((_, new)) = st.aliases.iter().find(|(old, _)| *old == repo_id) {
            // Relative, as the Hub sends it: the client must resolve it against the request URL.
            let location = format!("/{new}/resolve/{rev}/{}", file.join("/"));
            return Response::new(307).header("Location", location);
        }
        return Response::hub_error(404, Some("RepoNotFound"), "Repository not found");
    };
    let sent = request
        .header("authorization")
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v));
    match (&repo.access, sent) {
        (Access::Public, _) => {}
        (Access::Private { token } | Access::Gated { token }, Some(t)) if t == token => {}
        (Access::Private { .. }, None) => {
            return Response::hub_error(401, Some("RepoNotFound"), "Repository not found");
        }
        (Access::Private { .. }, Some(_)) => {
            let message = "Invalid credentials in Authorization header";
            return Response::hub_error(401, Some("RepoNotFound"), message);
        }
        (Access::Gated { .. }, _) => {
            let message = format!(
                "Access to model {} is restricted. You must have access to it and be \
                 authenticated to access it. Please log in.",
                repo.id
            );
            return Response::hub_error(401, Some("GatedRepo"), &message);
        }
    }
    if revision != repo.commit && !repo.branches.contains(&revision) {
        let message = format!("Invalid rev id: {revision}");
        return Response::hub_error(404, Some("RevisionNotFound"), &message);
    }
    let Some(entry) = repo.files.iter().find(|f| f.path == path) else {
        return Response::hub_error(404, Some("EntryNotFound"), "Entry not found")
            .header("X-Repo-Commit", repo.commit.clone());
    };
    if entry.lfs {
        let (oid, size) = (sha256_hex(&entry.bytes), entry.bytes.len());
        let pointer =
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n");
        let location = format!(
            "http://127.0.0.1:{}/cdn/{oid}?X-Amz-Signature=fake",
            st.cdn_port
        );
        return Response::new(302)
            .header("Location", location)
            .header("X-Repo-Commit", repo.commit.clone())
            .header("X-Linked-Etag", format!("\"{oid}\""))
            .header("X-Linked-Size", size.to_string())
            .header("ETag", format!("\"{}\"", git_blob_sha1(pointer.as_bytes())));
    }
    let etag = format!("\"{}\"", git_blob_sha1(&entry.bytes));
    let commit = repo.commit.clone();
    let bytes = entry.bytes.clone();
    serve_blob(request, &mut st.faults, &path, bytes, etag).header("X-Repo-Commit", commit)
}

/// `/cdn/{sha256}`: a signed-URL host, so no authorization is checked (the log shows any sent).
fn serve_cdn(request: &Request, st: &mut State, oid: &str) -> Response {
    let file = st
        .repos
        .iter()
        .flat_map(|r| &r.files)
        .find(|f| f.lfs && sha256_hex(&f.bytes) == oid);
    let Some(file) = file else {
        return Response::hub_error(404, None, "Not found");
    };
    let (path, bytes) = (file.path.clone(), file.bytes.clone());
    serve_blob(request, &mut st.faults, &path, bytes, format!("\"{oid}\""))
}

/// A file body with Range support and the injected faults. The `ETag` and sizes describe the
/// true content, so a corrupted body only shows in a hash check.
fn serve_blob(
    request: &Request,
    faults: &mut Faults,
    path: &str,
    mut bytes: Vec<u8>,
    etag: String,
) -> Response {
    let get = request.method == "GET";
    if faults.corrupt.as_deref() == Some(path) && !bytes.is_empty() {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
    }
    let len = bytes.len();
    let range = match request.header("range") {
        Some(value) if get && !faults.ignore_range => parse_range(value),
        _ => None,
    };
    let mut response = match range {
        Some((start, _)) if start >= len => {
            return Response::new(416).header("Content-Range", format!("bytes */{len}"));
        }
        Some((start, end)) => {
            let end = end.map_or(len - 1, |e| e.min(len - 1));
            let mut response =
                Response::new(206).header("Content-Range", format!("bytes {start}-{end}/{len}"));
            response.body = bytes[start..=end].to_vec();
            response
        }
        None => Response {
            body: bytes,
            ..Response::new(200)
        },
    };
    if get && faults.cut_times > 0 && faults.cut_after.is_some() {
        faults.cut_times -= 1;
        response.cut = faults.cut_after;
    }
    response
        .header("ETag", etag)
        .header("Accept-Ranges", "bytes")
        .header("Content-Type", "application/octet-stream")
}

/// `bytes=N-` or `bytes=N-M` as `(N, M)`; anything else (multiple ranges, suffix ranges, junk) is
/// `None`, which HTTP says to answer with the whole body.
fn parse_range(value: &str) -> Option<(usize, Option<usize>)> {
    let (start, end) = value.trim().strip_prefix("bytes=")?.split_once('-')?;
    let start = start.trim().parse().ok()?;
    match end.trim() {
        "" => Some((start, None)),
        end => end
            .parse()
            .ok()
            .filter(|&e| e >= start)
            .map(|e| (start, Some(e))),
    }
}

/// `%XX` decoding of one path component; `None` on a bad escape or non-UTF-8 result.
fn percent_decode(raw: &str) -> Option<String> {
    let (bytes, mut out, mut i) = (raw.as_bytes(), Vec::with_capacity(raw.len()), 0);
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Both digits checked: `from_str_radix` alone would take a sign (`%+1`).
            let hex = raw
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
