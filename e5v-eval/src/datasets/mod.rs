//! Loaders for the public benchmark files, returning typed structs.
//!
//! Image paths are relative to an image folder the caller joins on:
//!
//! | dataset | loader | image folder |
//! |---|---|---|
//! | Flickr30K / COCO (Karpathy JSON) | [`load_karpathy`] | `flickr30k-images/` / the COCO folder holding `val2014/` |
//! | CIRR rc2 | [`load_cirr`] | `img_raw/` (NLVR2 images) |
//! | FashionIQ val | [`load_fashioniq`] | `images/` (`<name>.png`) |
//! | STS12-16, STS-B, SICK-R | [`load_sts_year`], [`load_sts_benchmark`], [`load_sick_relatedness`] | - |
//! | the bundled mini set | [`load_mini`] | `images/` |
//! | WordSim353, SimLex-999 (gensim's files) | [`load_word_similarity`] | - |
//!
//! Malformed files give [`EvalError`](crate::EvalError) variants naming the file and the line
//! (text files, and JSON through serde_json's position) or the entry (cross-file references).

mod cirr;
mod fashioniq;
mod karpathy;
mod mini;
mod read;
mod sts;
mod submission;
mod word_sim;

pub use cirr::{CirrDataset, CirrQuery, CirrSplit, GalleryImage, load_cirr};
pub use fashioniq::{FashionIqCategory, FashionIqDataset, FashionIqQuery, load_fashioniq};
pub use karpathy::{
    ImageTextDataset, KARPATHY_CAPTIONS_PER_IMAGE, KarpathySplit, RetrievalImage, load_karpathy,
};
pub use mini::{MINI_CAPTIONS_FILE, MINI_IMAGES_DIR, bundled_mini_dir, load_mini};
pub use sts::{
    StsPair, StsSubset, StsYear, StsYearData, load_sick_relatedness, load_sts_benchmark,
    load_sts_year, sick_relatedness_path, sts_benchmark_path,
};
pub use submission::{SubmissionMetric, cirr_submission_json, write_cirr_submission};
pub use word_sim::{WordPair, WordSimSet, load_word_similarity};
