//! The Hub's HTTP protocol, as `huggingface_hub` speaks it: a HEAD on
//! `{endpoint}/{repo}/resolve/{revision}/{file}` tells the commit (`X-Repo-Commit`), the blob's
//! name and size (`X-Linked-Etag`/`X-Linked-Size` for LFS files, else `ETag`/`Content-Length`)
//! and, for LFS files, the storage address in a redirect; a GET (with `Range` to resume) fetches
//! the bytes. Redirects within the Hub are followed with the token, redirects off it without.

use std::{io::Read, thread, time::Duration};

use ureq::{Agent, http::Response};

use super::{HubError, RepoId};

/// How a file is fetched, as the HEAD reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileMeta {
    /// The commit the revision resolved to.
    pub commit: String,
    /// The blob's name in the cache: sha256 for LFS files, git sha1 for the others.
    pub etag: String,
    /// Bytes, when the Hub said.
    pub size: Option<u64>,
    /// Where to GET the bytes (the storage address for LFS files).
    pub url: String,
}

/// What a HEAD found.
#[derive(Debug)]
pub(crate) enum Lookup {
    Found(FileMeta),
    /// The repo and revision exist, the file does not (with the commit, when the Hub said).
    Missing {
        commit: Option<String>,
    },
}

/// An open download: the body from byte `start` on.
pub(crate) struct Body {
    pub start: u64,
    pub reader: Box<dyn Read + Send>,
}

/// The Hub client: one agent, the endpoint, the token (no `Debug`: the token stays out of logs).
#[derive(Clone)]
pub(crate) struct Remote {
    agent: Agent,
    pub endpoint: String,
    token: Option<String>,
}

/// Retries of a request answered 429 or 5xx, and the first pause (doubled each time).
const RETRIES: u32 = 4;
const FIRST_PAUSE: Duration = Duration::from_millis(500);
const MAX_REDIRECTS: usize = 10;

impl Remote {
    pub fn new(endpoint: &str, token: Option<String>) -> Self {
        let agent = Agent::config_builder()
            // Statuses are read here (X-Error-Code), redirects followed here (the token must
            // not leave the Hub), and bodies arrive as stored (sizes and hashes are of the file).
            .http_status_as_error(false)
            .max_redirects(0)
            .accept_encoding("identity")
            .user_agent(concat!("e5v/", env!("CARGO_PKG_VERSION"), "; rust"))
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            // No limit on a whole body (files are GBs), but a stalled connection fails.
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        Self {
            agent,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            token,
        }
    }

    pub fn authenticated(&self) -> bool {
        self.token.is_some()
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// `{endpoint}/{repo}/resolve/{revision}/{file}`, quoted as `huggingface_hub` quotes it.
    pub fn resolve_url(&self, repo: &RepoId, file: &str) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint,
            repo.id(),
            quote(repo.revision(), ""),
            quote(file, "/")
        )
    }

    /// The file's commit, blob name, size and address.
    pub fn head(&self, repo: &RepoId, file: &str) -> Result<Lookup, HubError> {
        let mut url = self.resolve_url(repo, file);
        for _ in 0..MAX_REDIRECTS {
            let response = self.send("HEAD", &url, true, 0, repo, file)?;
            let status = response.status().as_u16();
            let header = |name: &str| header(&response, name);
            if (300..400).contains(&status) {
                let location = header("location")
                    .ok_or_else(|| protocol(&url, "a redirect without Location"))?;
                let target = join_url(&url, &location);
                if origin(&target) == origin(&url) {
                    // A renamed repo: the same question, asked at its new address.
                    url = target;
                    continue;
                }
                // Off the Hub (LFS storage): this response carries the file's metadata.
                return meta(&url, &header, header("x-linked-size"), target).map(Lookup::Found);
            }
            if (200..300).contains(&status) {
                let size = header("x-linked-size").or_else(|| header("content-length"));
                return meta(&url, &header, size, url.clone()).map(Lookup::Found);
            }
            return match status_error(status, &header, repo, file, &url, self) {
                Err(HubError::FileNotFound { .. }) => Ok(Lookup::Missing {
                    commit: header("x-repo-commit"),
                }),
                Err(e) => Err(e),
                Ok(()) => Err(protocol(&url, &format!("unexpected status {status}"))),
            };
        }
        Err(protocol(&url, "too many redirects"))
    }

    /// The file's bytes from `from` on (the server may ignore the range: see `Body::start`).
    pub fn get(
        &self,
        repo: &RepoId,
        file: &str,
        meta: &FileMeta,
        from: u64,
    ) -> Result<Body, HubError> {
        let mut url = meta.url.clone();
        // The token goes to the Hub itself only, never to the storage it redirects to.
        let mut auth = origin(&url) == origin(&self.endpoint);
        for _ in 0..MAX_REDIRECTS {
            let response = self.send("GET", &url, auth, from, repo, file)?;
            let status = response.status().as_u16();
            let header = |name: &str| header(&response, name);
            if (300..400).contains(&status) {
                let location = header("location")
                    .ok_or_else(|| protocol(&url, "a redirect without Location"))?;
                let target = join_url(&url, &location);
                auth &= origin(&target) == origin(&url);
                url = target;
                continue;
            }
            let start = match status {
                200 => 0,
                206 => {
                    let range = header("content-range").unwrap_or_default();
                    let start = range
                        .strip_prefix("bytes ")
                        .and_then(|r| r.split('-').next())
                        .and_then(|s| s.trim().parse::<u64>().ok());
                    if start != Some(from) {
                        return Err(protocol(
                            &url,
                            &format!("asked for bytes from {from}, got Content-Range {range:?}"),
                        ));
                    }
                    from
                }
                _ => {
                    status_error(status, &header, repo, file, &url, self)?;
                    return Err(protocol(&url, &format!("unexpected status {status}")));
                }
            };
            let reader = Box::new(response.into_body().into_reader());
            return Ok(Body { start, reader });
        }
        Err(protocol(&url, "too many redirects"))
    }

    /// One request, retried on 429 and 5xx with growing pauses.
    fn send(
        &self,
        method: &str,
        url: &str,
        auth: bool,
        from: u64,
        repo: &RepoId,
        file: &str,
    ) -> Result<Response<ureq::Body>, HubError> {
        let mut pause = FIRST_PAUSE;
        let mut attempt = 0;
        loop {
            let mut request = ureq::http::Request::builder().method(method).uri(url);
            if let (true, Some(token)) = (auth, &self.token) {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            if from > 0 {
                request = request.header("range", format!("bytes={from}-"));
            }
            let request = request
                .body(())
                .map_err(|e| protocol(url, &e.to_string()))?;
            let response = self.agent.run(request).map_err(|e| HubError::Network {
                repo: repo.id().to_owned(),
                file: file.to_owned(),
                url: url.to_owned(),
                source: Box::new(e),
            })?;
            let status = response.status().as_u16();
            if attempt == RETRIES || !(status == 429 || (500..600).contains(&status)) {
                return Ok(response);
            }
            let wait = header(&response, "retry-after")
                .and_then(|s| s.parse::<u64>().ok())
                .map_or(pause, |s| Duration::from_secs(s.min(60)));
            thread::sleep(wait);
            pause *= 2;
            attempt += 1;
        }
    }
}

