//! One model, many clients: requests wait in a bounded queue, and one worker thread takes as
//! many as are waiting (up to a number of inputs), embeds them in one call (where the
//! embedder's own token-budget batching applies) and answers each.
//!
//! A full queue is refused at once (429), never waited on. A request whose client has gone
//! (disconnected, or timed out) before its turn is skipped. An input the model rejects fails
//! only its own request: the others of the batch are embedded again without it.

use std::sync::Arc;
use std::time::Instant;

use e5v_core::{Embedder, Embeddings, Input, Prompts};
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::inputs::Parsed;
use crate::metrics::Metrics;

/// What the worker needs of a model: [`Embedder`] of any backend, or a stand-in in tests.
pub trait Model: Send + 'static {
    /// Embeds `inputs` with `prompts`, as [`Embedder::embed_with`].
    ///
    /// # Errors
    /// As [`Embedder::embed_with`].
    fn embed(&self, inputs: &[Input], prompts: &Prompts) -> e5v_core::Result<Embeddings>;

    /// The prompts of a request that names no preset: the paper's retrieval prompts unless the
    /// model was set up with others.
    fn default_prompts(&self) -> Prompts {
        Prompts::new()
    }
}

impl<B: burn::tensor::backend::Backend> Model for Embedder<B>
where
    Embedder<B>: Send,
{
    fn embed(&self, inputs: &[Input], prompts: &Prompts) -> e5v_core::Result<Embeddings> {
        self.embed_with(inputs, prompts)
    }

    fn default_prompts(&self) -> Prompts {
        self.options().prompts.clone()
    }
}

/// A request's answer: its vectors and their token counts.
pub type Reply = Result<Embeddings, ApiError>;

/// One queued request.
struct Job {
    parsed: Parsed,
    reply: oneshot::Sender<Reply>,
}

/// The sending side of the queue, shared by the handlers.
#[derive(Debug, Clone)]
pub struct Queue {
    sender: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("inputs", &self.parsed.inputs.len())
            .finish()
    }
}

/// How the worker batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Requests that may wait; one more is refused with 429.
    pub capacity: usize,
    /// Inputs gathered into one model call (a single larger request still runs whole).
    pub max_batch_inputs: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity: 256,
            max_batch_inputs: 64,
        }
    }
}

impl Queue {
    /// Starts the worker thread on `model`. It stops once every [`Queue`] clone is dropped and
    /// the requests already queued are answered.
    pub fn start<M: Model>(model: M, config: QueueConfig, metrics: Arc<Metrics>) -> Self {
        let (sender, receiver) = mpsc::channel(config.capacity.max(1));
        std::thread::Builder::new()
            .name("e5v-model".into())
            .spawn(move || work(&model, receiver, config, &metrics))
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start the model thread: {e}"));
        Self { sender }
    }

    /// Queues a request; the answer arrives on the returned receiver.
    ///
    /// # Errors
    /// 429 when the queue is full, 503 when the worker has stopped.
    pub fn submit(&self, parsed: Parsed) -> Result<oneshot::Receiver<Reply>, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .try_send(Job { parsed, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ApiError::invalid(
                    "queue_full",
                    None,
                    "the server is busy: its queue is full; retry after a second",
                )
                .with_status(axum::http::StatusCode::TOO_MANY_REQUESTS),
                mpsc::error::TrySendError::Closed(_) => unavailable(),
            })?;
        Ok(answer)
    }

    /// Requests waiting now.
    pub fn depth(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }
}

fn unavailable() -> ApiError {
    ApiError::invalid("unavailable", None, "the model worker has stopped")
        .with_status(axum::http::StatusCode::SERVICE_UNAVAILABLE)
}

