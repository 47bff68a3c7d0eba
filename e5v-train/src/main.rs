//! `e5v-train`: E5-V's contrastive LoRA training from the command line, and merging a trained
//! adapter into a full checkpoint. See the crate README.

use std::path::PathBuf;

use burn::{backend::Autodiff, tensor::DType};
use clap::{Args, Parser, Subcommand, ValueEnum};
use e5v_model::{LoraConfig, LoraTarget};
use e5v_train::{TrainConfig, Trainer, latest_checkpoint, read_nli_csv};
use indicatif::{ProgressBar, ProgressStyle};

/// Trains a LoRA adapter on a LLaVA-NeXT model's decoder with E5-V's contrastive objective on
/// NLI triplets (defaults: the paper's hyper-parameters).
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: Option<TrainArgs>,
}

#[derive(Subcommand)]
enum Command {
    /// Writes a full checkpoint with an adapter merged into its decoder (same files and
    /// layout as the base; loads in e5v-core and transformers).
    Merge {
        /// The base checkpoint folder.
        #[arg(long)]
        model: PathBuf,
        /// The adapter folder (PEFT's format, e.g. OUT/adapter).
        #[arg(long)]
        adapter: PathBuf,
        /// The new checkpoint folder (must not exist or be empty).
        #[arg(long)]
        output: PathBuf,
    },
}

#[derive(Args)]
struct TrainArgs {
    /// The base checkpoint folder (a LLaVA-NeXT model; only its decoder is loaded).
    #[arg(long)]
    model: PathBuf,
    /// The training data: a CSV with the columns sent0, sent1, hard_neg.
    #[arg(long)]
    data: PathBuf,
    /// Where checkpoints, log.jsonl and the final adapter go.
    #[arg(long)]
    output: PathBuf,
    /// LoRA rank.
    #[arg(long, default_value_t = 64)]
    rank: usize,
    /// LoRA alpha (the update is scaled by alpha / rank).
    #[arg(long, default_value_t = 16.0)]
    alpha: f64,
    /// LoRA dropout.
    #[arg(long, default_value_t = 0.05)]
    dropout: f64,
    /// The adapted projections.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    )]
    targets: Vec<String>,
    /// Rows per optimizer step (the contrastive batch).
    #[arg(long, default_value_t = 768)]
    batch_size: usize,
    /// Rows per forward pass (memory only: the gradient is the whole batch's).
    #[arg(long, default_value_t = 24)]
    micro_batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 4e-4)]
    lr: f64,
    /// Warmup steps.
    #[arg(long, default_value_t = 100)]
    warmup_steps: usize,
    /// Epochs.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Stop after this many steps (the schedule decays over them).
    #[arg(long)]
    max_steps: Option<usize>,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// Softmax temperature.
    #[arg(long, default_value_t = 0.05)]
    temperature: f64,
    /// Tokens each sentence is cut to.
    #[arg(long, default_value_t = 32)]
    max_tokens: usize,
    /// Seed of the adapter's initialisation, the data order and the dropout.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// A resumable checkpoint every N steps (0: only at the end).
    #[arg(long, default_value_t = 50)]
    save_steps: usize,
    /// Continue from the latest checkpoint in --output.
    #[arg(long)]
    resume: bool,
    /// The backend.
    #[arg(long, value_enum, default_value_t = Backend::default())]
    backend: Backend,
    /// The base weights' dtype (the adapter is always f32).
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    dtype: Dtype,
}

#[derive(Clone, Copy, ValueEnum, Default)]
enum Backend {
    #[cfg(feature = "flex")]
    #[default]
    Flex,
    #[cfg(feature = "ndarray")]
    #[cfg_attr(not(feature = "flex"), default)]
    Ndarray,
    #[cfg(feature = "wgpu")]
    #[cfg_attr(not(any(feature = "flex", feature = "ndarray")), default)]
    Wgpu,
    #[cfg(feature = "cuda")]
    #[cfg_attr(
        not(any(feature = "flex", feature = "ndarray", feature = "wgpu")),
        default
    )]
    Cuda,
}

#[derive(Clone, Copy, ValueEnum)]
enum Dtype {
    F32,
    F16,
    Bf16,
}