fn header<B>(response: &Response<B>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The metadata a HEAD answer carries (Python's `get_hf_file_metadata`).
fn meta(
    url: &str,
    header: &dyn Fn(&str) -> Option<String>,
    size: Option<String>,
    location: String,
) -> Result<FileMeta, HubError> {
    let commit = header("x-repo-commit").ok_or_else(|| protocol(url, "no X-Repo-Commit header"))?;
    if !super::repo::is_commit_hash(&commit) {
        return Err(protocol(
            url,
            &format!("X-Repo-Commit {commit:?} is not a commit hash"),
        ));
    }
    let etag = header("x-linked-etag")
        .or_else(|| header("etag"))
        .ok_or_else(|| protocol(url, "no ETag header"))?;
    let etag = etag
        .strip_prefix("W/")
        .unwrap_or(&etag)
        .trim_matches('"')
        .to_owned();
    // The etag names a file in blobs/: nothing that could leave that folder.
    if etag.is_empty()
        || !etag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        return Err(protocol(url, &format!("ETag {etag:?} cannot name a blob")));
    }
    let size = match size {
        Some(s) => Some(
            s.trim()
                .parse::<u64>()
                .map_err(|_| protocol(url, &format!("size {s:?}")))?,
        ),
        None => None,
    };
    Ok(FileMeta {
        commit,
        etag,
        size,
        url: location,
    })
}

/// The typed error for an error status (`Ok` for a status that is not one), in the order of
/// Python's `hf_raise_for_status`: the Hub's `X-Error-Code` first, then the status.
fn status_error(
    status: u16,
    header: &dyn Fn(&str) -> Option<String>,
    repo: &RepoId,
    file: &str,
    url: &str,
    remote: &Remote,
) -> Result<(), HubError> {
    if status < 400 {
        return Ok(());
    }
    let code = header("x-error-code").unwrap_or_default();
    let message = header("x-error-message").unwrap_or_default();
    let (id, endpoint, authenticated) = (
        repo.id().to_owned(),
        remote.endpoint.clone(),
        remote.authenticated(),
    );
    Err(match (code.as_str(), status) {
        ("RevisionNotFound", _) => HubError::RevisionNotFound {
            repo: id,
            revision: repo.revision().to_owned(),
        },
        ("EntryNotFound", _) | ("", 404) => HubError::FileNotFound {
            repo: id,
            revision: repo.revision().to_owned(),
            file: file.to_owned(),
        },
        ("GatedRepo", _) => HubError::Gated {
            repo: id,
            endpoint,
            authenticated,
        },
        (_, 401) if message == "Invalid credentials in Authorization header" => {
            HubError::AccessDenied {
                repo: id,
                status,
                message,
            }
        }
        // The Hub answers 401 for private repos and for repos that do not exist alike.
        ("RepoNotFound", _) | (_, 401) => HubError::RepoNotFound {
            repo: id,
            endpoint,
            authenticated,
        },
        (_, 403) => HubError::AccessDenied {
            repo: id,
            status,
            message,
        },
        _ => HubError::Http {
            repo: id,
            file: file.to_owned(),
            url: url.to_owned(),
            status,
            message,
        },
    })
}

fn protocol(url: &str, what: &str) -> HubError {
    HubError::Protocol {
        url: url.to_owned(),
        what: what.to_owned(),
    }
}

/// Python's `urllib.parse.quote`: letters, digits, `_.-~` and the `safe` characters stay.
fn quote(text: &str, safe: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) || safe.as_bytes().contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `Location` resolved against the address that sent it.
fn join_url(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_owned();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{}{rest}", &base[..scheme_end]);
    }
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    if location.starts_with('/') {
        return format!("{}{location}", &base[..path_start]);
    }
    let dir_end = base
        .rfind('/')
        .filter(|&i| i >= path_start)
        .map_or(base.len(), |i| i + 1);
    format!(
        "{}{}{location}",
        &base[..dir_end],
        if dir_end == base.len() { "/" } else { "" }
    )
}