/// The worker loop: gather, embed, answer, until the queue closes.
fn work<M: Model>(
    model: &M,
    mut receiver: mpsc::Receiver<Job>,
    config: QueueConfig,
    metrics: &Metrics,
) {
    while let Some(first) = receiver.blocking_recv() {
        let mut jobs = vec![first];
        let mut inputs = jobs[0].parsed.inputs.len();
        while inputs < config.max_batch_inputs {
            match receiver.try_recv() {
                Ok(job) => {
                    inputs += job.parsed.inputs.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        // Clients that left (disconnected or timed out) cost no model time.
        jobs.retain(|job| !job.reply.is_closed());
        // One call per set of prompts, in arrival order of each set's first request.
        while let Some(first) = jobs.first() {
            let prompts = first.parsed.prompts.clone();
            let (same, rest): (Vec<_>, Vec<_>) =
                jobs.into_iter().partition(|j| j.parsed.prompts == prompts);
            jobs = rest;
            embed_group(model, same, &prompts, metrics);
        }
    }
}

/// Embeds the requests of one prompt set together; a request whose input fails is answered
/// with its error and the rest are embedded again.
fn embed_group<M: Model>(model: &M, mut jobs: Vec<Job>, prompts: &Prompts, metrics: &Metrics) {
    while !jobs.is_empty() {
        let inputs: Vec<Input> = jobs
            .iter()
            .flat_map(|j| j.parsed.inputs.iter().cloned())
            .collect();
        let start = Instant::now();
        // A panic in the model (a bug) fails this batch's requests, not the server.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            model.embed(&inputs, prompts)
        }));
        let Ok(result) = result else {
            tracing::error!("the model panicked; {} requests failed", jobs.len());
            for job in jobs.drain(..) {
                let _ = job
                    .reply
                    .send(Err(internal("the model failed on this batch")));
            }
            return;
        };
        match result {
            Ok(embeddings) => {
                let seconds = start.elapsed().as_secs_f64();
                metrics.batch(inputs.len(), prompt_tokens(&embeddings), seconds);
                let mut offset = 0;
                for job in jobs {
                    let count = job.parsed.inputs.len();
                    let reply = embeddings
                        .slice(offset..offset + count)
                        .ok_or_else(|| internal("the model returned too few vectors"));
                    offset += count;
                    let _ = job.reply.send(reply);
                }
                return;
            }
            Err(error) => match error.input_index() {
                Some(index) => {
                    let (job_index, local) = locate(&jobs, index);
                    let job = jobs.remove(job_index);
                    let _ = job.reply.send(Err(input_error(local, &error)));
                }
                None => {
                    tracing::error!("model call failed: {}", chain(&error));
                    for job in jobs.drain(..) {
                        let _ = job.reply.send(Err(internal(&chain(&error))));
                    }
                }
            },
        }
    }
}

/// Every token the vectors were read from: the prompted sequences, image tokens included.
pub(crate) fn prompt_tokens(embeddings: &Embeddings) -> usize {
    (0..embeddings.len())
        .filter_map(|i| embeddings.info(i))
        .map(|info| info.seq_len)
        .sum()
}

/// The request holding input `index` of the concatenation, and its position there.
fn locate(jobs: &[Job], mut index: usize) -> (usize, usize) {
    for (job_index, job) in jobs.iter().enumerate() {
        let count = job.parsed.inputs.len();
        if index < count {
            return (job_index, index);
        }
        index -= count;
    }
    (jobs.len() - 1, index)
}

/// A model error about one input, as a 400 naming it in its own request.
fn input_error(local: usize, error: &e5v_core::Error) -> ApiError {
    let message = chain(error);
    // The library says "input N: ..." with N in the whole batch; the client needs its own.
    let message = match message.split_once(": ") {
        Some((head, rest)) if head.starts_with("input ") => rest.to_string(),
        _ => message,
    };
    let code = match error {
        e5v_core::Error::Image { .. } | e5v_core::Error::ReadInput { .. } => "invalid_image",
        e5v_core::Error::TooLong { .. } => "input_too_long",
        _ => "invalid_input",
    };
    ApiError::input(local, code, message)
}

fn internal(message: &str) -> ApiError {
    ApiError::invalid("internal_error", None, message)
        .with_status(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
}

/// An error and its sources, joined by ": ".
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
