//! Embeds a JSONL file of inputs with E5-V: the stable command-line contract.
//!
//! ```text
//! cargo run --release --example embed -- --model DIR|ORG/NAME --input IN.jsonl --output OUT.jsonl \
//!     [--backend flex|ndarray|wgpu|cuda] [--dtype f32|f16|bf16] [--batch-size N] \
//!     [--max-batch-tokens N] [--max-batch-crops N] \
//!     [--image-pipeline transformers|transformers-4.41] [--no-normalize] [--offline]
//! ```
//! Input lines: `{"text": ...}`, `{"image": PATH}`, `{"image": PATH, "text": ...}` (composed,
//! CIRR query prompt), each optionally with `"prompt": RAW` (a complete raw prompt with
//! `<image>` and/or `<sent>`, used verbatim without chat template). Relative image paths
//! resolve against the input file's folder; blank lines are skipped. Output lines, in input
//! order: `{"embedding": [...], "seq_len": N, "image_tokens": M or null}`. A bad line fails
//! the run with its line number, and no output file is written.

use std::{
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    time::Instant,
};

use burn::tensor::backend::Backend;
use clap::Parser;
use e5v::{BackendName, Embedder, EmbedderOptions, ImagePipeline, Input, Precision, hub::Hub};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

mod jsonl;

use jsonl::parse_line;