/// `(scheme, host, port)` of an address, the port made explicit.
fn origin(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let authority = authority.rsplit('@').next().unwrap_or_default().to_owned();
    let scheme = scheme.to_ascii_lowercase();
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()));
    let authority = match (has_port, scheme.as_str()) {
        (false, "http") => format!("{authority}:80"),
        (false, "https") => format!("{authority}:443"),
        _ => authority,
    };
    (scheme, authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_quoted_as_python_quotes_them() {
        let remote = Remote::new("http://h:1/", None);
        let repo: RepoId = "org/name@refs/pr/1".parse().expect("a valid repo id");
        assert_eq!(
            remote.resolve_url(&repo, "sub dir/model.safetensors"),
            "http://h:1/org/name/resolve/refs%2Fpr%2F1/sub%20dir/model.safetensors"
        );
    }

    #[test]
    fn locations_join_like_urljoin() {
        let base = "https://hf.co/a/b/resolve/main/x.json";
        assert_eq!(join_url(base, "https://cdn/x?sig=1"), "https://cdn/x?sig=1");
        assert_eq!(join_url(base, "//cdn/y"), "https://cdn/y");
        assert_eq!(
            join_url(base, "/c/d/resolve/main/x.json"),
            "https://hf.co/c/d/resolve/main/x.json"
        );
        assert_eq!(
            join_url(base, "y.json"),
            "https://hf.co/a/b/resolve/main/y.json"
        );
    }

    #[test]
    fn origins_compare_with_default_ports() {
        assert_eq!(origin("https://HF.co/x"), origin("https://hf.co:443/y"));
        assert_ne!(origin("https://hf.co/x"), origin("https://cdn.hf.co/x"));
        assert_ne!(
            origin("http://127.0.0.1:1/x"),
            origin("http://127.0.0.1:2/x")
        );
    }

    #[test]
    fn statuses_map_as_python_maps_them() {
        let remote = Remote::new("http://h", Some("t".into()));
        let repo: RepoId = "o/n".parse().expect("a valid repo id");
        let error = |status, code: &str, message: &str| {
            let (code, message) = (code.to_owned(), message.to_owned());
            let header = move |name: &str| match name {
                "x-error-code" if !code.is_empty() => Some(code.clone()),
                "x-error-message" if !message.is_empty() => Some(message.clone()),
                _ => None,
            };
            status_error(status, &header, &repo, "f", "u", &remote).expect_err("an error status")
        };
        assert!(matches!(
            error(404, "RepoNotFound", ""),
            HubError::RepoNotFound {
                authenticated: true,
                ..
            }
        ));
        assert!(matches!(
            error(401, "", "Repository not found"),
            HubError::RepoNotFound { .. }
        ));
        assert!(matches!(
            error(
                401,
                "RepoNotFound",
                "Invalid credentials in Authorization header"
            ),
            HubError::AccessDenied { status: 401, .. }
        ));
        assert!(matches!(
            error(403, "GatedRepo", ""),
            HubError::Gated { .. }
        ));
        assert!(matches!(
            error(403, "", "no"),
            HubError::AccessDenied { status: 403, .. }
        ));
        assert!(matches!(
            error(404, "EntryNotFound", ""),
            HubError::FileNotFound { .. }
        ));
        assert!(matches!(
            error(404, "RevisionNotFound", ""),
            HubError::RevisionNotFound { .. }
        ));
        assert!(matches!(
            error(500, "", ""),
            HubError::Http { status: 500, .. }
        ));
    }
}