fn main() {
    if let Err(err) = run(Cli::parse()) {
        eprintln!("error: {err}");
        let mut source = std::error::Error::source(err.as_ref());
        while let Some(cause) = source {
            eprintln!("  caused by: {cause}");
            source = cause.source();
        }
        std::process::exit(1);
    }
}

type AnyError = Box<dyn std::error::Error>;

fn run(cli: Cli) -> Result<(), AnyError> {
    match (cli.command, cli.train) {
        (
            Some(Command::Merge {
                model,
                adapter,
                output,
            }),
            _,
        ) => merge(model, adapter, output),
        (None, Some(args)) => train(args),
        (None, None) => {
            Err("give --model, --data and --output, or a subcommand (see --help)".into())
        }
    }
}

fn merge(model: PathBuf, adapter: PathBuf, output: PathBuf) -> Result<(), AnyError> {
    type B = burn::backend::NdArray;
    let device = Default::default();
    let config = e5v_model::LlavaNextConfig::from_file(model.join("config.json"))?;
    let lora = e5v_model::Lora::<B>::load_peft(&adapter, &config.text, &device)?;
    let report = e5v_model::lora::merge_checkpoint(&model, &lora, &output)?;
    eprintln!(
        "merged {} projection weights into {} ({} weights files, {} other files copied)",
        report.merged_tensors,
        output.display(),
        report.weights_files.len(),
        report.copied_files.len()
    );
    Ok(())
}

fn train(args: TrainArgs) -> Result<(), AnyError> {
    let targets = args
        .targets
        .iter()
        .map(|name| name.trim().parse::<LoraTarget>())
        .collect::<Result<Vec<_>, _>>()?;
    let config = TrainConfig {
        lora: LoraConfig {
            rank: args.rank,
            alpha: args.alpha,
            dropout: args.dropout,
            targets,
            rslora: false,
        },
        batch_size: args.batch_size,
        micro_batch_size: args.micro_batch_size,
        learning_rate: args.lr,
        warmup_steps: args.warmup_steps,
        epochs: args.epochs,
        max_steps: args.max_steps,
        weight_decay: args.weight_decay,
        temperature: args.temperature,
        max_tokens: args.max_tokens,
        seed: args.seed,
        save_steps: args.save_steps,
        ..TrainConfig::default()
    };
    let dtype = match args.dtype {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::Bf16 => DType::BF16,
    };
    match args.backend {
        #[cfg(feature = "flex")]
        Backend::Flex => train_on::<Autodiff<burn::backend::Flex>>(&args, config, dtype),
        #[cfg(feature = "ndarray")]
        Backend::Ndarray => train_on::<Autodiff<burn::backend::NdArray>>(&args, config, dtype),
        #[cfg(feature = "wgpu")]
        Backend::Wgpu => train_on::<Autodiff<burn::backend::Wgpu>>(&args, config, dtype),
        #[cfg(feature = "cuda")]
        Backend::Cuda => train_on::<Autodiff<burn::backend::Cuda>>(&args, config, dtype),
    }
}

fn train_on<B: burn::tensor::backend::AutodiffBackend>(
    args: &TrainArgs,
    config: TrainConfig,
    dtype: DType,
) -> Result<(), AnyError> {
    let device = B::Device::default();
    let data = read_nli_csv(&args.data)?;
    eprintln!("{} training rows from {}", data.len(), args.data.display());
    let mut trainer = Trainer::<B>::new(&args.model, &data, &args.output, config, &device, dtype)?;
    if args.resume {
        let checkpoint = latest_checkpoint(&args.output)
            .ok_or_else(|| format!("--resume: no checkpoint in {}", args.output.display()))?;
        trainer.resume_from(&checkpoint)?;
        eprintln!(
            "resumed from {} (step {})",
            checkpoint.display(),
            trainer.steps_done()
        );
    }
    let bar =
        ProgressBar::new(trainer.total_steps() as u64).with_position(trainer.steps_done() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps [{elapsed} < {eta}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    trainer.run(|report| {
        bar.set_message(format!(
            "loss {:.4}  lr {:.2e}  {:.1} pairs/s",
            report.loss, report.lr, report.pairs_per_s
        ));
        bar.set_position(report.step as u64);
    })?;
    bar.finish();
    eprintln!(
        "adapter: {}  log: {}",
        args.output.join(e5v_train::ADAPTER_DIR).display(),
        args.output.join(e5v_train::LOG_FILE).display()
    );
    Ok(())
}
