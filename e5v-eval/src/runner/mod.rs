//! The evaluation runner: loads a benchmark, embeds it with an [`EvalModel`] (streaming, in
//! batches, through an on-disk [cache](#the-cache)), scores it and returns a [`Report`].
//!
//! The `e5v-eval` binary is a thin command line over [`run_task`]; tests call it directly.
//!
//! ```no_run
//! use e5v_eval::runner::{EvalModel, EvalTask, ModelOptions, RunConfig, run_task};
//!
//! # fn main() -> Result<(), e5v_eval::EvalError> {
//! let model = EvalModel::<e5v_core::NdArray>::load("e5-v", ModelOptions::new(), &Default::default())?;
//! let config = RunConfig::new("data/flickr30k").with_cache_dir(".e5v-eval-cache");
//! let output = run_task(&model, EvalTask::Flickr30k, &config)?;
//! print!("{}", output.report.render_table());
//! # Ok(())
//! # }
//! ```
//!
//! # Prompts
//! Exactly the paper's (docs/METHOD.md, section "Prompts"), from [`e5v_core::Preset`]: text and image
//! prompts for retrieval (rendered captions use the image prompt), the CIRR and FashionIQ
//! gallery and query prompts, the STS prompt with [`e5v_prompt::normalize_sts_sentence`], and
//! FashionIQ's two caption orders ([`e5v_prompt::fashion_iq_texts`]) summed raw, then
//! normalised. Every vector is L2-normalised before scoring.
//!
//! # Memory
//! Items are described by paths and texts; images are read (and captions drawn) one batch at a
//! time, and only the vectors are kept: 16 KB per item for the real model (COCO: 30k vectors,
//! 480 MB). Scoring is blocked ([`crate::metrics::ScoreOptions`]).
//!
//! # The cache
//! See [`CacheStats`] and the cache module: one append-only `vectors.bin` per (model files,
//! backend, precision, image behaviour) namespace under the cache directory, keyed per item
//! by the full prompt, the image bytes' SHA-256 (or the rendered caption) and the text.

mod cache;
mod composed;
mod embed;
mod fingerprint;
mod image_text;
mod limit;
mod model;
mod progress;
mod sts;

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;

pub use cache::CacheStats;
pub use model::{EvalModel, ModelOptions};

use crate::datasets::CirrSplit;
use crate::error::Result;
use crate::metrics::ScoreOptions;
use crate::report::Report;
use cache::EmbeddingCache;
use embed::Session;

/// Printed with every run: this crate cannot tell real weights from random ones.
pub const WEIGHTS_NOTE: &str = "numbers are meaningless unless the checkpoint is the real \
     royokong/e5-v (random weights, like the test fixtures', give arbitrary scores)";

/// One subcommand of the runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EvalTask {
    /// Flickr30K test, text-image retrieval.
    Flickr30k,
    /// COCO 5k test, text-image retrieval.
    Coco,
    /// Flickr30K with captions drawn as images.
    Flickr30kImageImage,
    /// COCO with captions drawn as images.
    CocoImageImage,
    /// CIRR: val metrics, or test1 submission files.
    Cirr(CirrSplit),
    /// FashionIQ val (dress, shirt, toptee).
    FashionIq,
    /// STS12-16, STS-B, SICK-R and their average.
    Sts,
    /// The bundled mini set, plus WordSim353 / SimLex-999 when their files are present.
    Mini,
}

impl EvalTask {
    /// The subcommand name.
    pub fn name(self) -> &'static str {
        match self {
            EvalTask::Flickr30k => "flickr30k",
            EvalTask::Coco => "coco",
            EvalTask::Flickr30kImageImage => "flickr30k-i2i",
            EvalTask::CocoImageImage => "coco-i2i",
            EvalTask::Cirr(_) => "cirr",
            EvalTask::FashionIq => "fashioniq",
            EvalTask::Sts => "sts",
            EvalTask::Mini => "mini",
        }
    }
}