#[derive(Parser, Debug)]
#[command(about = "Embed texts, images and composed queries with E5-V")]
struct Args {
    /// HF model folder (config.json, safetensors, tokenizer.json, processor config), or a
    /// Hugging Face Hub repo id (`royokong/e5-v`, `org/name@revision`) fetched into the shared
    /// cache (a folder that exists wins; `HF_HUB_OFFLINE=1` uses the cache only).
    #[arg(long)]
    model: String,
    /// Use the Hugging Face cache only, never the network (as `HF_HUB_OFFLINE=1`).
    #[arg(long)]
    offline: bool,
    /// JSONL file of inputs.
    #[arg(long)]
    input: PathBuf,
    /// JSONL file of embeddings, written only if every input succeeds.
    #[arg(long)]
    output: PathBuf,
    /// Compute backend: flex, ndarray, wgpu or cuda (those compiled in).
    #[arg(long, default_value_t = BackendName::Flex)]
    backend: BackendName,
    /// Weights and activations dtype: f32, f16 or bf16.
    #[arg(long, default_value_t = Precision::F32)]
    dtype: Precision,
    /// Inputs per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Padded tokens per forward pass (default: the backend's budget).
    #[arg(long)]
    max_batch_tokens: Option<usize>,
    /// Image crops per forward pass (default: the backend's budget).
    #[arg(long)]
    max_batch_crops: Option<usize>,
    /// Image behaviour: transformers (current) or transformers-4.41 (the paper's numbers).
    #[arg(long, default_value_t = ImagePipeline::Transformers)]
    image_pipeline: ImagePipeline,
    /// Keep the raw (unnormalised) vectors.
    #[arg(long)]
    no_normalize: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(count) => {
            eprintln!("wrote {count} embeddings to {}", args.output.display());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<usize, String> {
    let (inputs, lines) = read_inputs(&args.input)?;
    let mut options = EmbedderOptions::new()
        .with_batch_size(args.batch_size)
        .with_normalize(!args.no_normalize)
        .with_precision(args.dtype)
        .with_image_pipeline(args.image_pipeline);
    options.max_batch_tokens = args.max_batch_tokens;
    options.max_batch_crops = args.max_batch_crops;
    match args.backend {
        BackendName::Flex => embed::<e5v::Flex>(args, options, inputs, &lines),
        #[cfg(feature = "ndarray")]
        BackendName::NdArray => embed::<e5v::NdArray>(args, options, inputs, &lines),
        #[cfg(feature = "wgpu")]
        BackendName::Wgpu => embed::<e5v::Wgpu>(args, options, inputs, &lines),
        #[cfg(feature = "cuda")]
        BackendName::Cuda => embed::<e5v::Cuda>(args, options, inputs, &lines),
        other => Err(other.not_compiled().to_string()),
    }
}

/// Streams the inputs through the embedder a chunk at a time, writing each vector as it comes
/// to a temporary file that replaces the output only once every input has succeeded.
fn embed<B: Backend>(
    args: &Args,
    options: EmbedderOptions,
    inputs: Vec<Input>,
    lines: &[usize],
) -> Result<usize, String> {
    let mut hub = hub_with_progress_bar();
    if args.offline {
        hub = hub.with_offline(true);
    }
    let dir = hub
        .model_dir(&args.model)
        .map_err(|e| format!("model {}: {}", args.model, chain(&e)))?;
    let start = Instant::now();
    let embedder = Embedder::<B>::new(&dir, options, &Default::default())
        .map_err(|e| format!("loading {}: {}", dir.display(), chain(&e)))?;
    eprintln!(
        "loaded {} in {:.1} s",
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    let stream = embedder.embed_iter(inputs).with_progress(|p| {
        let total = p.total.unwrap_or(p.done);
        let eta = (total - p.done) as f64 / p.inputs_per_second().max(1e-9);
        eprint!(
            "\r{}/{total} inputs, {:.1}/s, {:.0} tokens/s, ETA {eta:.0} s   ",
            p.done,
            p.inputs_per_second(),
            p.tokens_per_second()
        );
    });
    let count = write_jsonl(&args.output, |out| {
        let mut count = 0;
        for chunk in stream {
            let embeddings = chunk.map_err(|e| match e.input_index() {
                // "input 3: cannot read x.png: ..." becomes "line 7: cannot read x.png: ...".
                Some(i) => {
                    let message = chain(&e);
                    let prefix = format!("input {i}: ");
                    format!(
                        "line {}: {}",
                        lines.get(i).copied().unwrap_or_default(),
                        message.strip_prefix(&prefix).unwrap_or(&message)
                    )
                }
                None => chain(&e),
            })?;
            for (i, row) in embeddings.rows().enumerate() {
                let info = embeddings.info(i).ok_or("missing row info")?;
                let line = json!({"embedding": row, "seq_len": info.seq_len, "image_tokens": info.image_tokens});
                serde_json::to_writer(&mut *out, &line).map_err(|e| e.to_string())?;
                out.write_all(b"\n").map_err(|e| e.to_string())?;
                count += 1;
            }
        }
        Ok(count)
    });
    eprintln!();
    count
}

/// Parses the input file: the inputs and the line number of each.
fn read_inputs(path: &Path) -> Result<(Vec<Input>, Vec<usize>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut inputs = Vec::new();
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let input =
            parse_line(line, base).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        inputs.push(input);
        lines.push(i + 1);
    }
    Ok((inputs, lines))
}

/// Runs `write` on a temporary file next to `path` and renames it into place if it succeeds;
/// on any failure the temporary file is removed and `path` is left as it was.
fn write_jsonl<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<std::fs::File>) -> Result<T, String>,
) -> Result<T, String> {
    let tmp = path.with_extension("jsonl.partial");
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let result = std::fs::File::create(&tmp).map_err(io).and_then(|file| {
        let mut out = BufWriter::new(file);
        let value = write(&mut out)?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(value)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The Hub client of the environment, drawing the model download's progress on stderr.
fn hub_with_progress_bar() -> Hub {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:24!} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    Hub::from_env().with_progress(move |p| {
        bar.set_length(p.total_bytes);
        bar.set_position(p.bytes);
        bar.set_message(p.file.to_owned());
        if p.bytes == p.total_bytes {
            bar.finish_and_clear();
        }
    })
}

/// An error and its causes, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // Some errors already print their cause ("input 3: bad image: <cause>").
        let text = cause.to_string();
        if !message.ends_with(&text) {
            message.push_str(&format!(": {text}"));
        }
        source = cause.source();
    }
    message
}
