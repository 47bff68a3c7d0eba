//! The command line of the `e5v-eval` binary (clap), turned into the library's run types.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use e5v_core::{BackendName, ImagePipeline, Precision};
use e5v_eval::datasets::{CirrSplit, bundled_mini_dir};
use e5v_eval::metrics::ScoreOptions;
use e5v_eval::runner::{EvalTask, ModelOptions, RunConfig};

/// Runs one benchmark of the E5-V paper and prints our numbers next to the published ones.
#[derive(Parser, Debug)]
#[command(
    name = "e5v-eval",
    version,
    after_help = "Data layouts and examples: e5v-eval/README.md. Numbers are meaningless unless \
                  --model is the real royokong/e5-v checkpoint."
)]
pub struct Cli {
    /// The benchmark.
    #[command(subcommand)]
    pub command: Command,
}

/// One subcommand per benchmark.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Flickr30K test: text<->image Recall@1/5/10. DATA holds dataset_flickr30k.json and
    /// flickr30k-images/.
    Flickr30k(DataArgs),
    /// COCO 5k test: text<->image Recall@1/5/10. DATA holds dataset_coco.json and val2014/.
    Coco(DataArgs),
    /// Flickr30K with captions drawn as 800x400 images (image-image retrieval).
    #[command(name = "flickr30k-i2i")]
    Flickr30kI2i(DataArgs),
    /// COCO with captions drawn as 800x400 images (image-image retrieval).
    #[command(name = "coco-i2i")]
    CocoI2i(DataArgs),
    /// CIRR: val Recall@1/5/10/50 and subset Recall@1/2/3, or (--split test1) the test-server
    /// submission files. DATA holds captions/, image_splits/ and the images (img_raw/ or dev/,
    /// test1/).
    Cirr(CirrArgs),
    /// FashionIQ val: Recall@10/50 for dress, shirt, toptee and their mean. DATA holds
    /// captions/, image_splits/ and images/.
    Fashioniq(DataArgs),
    /// STS12-16, STS-B and SICK-R (Spearman x100) and their mean. DATA is SentEval's
    /// data/downstream folder.
    Sts(DataArgs),
    /// The bundled mini set (23 CC0 images, text<->image recall), plus WordSim353 and
    /// SimLex-999 when their files are in DATA.
    Mini(MiniArgs),
}

/// A dataset folder and the common options.
#[derive(Args, Debug)]
pub struct DataArgs {
    /// The dataset folder.
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub common: Common,
}

/// CIRR's options.
#[derive(Args, Debug)]
pub struct CirrArgs {
    /// The CIRR folder.
    #[arg(long)]
    pub data: PathBuf,
    /// val: metrics; test1: submission files (no labels).
    #[arg(long, value_enum, default_value_t = SplitArg::Val)]
    pub split: SplitArg,
    /// Where the test1 submission files go.
    #[arg(long, default_value = ".")]
    pub submission_dir: PathBuf,
    #[command(flatten)]
    pub common: Common,
}

