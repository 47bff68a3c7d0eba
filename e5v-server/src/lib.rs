//! An OpenAI-compatible embeddings server for E5-V: texts, images and composed (image + text)
//! queries embedded into one vector space behind `POST /v1/embeddings`.
//!
//! The binary (`cargo run --release -p e5v-server -- --model DIR`) is the usual way in; this
//! library holds the application for tests and for embedding it in another server:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use e5v_core::{Embedder, EmbedderOptions, Flex};
//! use e5v_server::{App, ServerConfig};
//!
//! let app = App::new(ServerConfig::default());
//! let embedder = Embedder::<Flex>::new("models/e5-v", EmbedderOptions::new(), &Default::default())?;
//! app.ready(embedder);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app.router()).await?;
//! # Ok(()) }
//! ```

pub mod api;
mod app;
mod batcher;
mod error;
pub mod inputs;
mod metrics;
mod remote;

pub use app::{App, ServerConfig};
pub use batcher::{Model, QueueConfig};
pub use error::ApiError;
pub use inputs::RequestLimits;
pub use remote::RemoteImages;
