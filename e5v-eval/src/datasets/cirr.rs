//! CIRR (release rc2) annotations, from a clone of the `cirr_dataset` branch of
//! Cuberick-Orion/CIRR:
//!
//! - `captions/cap.rc2.{val,test1}.json`: a list of `{"pairid", "reference", "target_hard"
//!   (val only), "caption", "img_set": {"id", "members": [6 names]}}` (other fields ignored).
//! - `image_splits/split.rc2.{val,test1}.json`: `{"<name>": "./dev/<name>.png", ...}`, paths
//!   relative to the raw-image folder (NLVR2 images, `img_raw/` in CIRR's layout).
//!
//! The gallery is every image of the split file, sorted by name. References, targets and
//! members are resolved to gallery indices at load time.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::read::read_json;
use crate::error::{EvalError, Result};

/// A CIRR split with public queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CirrSplit {
    /// Validation: targets known, metrics computed locally.
    Val,
    /// Test1: no targets, scored by the test server from a submission file.
    Test1,
}

impl CirrSplit {
    /// The split's name in CIRR's file names.
    pub fn name(self) -> &'static str {
        match self {
            CirrSplit::Val => "val",
            CirrSplit::Test1 => "test1",
        }
    }

    /// `captions/cap.rc2.<split>.json` under the CIRR root.
    pub fn captions_path(self, root: &Path) -> PathBuf {
        root.join("captions")
            .join(format!("cap.rc2.{}.json", self.name()))
    }

    /// `image_splits/split.rc2.<split>.json` under the CIRR root.
    pub fn images_path(self, root: &Path) -> PathBuf {
        root.join("image_splits")
            .join(format!("split.rc2.{}.json", self.name()))
    }
}

/// One gallery image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GalleryImage {
    /// The image name (CIRR: `dev-0-0-img0`; FashionIQ: the ASIN).
    pub name: String,
    /// Path relative to the image folder.
    pub path: PathBuf,
}

/// One CIRR query: modify the reference image as the caption says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CirrQuery {
    /// The query's id (the key of the submission).
    pub pairid: u64,
    /// Gallery index of the reference image.
    pub reference: usize,
    /// Gallery index of the target (`target_hard`); `None` on test1.
    pub target: Option<usize>,
    /// The modification text.
    pub caption: String,
    /// `img_set.id`.
    pub set_id: u64,
    /// Gallery indices of `img_set.members` (the reference included, as in the file).
    pub members: Vec<usize>,
}

/// A CIRR split: gallery and queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CirrDataset {
    /// Which split.
    pub split: CirrSplit,
    /// The gallery, sorted by name.
    pub images: Vec<GalleryImage>,
    /// The queries, in file order.
    pub queries: Vec<CirrQuery>,
}

impl CirrDataset {
    /// Gallery index of each query's reference.
    pub fn references(&self) -> Vec<usize> {
        self.queries.iter().map(|q| q.reference).collect()
    }

    /// Gallery index of each query's target, or `None` if a query has none (test1).
    pub fn targets(&self) -> Option<Vec<usize>> {
        self.queries.iter().map(|q| q.target).collect()
    }

    /// Each query's subset members (gallery indices).
    pub fn members(&self) -> Vec<Vec<usize>> {
        self.queries.iter().map(|q| q.members.clone()).collect()
    }
}

#[derive(Deserialize)]
struct RawQuery {
    pairid: u64,
    reference: String,
    target_hard: Option<String>,
    caption: String,
    img_set: RawImgSet,
}

#[derive(Deserialize)]
struct RawImgSet {
    id: u64,
    members: Vec<String>,
}

/// Loads a CIRR split from the CIRR root (the folder with `captions/` and `image_splits/`).
///
/// Fails with [`EvalError::MalformedJson`] on invalid JSON or a missing field, and with
/// [`EvalError::MalformedEntry`] (naming the `pairid`) when a val query lacks `target_hard` or
/// names an image that is not in the split file.
pub fn load_cirr(root: &Path, split: CirrSplit) -> Result<CirrDataset> {
    let images_path = split.images_path(root);
    let captions_path = split.captions_path(root);
    let names: BTreeMap<String, String> = read_json(&images_path)?;
    let images: Vec<GalleryImage> = names
        .into_iter()
        .map(|(name, path)| GalleryImage {
            name,
            path: PathBuf::from(path),
        })
        .collect();
    let index: HashMap<&str, usize> = images
        .iter()
        .enumerate()
        .map(|(i, im)| (im.name.as_str(), i))
        .collect();
    let raw: Vec<RawQuery> = read_json(&captions_path)?;
    let mut queries = Vec::with_capacity(raw.len());
    for q in raw {
        let entry_error = |message: String| EvalError::MalformedEntry {
            path: captions_path.clone(),
            entry: format!("pairid {}", q.pairid),
            message,
        };
        let resolve = |name: &str| {
            index.get(name).copied().ok_or_else(|| {
                entry_error(format!(
                    "image {name:?} is not in {}",
                    images_path.display()
                ))
            })
        };
        let target = match (&q.target_hard, split) {
            (Some(t), _) => Some(resolve(t)?),
            (None, CirrSplit::Val) => return Err(entry_error("missing target_hard".into())),
            (None, CirrSplit::Test1) => None,
        };
        queries.push(CirrQuery {
            pairid: q.pairid,
            reference: resolve(&q.reference)?,
            target,
            members: q
                .img_set
                .members
                .iter()
                .map(|m| resolve(m))
                .collect::<Result<_>>()?,
            caption: q.caption,
            set_id: q.img_set.id,
        });
    }
    Ok(CirrDataset {
        split,
        images,
        queries,
    })
}
