//! Image URLs fetched on the server's behalf: off unless hosts are allowed, and then only
//! those hosts (exact names), no redirects (a redirect could leave the list), a size limit
//! (the image limit, enforced while reading) and a time limit for the whole fetch.

use std::time::Duration;

/// Which remote images the server fetches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteImages {
    /// Host names (or IP literals) whose `http(s)` URLs may be fetched; empty: none.
    pub allowed_hosts: Vec<String>,
    /// The whole fetch: connect, response and body.
    pub timeout: Duration,
}

/// Why a remote image was not fetched: a code and a message for the client.
#[derive(Debug)]
pub(crate) struct FetchError {
    pub code: &'static str,
    pub message: String,
}

fn error(code: &'static str, message: impl Into<String>) -> FetchError {
    FetchError {
        code,
        message: message.into(),
    }
}

impl RemoteImages {
    /// The bytes at `url`, at most `max_bytes` of them.
    pub(crate) fn fetch(&self, url: &str, max_bytes: usize) -> Result<Vec<u8>, FetchError> {
        if self.allowed_hosts.is_empty() {
            return Err(error(
                "remote_image_disabled",
                "image URLs are not fetched by this server; send the image as a data URI \
                 (data:image/png;base64,...)",
            ));
        }
        let uri: ureq::http::Uri = url
            .parse()
            .map_err(|e| error("invalid_image", format!("invalid URL: {e}")))?;
        let host = uri.host().unwrap_or_default();
        if !self.allowed_hosts.iter().any(|allowed| allowed == host) {
            return Err(error(
                "remote_image_not_allowed",
                format!("images from {host:?} are not fetched (host not on the allow-list)"),
            ));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(self.timeout))
            .build()
            .into();
        let failed = |e: &dyn std::fmt::Display| error("image_fetch_failed", format!("{url}: {e}"));
        let mut response = agent.get(url).call().map_err(|e| failed(&e))?;
        if response.status() != 200 {
            return Err(failed(&format!("HTTP status {}", response.status())));
        }
        let limit = max_bytes as u64;
        response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => error(
                    "image_too_large",
                    format!("{url}: over this server's limit of {max_bytes} bytes"),
                ),
                other => failed(&other),
            })
    }
}
