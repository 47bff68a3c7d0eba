//! The HTTP application: routes, shared state and the embeddings handler.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use e5v_core::{Embeddings, Prompts};
use serde_json::json;

use crate::api::{
    EmbeddingData, EmbeddingRequest, EmbeddingResponse, EmbeddingValue, EncodingFormat, Usage,
};
use crate::batcher::{Model, Queue, QueueConfig, prompt_tokens};
use crate::error::ApiError;
use crate::inputs::{RequestLimits, parse};
use crate::metrics::{Metrics, Outcome};

/// How the server answers.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The name requests may give as `model` and responses carry.
    pub model_name: String,
    /// Inputs per request, image bytes, text length.
    pub limits: RequestLimits,
    /// Bytes of a request body.
    pub max_body_bytes: usize,
    /// From arrival to answer; a request still queued then is dropped (504).
    pub request_timeout: Duration,
    /// Queue size and batching.
    pub queue: QueueConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            model_name: "e5-v".into(),
            limits: RequestLimits::default(),
            max_body_bytes: 64 << 20,
            request_timeout: Duration::from_secs(120),
            queue: QueueConfig::default(),
        }
    }
}

/// The server's state; cheap to clone. It answers before the model is loaded (`/health` says
/// 503 until [`App::ready`]), so orchestrators can tell "starting" from "down".
#[derive(Debug, Clone)]
pub struct App {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ServerConfig,
    metrics: Arc<Metrics>,
    serving: OnceLock<Serving>,
}

/// What exists once the model is loaded.
#[derive(Debug)]
struct Serving {
    queue: Queue,
    prompts: Prompts,
}

impl App {
    /// A server that is not ready yet.
    pub fn new(config: ServerConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                metrics: Arc::new(Metrics::default()),
                serving: OnceLock::new(),
            }),
        }
    }

    /// Starts serving `model` (an [`Embedder`](e5v_core::Embedder) of any backend). A second
    /// call is ignored.
    pub fn ready<M: Model>(&self, model: M) {
        let prompts = model.default_prompts();
        let queue = Queue::start(model, self.inner.config.queue, self.inner.metrics.clone());
        let _ = self.inner.serving.set(Serving { queue, prompts });
    }

    /// The routes: `POST /v1/embeddings`, `GET /v1/models`, `GET /health`, `GET /metrics`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/models", get(models))
            .route("/health", get(health))
            .route("/metrics", get(metrics))
            .layer(DefaultBodyLimit::max(self.inner.config.max_body_bytes))
            .with_state(self.clone())
    }
}

async fn embeddings(
    State(app): State<App>,
    body: Result<Json<EmbeddingRequest>, JsonRejection>,
) -> Response {
    let start = Instant::now();
    let result = embed(&app, body).await;
    let outcome = match &result {
        Ok(_) => Outcome::Ok,
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => Outcome::Rejected,
        Err(e) if e.status.is_server_error() => Outcome::ServerError,
        Err(_) => Outcome::ClientError,
    };
    let seconds = start.elapsed().as_secs_f64();
    app.inner.metrics.request(outcome, seconds);
    match result {
        Ok(response) => {
            tracing::info!(
                inputs = response.data.len(),
                tokens = response.usage.total_tokens,
                ms = (seconds * 1e3) as u64,
                "embedded"
            );
            Json(response).into_response()
        }
        Err(error) => {
            tracing::info!(status = error.status.as_u16(), code = error.code, param = ?error.param, "refused: {}", error.message);
            error.into_response()
        }
    }
}

async fn embed(
    app: &App,
    body: Result<Json<EmbeddingRequest>, JsonRejection>,
) -> Result<EmbeddingResponse, ApiError> {
    let Json(request) = body.map_err(json_error)?;
    let config = &app.inner.config;
    let serving = app.inner.serving.get().ok_or_else(|| {
        ApiError::invalid("loading", None, "the model is still loading; retry shortly")
            .with_status(StatusCode::SERVICE_UNAVAILABLE)
    })?;
    if let Some(model) = request.model.as_ref().filter(|m| **m != config.model_name) {
        return Err(ApiError::invalid(
            "model_not_found",
            Some("model".into()),
            format!("this server serves {:?}, not {model:?}", config.model_name),
        )
        .with_status(StatusCode::NOT_FOUND));
    }
    let format = request.encoding_format.unwrap_or_default();
    // Off the async threads: base64 decoding of large images, fetches of allowed URLs.
    let (prompts, limits) = (serving.prompts.clone(), config.limits.clone());
    let parsed = tokio::task::spawn_blocking(move || parse(request, &prompts, &limits))
        .await
        .map_err(|e| {
            ApiError::invalid("internal_error", None, format!("parsing failed: {e}"))
                .with_status(StatusCode::INTERNAL_SERVER_ERROR)
        })??;
    let answer = serving.queue.submit(parsed)?;
    let embeddings = tokio::time::timeout(config.request_timeout, answer)
        .await
        .map_err(|_| {
            ApiError::invalid(
                "timeout",
                None,
                format!(
                    "no answer within {} s; the server is overloaded",
                    config.request_timeout.as_secs_f64()
                ),
            )
            .with_status(StatusCode::GATEWAY_TIMEOUT)
        })?
        .map_err(|_| {
            ApiError::invalid(
                "internal_error",
                None,
                "the model worker dropped the request",
            )
            .with_status(StatusCode::INTERNAL_SERVER_ERROR)
        })??;
    Ok(response(&embeddings, format, &config.model_name))
}

fn response(embeddings: &Embeddings, format: EncodingFormat, model: &str) -> EmbeddingResponse {
    let tokens = prompt_tokens(embeddings);
    let data = embeddings
        .rows()
        .enumerate()
        .map(|(index, row)| EmbeddingData {
            object: "embedding".into(),
            index,
            embedding: match format {
                EncodingFormat::Float => EmbeddingValue::Float(row.to_vec()),
                EncodingFormat::Base64 => EmbeddingValue::Base64(
                    STANDARD.encode(row.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>()),
                ),
            },
        })
        .collect();
    EmbeddingResponse {
        object: "list".into(),
        data,
        model: model.into(),
        usage: Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }
}

/// A body that is not the expected JSON: 400 (413 when over the size limit) with serde's
/// message, which names the field.
fn json_error(rejection: JsonRejection) -> ApiError {
    let status = match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::invalid("invalid_request", None, rejection.body_text()).with_status(status)
}

async fn models(State(app): State<App>) -> Json<serde_json::Value> {
    Json(json!({"object": "list", "data": [{
        "id": app.inner.config.model_name, "object": "model", "owned_by": "e5v",
    }]}))
}

async fn health(State(app): State<App>) -> Response {
    match app.inner.serving.get() {
        Some(_) => (StatusCode::OK, Json(json!({"status": "ready"}))).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "loading"})),
        )
            .into_response(),
    }
}

async fn metrics(State(app): State<App>) -> Response {
    let depth = app.inner.serving.get().map_or(0, |s| s.queue.depth());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.inner.metrics.render(depth),
    )
        .into_response()
}