/// The mini set's options.
#[derive(Args, Debug)]
pub struct MiniArgs {
    /// The mini set folder (default: the bundled e5v-eval/assets/mini).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

/// Options every subcommand takes.
#[derive(Args, Debug)]
pub struct Common {
    /// HF model folder (config.json, safetensors, tokenizer.json, processor config), or a
    /// Hugging Face Hub repo id (`royokong/e5-v`, `org/name@revision`) fetched into the shared
    /// cache (a folder that exists wins).
    #[arg(long)]
    pub model: String,
    /// Use the Hugging Face cache only, never the network (as `HF_HUB_OFFLINE=1`).
    #[arg(long)]
    pub offline: bool,
    /// Compute backend: flex, ndarray, wgpu or cuda (those compiled in; default: the first).
    #[arg(long, default_value_t = default_backend())]
    pub backend: BackendName,
    /// Weights and activations dtype: f32, f16 or bf16 (the paper ran f16; ndarray has f32 only).
    #[arg(long, default_value_t = Precision::F32)]
    pub dtype: Precision,
    /// Inputs per forward pass (and per cache write).
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Padded tokens per forward pass (default: the backend's budget).
    #[arg(long)]
    pub max_batch_tokens: Option<usize>,
    /// Image behaviour: transformers-4.41 (the paper's numbers) or transformers (current).
    #[arg(long, default_value_t = ImagePipeline::Transformers441)]
    pub image_pipeline: ImagePipeline,
    /// Embedding cache folder.
    #[arg(long, default_value = ".e5v-eval-cache")]
    pub cache: PathBuf,
    /// Compute every vector, read and write no cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Write the JSON report here.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Only the first N items of each set (smoke runs; not comparable with the paper).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Scoring threads (default: all cores).
    #[arg(long)]
    pub threads: Option<NonZeroUsize>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

/// The first backend this binary has (one is always compiled in: see main.rs).
fn default_backend() -> BackendName {
    BackendName::default_compiled().unwrap_or(BackendName::Flex)
}

/// `--split` of `cirr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// Validation: metrics.
    Val,
    /// Test1: submission files.
    Test1,
}

/// A parsed command line, ready to run.
#[derive(Debug)]
pub struct Plan {
    /// The benchmark.
    pub task: EvalTask,
    /// Data and run options.
    pub config: RunConfig,
    /// Model options.
    pub model: ModelOptions,
    /// The common options as given.
    pub common: Common,
}

impl Cli {
    /// The run this command line asks for.
    pub fn plan(self) -> Plan {
        let (task, data, submission_dir, common) = match self.command {
            Command::Flickr30k(a) => (EvalTask::Flickr30k, a.data, None, a.common),
            Command::Coco(a) => (EvalTask::Coco, a.data, None, a.common),
            Command::Flickr30kI2i(a) => (EvalTask::Flickr30kImageImage, a.data, None, a.common),
            Command::CocoI2i(a) => (EvalTask::CocoImageImage, a.data, None, a.common),
            Command::Cirr(a) => {
                let split = match a.split {
                    SplitArg::Val => CirrSplit::Val,
                    SplitArg::Test1 => CirrSplit::Test1,
                };
                (
                    EvalTask::Cirr(split),
                    a.data,
                    Some(a.submission_dir),
                    a.common,
                )
            }
            Command::Fashioniq(a) => (EvalTask::FashionIq, a.data, None, a.common),
            Command::Sts(a) => (EvalTask::Sts, a.data, None, a.common),
            Command::Mini(a) => (
                EvalTask::Mini,
                a.data.unwrap_or_else(bundled_mini_dir),
                None,
                a.common,
            ),
        };
        let threads = common
            .threads
            .or_else(|| std::thread::available_parallelism().ok())
            .unwrap_or(NonZeroUsize::MIN);
        let mut config = RunConfig::new(data)
            .with_limit(common.limit)
            .with_progress(!common.quiet)
            .with_score_options(ScoreOptions::new().with_threads(threads));
        if !common.no_cache {
            config = config.with_cache_dir(&common.cache);
        }
        if let Some(dir) = submission_dir {
            config = config.with_submission_dir(dir);
        }
        let mut model = ModelOptions::new()
            .with_batch_size(common.batch_size)
            .with_precision(common.dtype)
            .with_image_pipeline(common.image_pipeline);
        if let Some(tokens) = common.max_batch_tokens {
            model = model.with_max_batch_tokens(tokens);
        }
        Plan {
            task,
            config,
            model,
            common,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Plan {
        Cli::try_parse_from(args).expect("parses").plan()
    }

    #[test]
    fn subcommands_and_options() {
        let p = plan(&[
            "e5v-eval",
            "flickr30k",
            "--model",
            "m",
            "--data",
            "d",
            "--limit",
            "3",
            "--no-cache",
        ]);
        assert_eq!(p.task, EvalTask::Flickr30k);
        assert_eq!(p.config.limit, Some(3));
        assert_eq!(p.config.cache_dir, None);
        assert_eq!(p.model.image_pipeline, ImagePipeline::Transformers441);
        let p = plan(&[
            "e5v-eval",
            "cirr",
            "--model",
            "m",
            "--data",
            "d",
            "--split",
            "test1",
            "--image-pipeline",
            "transformers",
            "--dtype",
            "bf16",
            "--batch-size",
            "2",
        ]);
        assert_eq!(p.task, EvalTask::Cirr(CirrSplit::Test1));
        assert_eq!(p.model.image_pipeline, ImagePipeline::Transformers);
        assert_eq!(p.model.precision, Precision::Bf16);
        assert_eq!(p.model.batch_size, 2);
        assert_eq!(p.config.cache_dir, Some(PathBuf::from(".e5v-eval-cache")));
        let p = plan(&["e5v-eval", "mini", "--model", "m"]);
        assert_eq!(p.task, EvalTask::Mini);
        assert!(p.config.data_dir.ends_with("assets/mini"));
        for name in ["coco", "flickr30k-i2i", "coco-i2i", "fashioniq", "sts"] {
            let p = plan(&["e5v-eval", name, "--model", "m", "--data", "d"]);
            assert_eq!(p.task.name(), name);
        }
        assert!(Cli::try_parse_from(["e5v-eval", "coco", "--data", "d"]).is_err());
        assert!(Cli::try_parse_from(["e5v-eval", "nope", "--model", "m"]).is_err());
    }
}
