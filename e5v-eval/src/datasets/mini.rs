//! The bundled mini set (`assets/mini/` of this crate): `captions.json`, a list of
//! `{"image", "caption", "source", "licence"}` with the images under `images/`. One hand-written
//! caption per image; loaded as an [`ImageTextDataset`] with one caption per image.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::karpathy::{ImageTextDataset, RetrievalImage};
use super::read::read_json;
use crate::error::{EvalError, Result};

/// The captions file of a mini set folder.
pub const MINI_CAPTIONS_FILE: &str = "captions.json";
/// The images folder of a mini set folder.
pub const MINI_IMAGES_DIR: &str = "images";

/// The bundled mini set's folder (inside this crate's sources).
pub fn bundled_mini_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join("mini")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    image: String,
    caption: String,
    #[allow(dead_code)]
    source: String,
    #[allow(dead_code)]
    licence: String,
}

/// Loads a mini set folder (`captions.json` + `images/`); image paths are relative to
/// `images/`. Fails on malformed JSON, an empty list, or an image listed twice.
pub fn load_mini(dir: &Path) -> Result<ImageTextDataset> {
    let path = dir.join(MINI_CAPTIONS_FILE);
    let entries: Vec<RawEntry> = read_json(&path)?;
    if entries.is_empty() {
        return Err(EvalError::MalformedEntry {
            path,
            entry: "[]".into(),
            message: "no images".into(),
        });
    }
    let mut out = ImageTextDataset {
        images: Vec::with_capacity(entries.len()),
        captions: Vec::with_capacity(entries.len()),
        caption_to_image: Vec::with_capacity(entries.len()),
    };
    for (i, entry) in entries.into_iter().enumerate() {
        let image_path = PathBuf::from(&entry.image);
        if out.images.iter().any(|im| im.path == image_path) {
            return Err(EvalError::MalformedEntry {
                path,
                entry: format!("[{i}] ({})", entry.image),
                message: "image listed twice".into(),
            });
        }
        out.captions.push(entry.caption);
        out.caption_to_image.push(i);
        out.images.push(RetrievalImage {
            path: image_path,
            imgid: i as u64,
            cocoid: None,
        });
    }
    Ok(out)
}