/// Where the data is and how to run.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RunConfig {
    /// The dataset folder (layouts in the crate docs).
    pub data_dir: PathBuf,
    /// The embedding cache folder; `None` computes everything.
    pub cache_dir: Option<PathBuf>,
    /// Only the first N items of each set (smoke runs; not comparable with the paper).
    pub limit: Option<usize>,
    /// Print a progress line on stderr.
    pub progress: bool,
    /// Blocked scoring options (threads, block size).
    pub score: ScoreOptions,
    /// Where CIRR test1 submission files go.
    pub submission_dir: PathBuf,
}

impl RunConfig {
    /// Data in `data_dir`; no cache, no limit, no progress line, submissions to `.`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            cache_dir: None,
            limit: None,
            progress: false,
            score: ScoreOptions::new(),
            submission_dir: PathBuf::from("."),
        }
    }

    /// Sets [`Self::cache_dir`].
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Sets [`Self::limit`].
    pub fn with_limit(mut self, limit: Option<usize>) -> Self {
        self.limit = limit;
        self
    }

    /// Sets [`Self::progress`].
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// Sets [`Self::score`].
    pub fn with_score_options(mut self, score: ScoreOptions) -> Self {
        self.score = score;
        self
    }

    /// Sets [`Self::submission_dir`].
    pub fn with_submission_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.submission_dir = dir.into();
        self
    }
}

/// What a run produced.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RunOutput {
    /// The results, with the published numbers beside ours.
    pub report: Report,
    /// Vectors taken from the cache and computed.
    pub cache: CacheStats,
    /// Files written besides the report (CIRR test1 submissions).
    pub files: Vec<PathBuf>,
}

/// Runs one benchmark with `model` on the data of `config`.
///
/// The report's notes always include [`WEIGHTS_NOTE`], and the `--limit` note when a limit is
/// set. Fails on missing or malformed data (naming the file), on embedding errors, and on an
/// unusable cache.
pub fn run_task<B: Backend>(
    model: &EvalModel<B>,
    task: EvalTask,
    config: &RunConfig,
) -> Result<RunOutput> {
    let cache = match &config.cache_dir {
        Some(dir) => Some(EmbeddingCache::open(
            dir,
            &model.namespace(),
            model.dim(),
            &model.cache_meta(),
        )?),
        None => None,
    };
    let mut session = Session::new(model, cache, config.progress);
    let mut report = Report::new(model.label());
    report.push_note(WEIGHTS_NOTE);
    if let Some(n) = config.limit {
        report.push_note(format!(
            "--limit {n}: only the first {n} items of each set; not comparable with the paper"
        ));
    }
    let mut files = Vec::new();
    match task {
        EvalTask::Flickr30k
        | EvalTask::Coco
        | EvalTask::Flickr30kImageImage
        | EvalTask::CocoImageImage => {
            report.push(image_text::karpathy(&mut session, config, task)?);
        }
        EvalTask::Cirr(split) => {
            let (task_report, written) = composed::cirr(&mut session, config, split)?;
            report.push(task_report);
            files = written;
        }
        EvalTask::FashionIq => report.push(composed::fashioniq(&mut session, config)?),
        EvalTask::Sts => {
            let (reports, notes) = sts::sts(&mut session, config)?;
            for r in reports {
                report.push(r);
            }
            for n in notes {
                report.push_note(n);
            }
            if let Some(average) = report.sts_average() {
                report.push(average);
            }
        }
        EvalTask::Mini => mini(&mut session, config, &mut report)?,
    }
    Ok(RunOutput {
        report,
        cache: session.stats,
        files,
    })
}

/// The mini set and the word-similarity sets beside it.
fn mini<B: Backend>(
    session: &mut Session<'_, B>,
    config: &RunConfig,
    report: &mut Report,
) -> Result<()> {
    let dir: &Path = &config.data_dir;
    report.push(image_text::mini(session, config, dir)?);
    let (reports, missing) = sts::word_similarity(session, config, dir)?;
    for r in reports {
        report.push(r);
    }
    if !missing.is_empty() {
        report.push_note(format!(
            "{} not in {} (not bundled: licence unclear); fetch them with \
             e5v-eval/scripts/fetch-word-similarity.sh",
            missing.join(" and "),
            dir.display()
        ));
    }
    Ok(())
}
