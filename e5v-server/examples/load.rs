//! A bounded load test of a running e5v-server on this machine, and the same inputs through
//! the library directly: throughput, p50/p90/p99 latency and the server's overhead ratio.
//!
//! ```text
//! cargo run --release -p e5v-server --example load -- --url http://127.0.0.1:8080 \
//!     --model DIR [--clients 8] [--seconds 20] [--kind text|image|mixed] [--inputs 4]
//! ```
//!
//! Only loopback URLs are accepted: this is a benchmark of one's own server, not a load tool.
//! `scripts/load-server.sh` starts a server, runs this and stops the server.
#![expect(clippy::print_stdout, reason = "the report is this tool's output")]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Parser;
use e5v_core::{Embedder, EmbedderOptions, Flex, Input};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
struct Args {
    /// The server, on 127.0.0.1 or localhost.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The model directory the server runs, for the direct comparison (skipped without it).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// What each request embeds.
    #[arg(long, default_value = "mixed")]
    kind: String,
    /// Inputs per request.
    #[arg(long, default_value_t = 4)]
    inputs: usize,
    /// An image for image and mixed requests.
    #[arg(long, default_value = "fixtures/images/photo_chelsea_451x300.png")]
    image: PathBuf,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let host = args
        .url
        .strip_prefix("http://")
        .and_then(|rest| rest.split([':', '/']).next())
        .unwrap_or_default();
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        return Err(format!(
            "{}: only loopback servers are load-tested",
            args.url
        ));
    }
    let image = std::fs::read(&args.image).map_err(|e| format!("{}: {e}", args.image.display()))?;
    let (body, inputs) = request(&args, &image)?;
    let body = Arc::new(body);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let clients: Vec<_> = (0..args.clients)
        .map(|_| {
            let (url, body) = (format!("{}/v1/embeddings", args.url), Arc::clone(&body));
            std::thread::spawn(move || client(&url, &body, deadline))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for handle in clients {
        let (times, failed) = handle.join().map_err(|_| "a client panicked")?;
        latencies.extend(times);
        failures += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let per_request = inputs.len();
    let served = (latencies.len() * per_request) as f64 / elapsed.max(1e-9);
    println!(
        "server: {} clients, {:.0} s, {} requests ({failures} failed) of {} {} inputs",
        args.clients,
        elapsed,
        latencies.len(),
        per_request,
        args.kind
    );
    println!(
        "  {:.1} requests/s, {served:.1} inputs/s; latency p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms",
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 0.50) * 1e3,
        percentile(&latencies, 0.90) * 1e3,
        percentile(&latencies, 0.99) * 1e3,
    );
    if let Some(model) = &args.model {
        let direct = direct(model, &inputs, args.clients, args.seconds)?;
        println!(
            "library directly: {direct:.1} inputs/s (batches of {} inputs); server overhead ratio \
             {:.2} (library inputs/s / server inputs/s)",
            args.clients * per_request,
            direct / served.max(1e-9)
        );
    }
    Ok(())
}

/// The request body every client sends, and the same inputs for the library.
fn request(args: &Args, image: &[u8]) -> Result<(Value, Vec<Input>), String> {
    let uri = format!("data:image/png;base64,{}", STANDARD.encode(image));
    let texts: Vec<String> = (0..args.inputs)
        .map(|i| format!("load test sentence number {i}, about a cat on a sofa"))
        .collect();
    Ok(match args.kind.as_str() {
        "text" => (
            json!({"input": texts}),
            texts.iter().map(Input::text).collect(),
        ),
        "image" => (
            json!({"input": vec![uri; args.inputs], "modality": "image"}),
            vec![Input::image(image.to_vec()); args.inputs],
        ),
        "mixed" => (
            json!({"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": uri}},
                {"type": "text", "text": texts[0]},
            ]}]}),
            vec![Input::composed(image.to_vec(), texts[0].clone())],
        ),
        other => return Err(format!("--kind {other}: text, image or mixed")),
    })
}

/// Sends `body` until `deadline`: each success's latency, and the failures.
fn client(url: &str, body: &Value, deadline: Instant) -> (Vec<f64>, usize) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let (mut times, mut failed) = (Vec::new(), 0);
    while Instant::now() < deadline {
        let start = Instant::now();
        match agent.post(url).send_json(body) {
            Ok(response) if response.status() == 200 => {
                times.push(start.elapsed().as_secs_f64());
            }
            _ => failed += 1,
        }
    }
    (times, failed)
}

/// The library's inputs per second on the same inputs, in batches as large as the server's
/// concurrent requests give it.
fn direct(model: &PathBuf, inputs: &[Input], clients: usize, seconds: u64) -> Result<f64, String> {
    let embedder = Embedder::<Flex>::new(model, EmbedderOptions::new(), &Default::default())
        .map_err(|e| format!("{}: {e}", model.display()))?;
    let batch: Vec<Input> = (0..clients).flat_map(|_| inputs.iter().cloned()).collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut done = 0;
    while Instant::now() < deadline || done == 0 {
        embedder.embed(&batch).map_err(|e| e.to_string())?;
        done += batch.len();
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
