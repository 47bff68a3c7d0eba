//! `e5v-eval`: one benchmark of the E5-V paper per subcommand (see the crate README).
//!
//! ```text
//! cargo run --release -p e5v-eval -- <task> --model DIR|ORG/NAME --data DIR [--backend ndarray|flex|wgpu|cuda]
//!     [--dtype f32|f16|bf16] [--batch-size N] [--max-batch-tokens N] [--image-pipeline transformers|transformers-4.41]
//!     [--cache DIR | --no-cache] [--output report.json] [--limit N] [--threads N] [--quiet]
//! ```
//! The results table goes to stdout, progress and errors to stderr.

#[cfg(not(any(
    feature = "ndarray",
    feature = "flex",
    feature = "wgpu",
    feature = "cuda"
)))]
compile_error!("e5v-eval needs a backend feature: ndarray, flex, wgpu or cuda");

mod cli;

use std::error::Error as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use burn::tensor::backend::Backend;
use clap::Parser;
use e5v_eval::EvalError;
use e5v_eval::runner::{EvalModel, run_task};

use cli::{Cli, Plan};
use e5v_core::BackendName;

fn main() -> ExitCode {
    let plan = Cli::parse().plan();
    let result = match plan.common.backend {
        #[cfg(feature = "ndarray")]
        BackendName::NdArray => run::<e5v_core::NdArray>(&plan),
        #[cfg(feature = "flex")]
        BackendName::Flex => run::<e5v_core::Flex>(&plan),
        #[cfg(feature = "wgpu")]
        BackendName::Wgpu => run::<e5v_core::Wgpu>(&plan),
        #[cfg(feature = "cuda")]
        BackendName::Cuda => run::<e5v_core::Cuda>(&plan),
        other => Err(EvalError::InvalidArgument(other.not_compiled().to_string())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The folder of `--model`: as given, or a Hub repo id fetched into the shared cache with a
/// progress bar on stderr.
#[cfg(feature = "hub")]
fn model_dir(model: &str, offline: bool) -> Result<PathBuf, EvalError> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:24!} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .map_err(|e| EvalError::InvalidArgument(e.to_string()))?
        .progress_chars("=> "),
    );
    let mut hub = e5v_core::hub::Hub::from_env().with_progress(move |p| {
        bar.set_length(p.total_bytes);
        bar.set_position(p.bytes);
        bar.set_message(p.file.to_owned());
        if p.bytes == p.total_bytes {
            bar.finish_and_clear();
        }
    });
    if offline {
        hub = hub.with_offline(true);
    }
    hub.model_dir(model).map_err(|e| EvalError::Embedding {
        context: format!("finding the model {model}"),
        source: e.into(),
    })
}

/// Without the `hub` feature, `--model` is a folder.
#[cfg(not(feature = "hub"))]
fn model_dir(model: &str, _offline: bool) -> Result<PathBuf, EvalError> {
    Ok(PathBuf::from(model))
}

/// The error and its sources, `: `-separated.
fn chain(e: &EvalError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text += &format!(": {s}");
        source = s.source();
    }
    text
}

fn run<B: Backend>(plan: &Plan) -> Result<(), EvalError> {
    let dir = model_dir(&plan.common.model, plan.common.offline)?;
    let start = Instant::now();
    let model = EvalModel::<B>::load(&dir, plan.model.clone(), &Default::default())?;
    eprintln!(
        "loaded {} in {:.1} s",
        model.label(),
        start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let output = run_task(&model, plan.task, &plan.config)?;
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (e.g. `| head`) is not an error of the evaluation.
    let _ = write!(stdout, "{}", output.report.render_table());
    let _ = stdout.flush();
    eprintln!(
        "{} in {:.1} s: {} vectors computed, {} from the cache",
        plan.task.name(),
        start.elapsed().as_secs_f64(),
        output.cache.embedded,
        output.cache.hits
    );
    for file in &output.files {
        eprintln!("wrote {}", file.display());
    }
    if let Some(path) = &plan.common.output {
        let json = serde_json::to_string_pretty(&output.report)
            .map_err(|e| EvalError::InvalidArgument(format!("cannot serialise the report: {e}")))?;
        std::fs::write(path, json + "\n").map_err(|source| EvalError::Io {
            path: path.clone(),
            source,
        })?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
