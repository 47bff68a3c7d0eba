//! End-to-end tests of the root package, on the tiny fixture checkpoint: the `embed` example's
//! JSONL contract (the README's main command) and the README's Rust snippet.
//!
//! One test binary for the package, as in the other crates: burn builds are slow.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
};

// The example needs both features (`required-features` in Cargo.toml): without them cargo does
// not build it.
#[cfg(all(feature = "flex", feature = "hub"))]
mod example;
mod jsonl;
mod readme;

/// `fixtures/` of this checkout.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The tiny random checkpoint with E5-V's structure (vectors of width 64).
pub fn tiny_model() -> PathBuf {
    fixtures().join("tiny-e5v")
}

/// A fresh folder under cargo's `target/tmp`, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "e2e-{name}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover of a killed run with the same process id.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary folder");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
