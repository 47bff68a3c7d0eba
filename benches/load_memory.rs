//! Not a benchmark: the driver of `scripts/bench/load_memory.sh`. Loads a checkpoint once with
//! `LlavaNext::load` and prints what the loaded model holds next to the process's memory.
//!
//! ```sh
//! cargo bench --bench load_memory -- DIR f32|f16|bf16 [ndarray|flex]
//! ```
//!
//! Prints one `key=value` line: the parameter count and bytes (at the requested dtype), the
//! load time, the peak resident set (`VmHWM`) and the resident set after loading (`VmRSS`),
//! from `/proc/self/status` on Linux. Run under `/usr/bin/time -v` for an outside view.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use burn::{module::Module, tensor::DType, tensor::backend::Backend};
use e5v_core::{BackendName, Flex, NdArray, Precision};
use e5v_model::LlavaNext;

fn main() -> ExitCode {
    // `cargo bench` appends `--bench`; criterion-style flags are not ours either.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let usage = "usage: load_memory DIR f32|f16|bf16 [ndarray|flex]";
    let (Some(dir), Some(dtype)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let dtype = match dtype.parse::<Precision>() {
        Ok(precision) => precision.dtype(),
        Err(e) => {
            eprintln!("{e}; {usage}");
            return ExitCode::from(2);
        }
    };
    let backend = match args.get(2).map_or(Ok(BackendName::NdArray), |b| b.parse()) {
        Ok(backend) => backend,
        Err(e) => {
            eprintln!("{e}; {usage}");
            return ExitCode::from(2);
        }
    };
    let before = status("VmRSS:");
    let result = match backend {
        BackendName::NdArray => run::<NdArray>(dir.into(), dtype),
        BackendName::Flex => run::<Flex>(dir.into(), dtype),
        other => {
            eprintln!("{other}: this driver loads on the CPU backends only; {usage}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(Loaded {
            params,
            seconds,
            peak,
            after,
        }) => {
            let bytes = params * dtype.size();
            let ratio =
                |kib: Option<u64>| kib.map_or(f64::NAN, |k| (k * 1024) as f64 / bytes as f64);
            let fields = [
                format!("backend={backend} dtype={dtype:?} params={params} param_bytes={bytes}"),
                format!("load_s={seconds:.2} rss_before_kib={}", before.unwrap_or(0)),
                format!(
                    "peak_rss_kib={} rss_after_kib={}",
                    peak.unwrap_or(0),
                    after.unwrap_or(0)
                ),
                format!("peak_over_params={:.3}", ratio(peak)),
                format!("after_over_params={:.3}", ratio(after)),
            ];
            println!("{}", fields.join(" "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loading {dir} failed: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Loaded {
    params: usize,
    seconds: f64,
    /// Peak and current resident set (KiB) with the model still alive.
    peak: Option<u64>,
    after: Option<u64>,
}

fn run<B: Backend>(dir: PathBuf, dtype: DType) -> Result<Loaded, e5v_model::ModelError> {
    let device = Default::default();
    let start = Instant::now();
    let model = LlavaNext::<B>::load(dir, &device, dtype)?;
    let seconds = start.elapsed().as_secs_f64();
    let params = std::hint::black_box(&model).num_params();
    let (peak, after) = (status("VmHWM:"), status("VmRSS:"));
    drop(model);
    Ok(Loaded {
        params,
        seconds,
        peak,
        after,
    })
}

/// A `/proc/self/status` field in KiB (Linux only).
fn status(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
