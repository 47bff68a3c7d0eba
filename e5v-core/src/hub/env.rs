//! The environment variables `huggingface_hub` reads, read the same way, so that Python and
//! Rust share one cache, one token and one endpoint.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

/// The Hub's address when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Settings read from the environment (see [`Hub::from_env`](super::Hub::from_env)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HubEnv {
    pub cache: PathBuf,
    pub endpoint: String,
    pub token: Option<String>,
    pub offline: bool,
}

impl HubEnv {
    /// Reads the settings through `var` (`std::env::var_os` outside tests).
    pub fn read(var: impl Fn(&str) -> Option<OsString>, home: Option<PathBuf>) -> Self {
        let path = |name: &str| {
            var(name)
                .filter(|v| !v.is_empty())
                .map(|v| expand_home(v, home.as_deref()))
        };
        // HF_HOME defaults to $XDG_CACHE_HOME/huggingface, and that to ~/.cache/huggingface.
        let hf_home = path("HF_HOME").unwrap_or_else(|| {
            path("XDG_CACHE_HOME")
                .or_else(|| home.as_ref().map(|h| h.join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"))
                .join("huggingface")
        });
        let cache = path("HF_HUB_CACHE")
            .or_else(|| path("HUGGINGFACE_HUB_CACHE"))
            .unwrap_or_else(|| hf_home.join("hub"));
        let text = |name: &str| {
            var(name)
                .map(|v| v.to_string_lossy().into_owned())
                .filter(|v| !v.is_empty())
        };
        let endpoint = text("HF_ENDPOINT")
            .map(|e| e.trim_end_matches('/').to_owned())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        // The token: HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN), else the file that
        // `hf auth login` writes.
        let token = text("HF_TOKEN")
            .or_else(|| text("HUGGING_FACE_HUB_TOKEN"))
            .and_then(clean_token)
            .or_else(|| {
                let file = path("HF_TOKEN_PATH").unwrap_or_else(|| hf_home.join("token"));
                std::fs::read_to_string(file).ok().and_then(clean_token)
            });
        let truthy = |name: &str| {
            text(name)
                .is_some_and(|v| ["1", "ON", "YES", "TRUE"].contains(&v.to_uppercase().as_str()))
        };
        Self {
            cache,
            endpoint,
            token,
            offline: truthy("HF_HUB_OFFLINE") || truthy("TRANSFORMERS_OFFLINE"),
        }
    }

    /// The process's own environment.
    pub fn from_process() -> Self {
        Self::read(|name| std::env::var_os(name), std::env::home_dir())
    }
}

/// `~` and `~/...` as the user's home, as Python's `expanduser` does.
fn expand_home(value: OsString, home: Option<&Path>) -> PathBuf {
    let path = PathBuf::from(value);
    match (path.strip_prefix("~"), home) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path,
    }
}

/// A token without line breaks and surrounding spaces; none if that leaves nothing.
fn clean_token(token: String) -> Option<String> {
    let token = token.replace(['\r', '\n'], "");
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> HubEnv {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        HubEnv::read(
            |name| vars.get(name).cloned(),
            Some(PathBuf::from("/home/u")),
        )
    }

    #[test]
    fn cache_follows_python_precedence() {
        assert_eq!(read(&[]).cache, Path::new("/home/u/.cache/huggingface/hub"));
        assert_eq!(
            read(&[("XDG_CACHE_HOME", "/x")]).cache,
            Path::new("/x/huggingface/hub")
        );
        assert_eq!(
            read(&[("HF_HOME", "~/hf"), ("XDG_CACHE_HOME", "/x")]).cache,
            Path::new("/home/u/hf/hub")
        );
        assert_eq!(
            read(&[("HUGGINGFACE_HUB_CACHE", "/old"), ("HF_HOME", "/h")]).cache,
            Path::new("/old")
        );
        assert_eq!(
            read(&[("HF_HUB_CACHE", "/c"), ("HUGGINGFACE_HUB_CACHE", "/old")]).cache,
            Path::new("/c")
        );
    }

    #[test]
    fn endpoint_token_and_offline() {
        let env = read(&[]);
        assert_eq!(
            (env.endpoint.as_str(), env.token, env.offline),
            (DEFAULT_ENDPOINT, None, false)
        );
        let env = read(&[
            ("HF_ENDPOINT", "http://127.0.0.1:9/"),
            ("HF_TOKEN", " hf_abc\n"),
            ("HUGGING_FACE_HUB_TOKEN", "hf_old"),
            ("HF_HUB_OFFLINE", "yes"),
        ]);
        assert_eq!(env.endpoint, "http://127.0.0.1:9");
        assert_eq!(env.token.as_deref(), Some("hf_abc"));
        assert!(env.offline);
        assert!(read(&[("TRANSFORMERS_OFFLINE", "1")]).offline);
        assert!(!read(&[("HF_HUB_OFFLINE", "0")]).offline);
    }

    #[test]
    fn token_file_is_read_when_no_variable_is_set() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::write(dir.path().join("token"), "hf_file\n").expect("test file");
        let home = dir.path().to_str().expect("a UTF-8 path");
        assert_eq!(read(&[("HF_HOME", home)]).token.as_deref(), Some("hf_file"));
        assert_eq!(
            read(&[("HF_HOME", home), ("HF_TOKEN", "hf_env")])
                .token
                .as_deref(),
            Some("hf_env")
        );
        let other = dir.path().join("other");
        std::fs::write(&other, "  \n").expect("test file");
        assert_eq!(
            read(&[
                ("HF_HOME", home),
                ("HF_TOKEN_PATH", other.to_str().expect("a UTF-8 path"))
            ])
            .token,
            None
        );
    }
}
