//! FashionIQ validation annotations (the layout of XiaoxiaoGuo/fashion-iq, as used by
//! CLIP4Cir and SEARLE), under a dataset root:
//!
//! - `captions/cap.<category>.val.json`: a list of `{"candidate", "target", "captions": [2]}`.
//! - `image_splits/split.<category>.val.json`: the list of image names (ASINs) of the category's
//!   gallery.
//! - images at `images/<name>.png`: paths are returned relative to the `images/` folder, i.e.
//!   `<name>.png`. (The original release lists image URLs; the community copies store PNGs under
//!   this name.)
//!
//! Every target must be in the category's gallery (the reference's HF copy asserts the same);
//! candidates need not be.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use super::cirr::GalleryImage;
use super::read::read_json;
use crate::error::{EvalError, Result};

/// A FashionIQ category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FashionIqCategory {
    /// Dresses.
    Dress,
    /// Shirts.
    Shirt,
    /// Tops and tees.
    Toptee,
}

impl FashionIqCategory {
    /// The three categories, in the paper's order.
    pub const ALL: [FashionIqCategory; 3] = [
        FashionIqCategory::Dress,
        FashionIqCategory::Shirt,
        FashionIqCategory::Toptee,
    ];

    /// The name in file names: `dress`, `shirt`, `toptee`.
    pub fn name(self) -> &'static str {
        match self {
            FashionIqCategory::Dress => "dress",
            FashionIqCategory::Shirt => "shirt",
            FashionIqCategory::Toptee => "toptee",
        }
    }

    /// The noun the prompts use for the category: `dress`, or `shirt` for shirt and toptee.
    pub fn prompt_noun(self) -> &'static str {
        match self {
            FashionIqCategory::Dress => "dress",
            FashionIqCategory::Shirt | FashionIqCategory::Toptee => "shirt",
        }
    }
}

impl fmt::Display for FashionIqCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FashionIqCategory {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| EvalError::InvalidArgument(format!("unknown FashionIQ category {s:?}")))
    }
}

/// One FashionIQ query: the candidate image changed as the two captions say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FashionIqQuery {
    /// The candidate (reference) image name.
    pub candidate: String,
    /// The candidate's path relative to the image folder.
    pub candidate_path: PathBuf,
    /// Gallery index of the target image.
    pub target: usize,
    /// The two relative captions, as in the file.
    pub captions: [String; 2],
}

/// The validation set of one category.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FashionIqDataset {
    /// Which category.
    pub category: FashionIqCategory,
    /// The gallery, in split-file order.
    pub images: Vec<GalleryImage>,
    /// The queries, in file order.
    pub queries: Vec<FashionIqQuery>,
}

impl FashionIqDataset {
    /// Gallery index of each query's target.
    pub fn targets(&self) -> Vec<usize> {
        self.queries.iter().map(|q| q.target).collect()
    }
}

#[derive(Deserialize)]
struct RawQuery {
    candidate: String,
    target: String,
    #[serde(deserialize_with = "two_captions")]
    captions: [String; 2],
}

/// Reads a list of exactly two captions (a clearer error than serde's fixed-size array gives).
fn two_captions<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<[String; 2], D::Error> {
    let captions = Vec::<String>::deserialize(deserializer)?;
    let n = captions.len();
    <[String; 2]>::try_from(captions)
        .map_err(|_| D::Error::invalid_length(n, &"exactly 2 captions"))
}

/// Relative path of a FashionIQ image.
fn image_path(name: &str) -> PathBuf {
    PathBuf::from(format!("{name}.png"))
}

/// Loads the validation set of `category` from the FashionIQ root.
///
/// Fails with [`EvalError::MalformedJson`] on invalid JSON, a missing field, or a caption list
/// that is not exactly two strings, and with [`EvalError::MalformedEntry`] when a target is not
/// in the split file.
pub fn load_fashioniq(root: &Path, category: FashionIqCategory) -> Result<FashionIqDataset> {
    let split_path = root
        .join("image_splits")
        .join(format!("split.{}.val.json", category.name()));
    let captions_path = root
        .join("captions")
        .join(format!("cap.{}.val.json", category.name()));
    let names: Vec<String> = read_json(&split_path)?;
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let raw: Vec<RawQuery> = read_json(&captions_path)?;
    let queries =
        raw.into_iter()
            .enumerate()
            .map(|(i, q)| {
                let target = index.get(q.target.as_str()).copied().ok_or_else(|| {
                    EvalError::MalformedEntry {
                        path: captions_path.clone(),
                        entry: format!("[{i}] (target {})", q.target),
                        message: format!("target is not in {}", split_path.display()),
                    }
                })?;
                Ok(FashionIqQuery {
                    candidate_path: image_path(&q.candidate),
                    candidate: q.candidate,
                    target,
                    captions: q.captions,
                })
            })
            .collect::<Result<Vec<_>>>()?;
    let images = names
        .iter()
        .map(|n| GalleryImage {
            name: n.clone(),
            path: image_path(n),
        })
        .collect();
    Ok(FashionIqDataset {
        category,
        images,
        queries,
    })
}
