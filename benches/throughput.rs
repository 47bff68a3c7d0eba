//! Not a criterion benchmark: the e5v side of `scripts/bench/vs_transformers.sh`. Loads a
//! checkpoint once, then times each case (one `embed` call of `n` texts or `n` images) after a
//! warm-up run, and prints one JSON line per case.
//!
//! ```sh
//! cargo bench --bench throughput -- --model target/bench-models/narrow --backend flex \
//!     --dtype f32 --cases texts:1,texts:16,images:1 --repeats 3
//! ```
//!
//! Fields: `backend`, `dtype`, `kind`, `batch`, `median_s`, `min_s`, `times_s`, `load_s`,
//! `threads`, and the peak resident set so far (`peak_rss_kib`, from `/proc/self/status`).
//! The texts (`benches/common/mod.rs`) and the image are those of
//! `scripts/bench/vs_transformers.py`.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use burn::tensor::backend::Backend;
use clap::Parser;
use common::TEXTS;
use e5v_core::{BackendName, Embedder, EmbedderOptions, Flex, Input, NdArray, Precision};

mod common;

#[derive(Parser)]
struct Args {
    /// Checkpoint folder.
    #[arg(long)]
    model: PathBuf,
    /// `flex`, `ndarray`, or (built with the package feature) `wgpu` / `cuda`.
    #[arg(long, default_value_t = BackendName::Flex)]
    backend: BackendName,
    /// `f32`, `f16` or `bf16`.
    #[arg(long, default_value_t = Precision::F32)]
    dtype: Precision,
    /// Comma list of `texts:N` / `images:N`: one `embed` call of N inputs each.
    #[arg(long, default_value = "texts:1,texts:8,images:1")]
    cases: String,
    /// Timed runs per case (after one warm-up run).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// The image of the `images` cases.
    #[arg(long, default_value = "fixtures/images/photo_chelsea_451x300.png")]
    image: PathBuf,
    /// `cargo bench` passes `--bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let precision = args.dtype;
    let result = match args.backend {
        BackendName::Flex => run::<Flex>(&args, precision),
        BackendName::NdArray => run::<NdArray>(&args, precision),
        #[cfg(feature = "wgpu")]
        BackendName::Wgpu => run::<e5v_core::Wgpu>(&args, precision),
        #[cfg(feature = "cuda")]
        BackendName::Cuda => run::<e5v_core::Cuda>(&args, precision),
        other => return fail(&other.not_compiled().to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("throughput: {message}");
    ExitCode::FAILURE
}

fn run<B: Backend>(args: &Args, precision: Precision) -> Result<(), String> {
    let cases = parse_cases(&args.cases)?;
    let image = std::fs::read(&args.image).map_err(|e| format!("{}: {e}", args.image.display()))?;
    let largest = cases.iter().map(|c| c.1).max().unwrap_or(1);
    let options = EmbedderOptions::new()
        .with_batch_size(largest)
        .with_precision(precision);
    let start = Instant::now();
    let embedder = Embedder::<B>::new(&args.model, options, &Default::default())
        .map_err(|e| format!("loading {}: {e}", args.model.display()))?;
    let load_s = start.elapsed().as_secs_f64();
    for (kind, n) in cases {
        let inputs: Vec<Input> = match kind.as_str() {
            "texts" => TEXTS
                .iter()
                .cycle()
                .take(n)
                .map(|t| Input::text(*t))
                .collect(),
            _ => (0..n).map(|_| Input::image(image.clone())).collect(),
        };
        let mut times = Vec::with_capacity(args.repeats);
        for run in 0..=args.repeats {
            let start = Instant::now();
            let out = embedder.embed(&inputs).map_err(|e| e.to_string())?;
            std::hint::black_box(out);
            if run > 0 {
                times.push(start.elapsed().as_secs_f64());
            }
        }
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let row = serde_json::json!({
            "side": "e5v",
            "backend": args.backend.name(),
            "dtype": args.dtype.name(),
            "kind": kind,
            "batch": n,
            "median_s": sorted.get(sorted.len() / 2),
            "min_s": sorted.first(),
            "times_s": times,
            "load_s": load_s,
            "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "peak_rss_kib": peak_rss_kib(),
        });
        println!("{row}");
    }
    Ok(())
}

fn parse_cases(cases: &str) -> Result<Vec<(String, usize)>, String> {
    cases
        .split(',')
        .map(|case| {
            let (kind, n) = case
                .split_once(':')
                .ok_or_else(|| format!("case {case:?} is not KIND:N"))?;
            let n: usize = n
                .parse()
                .map_err(|_| format!("case {case:?}: {n:?} is not a number"))?;
            match (kind, n) {
                ("texts" | "images", 1..) => Ok((kind.to_owned(), n)),
                _ => Err(format!("case {case:?}: KIND is texts or images, N >= 1")),
            }
        })
        .collect()
}

/// The peak resident set of this process in KiB (`VmHWM`, Linux only).
fn peak_rss_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
