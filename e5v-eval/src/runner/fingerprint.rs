//! What identifies a model directory in cache keys, without reading its weights.

use std::path::Path;
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use crate::error::{EvalError, Result};

/// Hash of a model directory: the bytes of `config.json`, then the name, size and modification
/// time of every other file in it (weights, tokenizer, processor config), sorted by name.
/// Hashing sizes and times instead of the 16 GB of weights keeps this instant; replacing a
/// file changes its time, so stale vectors are not reused.
pub(crate) fn model_fingerprint(dir: &Path) -> Result<[u8; 32]> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EvalError::Io { path, source }
    };
    let config = dir.join("config.json");
    let mut hasher = Sha256::new();
    hasher.update(b"e5v-eval model v1\0");
    hasher.update(std::fs::read(&config).map_err(io(&config))?);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let meta = entry.metadata().map_err(io(&entry.path()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if meta.is_file() && name != "config.json" {
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            files.push((name, meta.len(), modified));
        }
    }
    files.sort();
    for (name, len, modified) in files {
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(len.to_le_bytes());
        hasher.update(modified.to_le_bytes());
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_with_config_and_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.json"), "{}").expect("write");
        let a = model_fingerprint(dir.path()).expect("fingerprint");
        assert_eq!(a, model_fingerprint(dir.path()).expect("fingerprint"));
        std::fs::write(dir.path().join("model.safetensors"), "x").expect("write");
        let b = model_fingerprint(dir.path()).expect("fingerprint");
        assert_ne!(a, b);
        std::fs::write(dir.path().join("config.json"), "{ }").expect("write");
        assert_ne!(b, model_fingerprint(dir.path()).expect("fingerprint"));
        assert!(model_fingerprint(&dir.path().join("missing")).is_err());
    }
}
