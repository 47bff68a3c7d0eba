#![doc = include_str!("../README.md")]
//!
//! # Modules
//!
//! The library itself never runs the model except in [`runner`]: a caller can embed the loaded
//! images and texts any way it likes, hand the L2-normalised embeddings to [`metrics`], and
//! collect the numbers in a [`report::Report`].
//!
//! - [`datasets`]: Karpathy JSON (Flickr30K, COCO), CIRR rc2 (plus the test-server submission
//!   writer), FashionIQ val, STS12-16 / STS-B / SICK-R in SentEval's layout, the mini set and
//!   the word-similarity files. Typed structs, image paths relative to an image folder, errors
//!   naming file and line.
//! - [`metrics`]: over [`e5v_core::Embeddings`] matrices; blocked scoring with bounded memory; image-text
//!   Recall@K in both directions; CIRR (reference excluded), CIRR subset and FashionIQ recall;
//!   Spearman / Pearson for STS.
//! - [`published`]: the paper's numbers known to this crate, as data.
//! - [`report`]: serde result structs per task and a plain-text table.
//! - [`render`]: captions drawn as images for the image-image variants.
//! - [`runner`]: [`runner::run_task`], what the `e5v-eval` binary runs: streaming embedding
//!   with an on-disk cache, every benchmark end to end.
//! - [`Task`] and [`Metric`]: what is evaluated and what is reported.
//!
//! ```no_run
//! use std::path::Path;
//! use e5v_eval::datasets::{KARPATHY_CAPTIONS_PER_IMAGE, KarpathySplit, load_karpathy};
//! use e5v_core::Embeddings;
//! use e5v_eval::metrics::{IMAGE_TEXT_KS, ScoreOptions, image_text_recall};
//! use e5v_eval::report::{Report, TaskReport};
//! use e5v_eval::{Metric, Task};
//!
//! # fn embed(_: usize) -> Embeddings { unimplemented!() }
//! # fn main() -> Result<(), e5v_eval::EvalError> {
//! let data = load_karpathy(
//!     Path::new("data/dataset_flickr30k.json"),
//!     KarpathySplit::Test,
//!     KARPATHY_CAPTIONS_PER_IMAGE,
//! )?;
//! // Embed data.captions and the images under flickr30k-images/ with the model (not shown).
//! let (texts, images) = (embed(data.captions.len()), embed(data.images.len()));
//! let recall = image_text_recall(&texts, &images, &data.caption_to_image, &IMAGE_TEXT_KS, &ScoreOptions::new())?;
//! let mut report = Report::new("royokong/e5-v");
//! report.push(
//!     TaskReport::new(Task::Flickr30k)
//!         .with_recalls(Metric::TextToImage, &recall.text_to_image)
//!         .with_recalls(Metric::ImageToText, &recall.image_to_text),
//! );
//! let table: String = report.render_table();
//! # let _ = table;
//! # Ok(())
//! # }
//! ```

pub mod datasets;
mod error;
pub mod metrics;
pub mod published;
pub mod render;
pub mod report;
pub mod runner;
mod task;

pub use error::{EvalError, Result};
pub use task::{Metric, Task};
