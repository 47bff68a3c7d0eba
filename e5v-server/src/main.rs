//! `e5v-server`: serve E5-V embeddings over HTTP in OpenAI's shape.
//!
//! ```text
//! cargo run --release -p e5v-server -- --model DIR_OR_REPO [--backend flex|ndarray|wgpu|cuda]
//!     [--host 127.0.0.1] [--port 8080] [--served-model-name e5-v] [--dtype f32|f16|bf16]
//!     [--queue 256] [--max-batch-inputs 64] [--max-inputs 2048] [--max-image-bytes N]
//!     [--timeout-secs 120] [--allow-remote-images HOST,...] [--log-json]
//! ```
//!
//! The port answers at once (`/health` is 503 while the model loads). Ctrl-C or SIGTERM stops
//! accepting connections and finishes the requests already accepted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use burn::tensor::backend::Backend;
use clap::Parser;
use e5v_core::{BackendName, Embedder, EmbedderOptions, Precision};
use e5v_server::{App, QueueConfig, RemoteImages, RequestLimits, ServerConfig};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "An OpenAI-compatible embeddings server for E5-V (texts, images, composed queries)"
)]
struct Args {
    /// A model directory, or (feature `hub`) a Hugging Face repo id such as royokong/e5-v.
    #[arg(long)]
    model: String,
    /// Compute backend: flex, ndarray, wgpu or cuda (those compiled in).
    #[arg(long, default_value = "flex")]
    backend: BackendName,
    /// Weight and activation precision.
    #[arg(long, default_value = "f32")]
    dtype: Precision,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The model name requests give and responses carry.
    #[arg(long, default_value = "e5-v")]
    served_model_name: String,
    /// Requests that may wait for the model; more are refused with 429.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// Inputs gathered from waiting requests into one model call.
    #[arg(long, default_value_t = 64)]
    max_batch_inputs: usize,
    /// Inputs per request.
    #[arg(long, default_value_t = 2048)]
    max_inputs: usize,
    /// Bytes of one image file.
    #[arg(long, default_value_t = 20 << 20)]
    max_image_bytes: usize,
    /// Hosts whose http(s) image URLs are fetched, comma-separated (none by default: images
    /// must come as data URIs). Redirects are not followed.
    #[arg(long, value_delimiter = ',')]
    allow_remote_images: Vec<String>,
    /// Seconds for one remote image fetch.
    #[arg(long, default_value_t = 10)]
    remote_timeout_secs: u64,
    /// Bytes of one request body.
    #[arg(long, default_value_t = 64 << 20)]
    max_body_bytes: usize,
    /// Seconds from arrival to answer before a request fails with 504.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Work offline: the Hub cache only (feature `hub`).
    #[arg(long)]
    offline: bool,
    /// Logs as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let config = ServerConfig {
        model_name: args.served_model_name.clone(),
        limits: RequestLimits {
            max_inputs: args.max_inputs,
            max_image_bytes: args.max_image_bytes,
            remote: RemoteImages {
                allowed_hosts: args.allow_remote_images.clone(),
                timeout: Duration::from_secs(args.remote_timeout_secs),
            },
            ..RequestLimits::default()
        },
        max_body_bytes: args.max_body_bytes,
        request_timeout: Duration::from_secs(args.timeout_secs),
        queue: QueueConfig {
            capacity: args.queue,
            max_batch_inputs: args.max_batch_inputs,
        },
    };
    let app = App::new(config);
    let address = SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    tracing::info!("listening on http://{address} (loading {})", args.model);
    let loader = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || load(&args, &app))
    };
    let server = axum::serve(listener, app.router()).with_graceful_shutdown(shutdown_signal());
    let served = tokio::spawn(async move { server.await });
    match loader.await {
        Ok(Ok(())) => tracing::info!("model loaded; ready"),
        Ok(Err(message)) => return Err(message),
        Err(e) => return Err(format!("the loader failed: {e}")),
    }
    match served.await {
        Ok(Ok(())) => {
            tracing::info!("stopped");
            Ok(())
        }
        Ok(Err(e)) => Err(format!("server error: {e}")),
        Err(e) => Err(format!("server task failed: {e}")),
    }
}

/// Loads the model on the chosen backend and hands it to the app.
fn load(args: &Args, app: &App) -> Result<(), String> {
    let options = EmbedderOptions::new().with_precision(args.dtype);
    match args.backend {
        BackendName::Flex => load_on::<e5v_core::Flex>(args, app, options),
        #[cfg(feature = "ndarray")]
        BackendName::NdArray => load_on::<e5v_core::NdArray>(args, app, options),
        #[cfg(feature = "wgpu")]
        BackendName::Wgpu => load_on::<e5v_core::Wgpu>(args, app, options),
        #[cfg(feature = "cuda")]
        BackendName::Cuda => load_on::<e5v_core::Cuda>(args, app, options),
        other => Err(other.not_compiled().to_string()),
    }
}

fn load_on<B: Backend>(args: &Args, app: &App, options: EmbedderOptions) -> Result<(), String>
where
    Embedder<B>: Send,
{
    let dir = model_dir(args)?;
    let embedder = Embedder::<B>::new(&dir, options, &Default::default())
        .map_err(|e| format!("loading {}: {e}", dir.display()))?;
    app.ready(embedder);
    Ok(())
}

#[cfg(feature = "hub")]
fn model_dir(args: &Args) -> Result<PathBuf, String> {
    e5v_core::hub::Hub::from_env()
        .with_offline(args.offline)
        .model_dir(&args.model)
        .map_err(|e| format!("model {}: {e}", args.model))
}

#[cfg(not(feature = "hub"))]
fn model_dir(args: &Args) -> Result<PathBuf, String> {
    let _ = args.offline;
    Ok(PathBuf::from(&args.model))
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing accepted requests");
}
