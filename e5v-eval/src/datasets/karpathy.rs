//! Flickr30K and COCO in Karpathy's split files (`dataset_flickr30k.json`, `dataset_coco.json`).
//!
//! Layout: `{"images": [{"filename", "filepath" (COCO only), "imgid", "cocoid" (COCO only),
//! "split": "train" | "val" | "test" | "restval", "sentences": [{"raw", ...}, ...]}, ...]}`.
//! The paper's test sets are `split == "test"`: 1000 Flickr30K images, the 5000-image COCO
//! split. Every image keeps its first 5 captions (`raw`; some COCO images have 6 or 7, the
//! reference keeps `[:5]`). Image paths are relative to the image folder: `filename` for
//! Flickr30K (`flickr30k-images/`), `filepath/filename` for COCO (the folder holding
//! `val2014/`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::read::read_json;
use crate::error::{EvalError, Result};

/// Captions kept per image in the paper's protocol.
pub const KARPATHY_CAPTIONS_PER_IMAGE: usize = 5;

/// A split of Karpathy's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KarpathySplit {
    /// Training images.
    Train,
    /// Validation images.
    Val,
    /// Test images (the paper's evaluation set).
    Test,
    /// COCO's "restval" images (train in most protocols).
    Restval,
}

impl KarpathySplit {
    /// The value of the `split` field.
    pub fn name(self) -> &'static str {
        match self {
            KarpathySplit::Train => "train",
            KarpathySplit::Val => "val",
            KarpathySplit::Test => "test",
            KarpathySplit::Restval => "restval",
        }
    }
}

/// One image of an image-text retrieval set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrievalImage {
    /// Path relative to the image folder.
    pub path: PathBuf,
    /// Karpathy's `imgid`.
    pub imgid: u64,
    /// COCO's image id (`cocoid`), absent for Flickr30K.
    pub cocoid: Option<u64>,
}

/// An image-text retrieval set: images, captions, and which image each caption belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageTextDataset {
    /// The images, in file order.
    pub images: Vec<RetrievalImage>,
    /// All captions, image by image (`captions_per_image` each).
    pub captions: Vec<String>,
    /// `caption_to_image[i]` = index into `images` of caption `i`.
    pub caption_to_image: Vec<usize>,
}

#[derive(Deserialize)]
struct RawFile {
    images: Vec<RawImage>,
}

#[derive(Deserialize)]
struct RawImage {
    filename: String,
    filepath: Option<String>,
    imgid: u64,
    cocoid: Option<u64>,
    split: String,
    sentences: Vec<RawSentence>,
}

#[derive(Deserialize)]
struct RawSentence {
    raw: String,
}

/// Loads the images of `split` from a Karpathy JSON file, keeping the first
/// `captions_per_image` captions of each ([`KARPATHY_CAPTIONS_PER_IMAGE`] for the paper).
///
/// Fails with [`EvalError::MalformedJson`] on invalid JSON or a missing field, and with
/// [`EvalError::MalformedEntry`] if an image of the split has fewer captions or the split is
/// empty.
pub fn load_karpathy(
    json: &Path,
    split: KarpathySplit,
    captions_per_image: usize,
) -> Result<ImageTextDataset> {
    if captions_per_image == 0 {
        return Err(EvalError::InvalidArgument(
            "captions_per_image must be > 0".into(),
        ));
    }
    let file: RawFile = read_json(json)?;
    let mut out = ImageTextDataset {
        images: Vec::new(),
        captions: Vec::new(),
        caption_to_image: Vec::new(),
    };
    for (i, raw) in file.images.into_iter().enumerate() {
        if raw.split != split.name() {
            continue;
        }
        if raw.sentences.len() < captions_per_image {
            return Err(EvalError::MalformedEntry {
                path: json.to_path_buf(),
                entry: format!("images[{i}] ({})", raw.filename),
                message: format!(
                    "{} captions, expected at least {captions_per_image}",
                    raw.sentences.len()
                ),
            });
        }
        let index = out.images.len();
        for sentence in raw.sentences.into_iter().take(captions_per_image) {
            out.captions.push(sentence.raw);
            out.caption_to_image.push(index);
        }
        let path = match raw.filepath {
            Some(dir) => Path::new(&dir).join(&raw.filename),
            None => PathBuf::from(&raw.filename),
        };
        out.images.push(RetrievalImage {
            path,
            imgid: raw.imgid,
            cocoid: raw.cocoid,
        });
    }
    if out.images.is_empty() {
        return Err(EvalError::MalformedEntry {
            path: json.to_path_buf(),
            entry: "images".into(),
            message: format!("no image with split {:?}", split.name()),
        });
    }
    Ok(out)
}
