//! Embedding a stream of inputs a chunk at a time: [`Embedder::embed_iter`].

use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;

use crate::{Embedder, Embeddings, Error, Input, Prompts, Result};

/// Progress of an [`EmbedIter`], reported after every batch the model runs.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct EmbedProgress {
    /// Inputs embedded so far.
    pub done: usize,
    /// Inputs in the stream, when its iterator knows (an exact `size_hint`, or
    /// [`EmbedIter::with_total`]).
    pub total: Option<usize>,
    /// Tokens the decoder has run so far (image features included, padding not).
    pub tokens: usize,
    /// Time since the first chunk started.
    pub elapsed: Duration,
}

impl EmbedProgress {
    /// Decoder tokens per second so far.
    pub fn tokens_per_second(&self) -> f64 {
        per_second(self.tokens, self.elapsed)
    }

    /// Inputs per second so far.
    pub fn inputs_per_second(&self) -> f64 {
        per_second(self.done, self.elapsed)
    }
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    match elapsed.as_secs_f64() {
        0.0 => 0.0,
        seconds => count as f64 / seconds,
    }
}

/// What [`EmbedIter::with_progress`] calls.
type ProgressCallback<'a> = Box<dyn FnMut(&EmbedProgress) + 'a>;

/// The iterator of [`Embedder::embed_iter`]: each item is the next chunk of inputs' vectors,
/// in input order (chunks of [`Self::with_chunk_size`] inputs, the last one shorter).
///
/// A chunk's inputs are read, tokenised and batched together (length-sorted, as
/// [`Embedder::embed`] does), so memory holds one chunk's encoded images and vectors at a
/// time. An error ends the stream: it is yielded once, naming the input by its position in the
/// whole stream ([`Error::input_index`]), and `next` returns `None` afterwards.
pub struct EmbedIter<'a, B: Backend, I> {
    embedder: &'a Embedder<B>,
    inputs: I,
    prompts: Option<Prompts>,
    chunk_size: usize,
    total: Option<usize>,
    progress: Option<ProgressCallback<'a>>,
    done: usize,
    tokens: usize,
    start: Option<Instant>,
    finished: bool,
}

impl<B: Backend, I> std::fmt::Debug for EmbedIter<'_, B, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedIter")
            .field("chunk_size", &self.chunk_size)
            .field("done", &self.done)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl<'a, B: Backend, I: Iterator<Item = Input>> EmbedIter<'a, B, I> {
    /// Inputs per chunk by default: enough for length-sorted batches to pad little, few enough
    /// that a chunk's encoded images stay small.
    pub const DEFAULT_CHUNK_SIZE: usize = 128;

    pub(crate) fn new(embedder: &'a Embedder<B>, inputs: I) -> Self {
        let total = match inputs.size_hint() {
            (lower, Some(upper)) if lower == upper => Some(lower),
            _ => None,
        };
        Self {
            embedder,
            inputs,
            prompts: None,
            chunk_size: Self::DEFAULT_CHUNK_SIZE,
            total,
            progress: None,
            done: 0,
            tokens: 0,
            start: None,
            finished: false,
        }
    }

    /// Renders the stream with `prompts` instead of the embedder's.
    pub fn with_prompts(mut self, prompts: Prompts) -> Self {
        self.prompts = Some(prompts);
        self
    }

    /// Inputs read and embedded together (at least 1; 0 makes the first item an
    /// [`Error::InvalidArgument`]).
    pub fn with_chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// The number of inputs, for progress reports on an iterator that cannot tell.
    pub fn with_total(mut self, total: usize) -> Self {
        self.total = Some(total);
        self
    }

    /// Calls `report` after every batch the model runs.
    pub fn with_progress(mut self, report: impl FnMut(&EmbedProgress) + 'a) -> Self {
        self.progress = Some(Box::new(report));
        self
    }

    /// Runs the whole stream and returns all its vectors (as [`Embedder::embed`] would, but
    /// reading the inputs a chunk at a time).
    pub fn into_embeddings(self) -> Result<Embeddings> {
        let dim = self.embedder.dim();
        let mut all = Embeddings::new(dim, Vec::new(), Vec::new());
        for chunk in self {
            all.append(chunk?)?;
        }
        Ok(all)
    }

    fn next_chunk(&mut self) -> Option<Result<Embeddings>> {
        if self.chunk_size == 0 {
            return Some(Err(Error::InvalidArgument(
                "embed_iter's chunk size must be at least 1".into(),
            )));
        }
        let chunk: Vec<Input> = self.inputs.by_ref().take(self.chunk_size).collect();
        if chunk.is_empty() {
            return None;
        }
        let start = *self.start.get_or_insert_with(Instant::now);
        let prompts = self
            .prompts
            .as_ref()
            .unwrap_or(&self.embedder.options().prompts);
        let (done, tokens, total) = (&mut self.done, &mut self.tokens, self.total);
        let progress = &mut self.progress;
        let first = *done;
        Some(
            self.embedder
                .embed_numbered(first, &chunk, prompts, &mut |inputs, batch_tokens| {
                    *done += inputs;
                    *tokens += batch_tokens;
                    if let Some(report) = progress.as_mut() {
                        report(&EmbedProgress {
                            done: *done,
                            total,
                            tokens: *tokens,
                            elapsed: start.elapsed(),
                        });
                    }
                }),
        )
    }
}

impl<B: Backend, I: Iterator<Item = Input>> Iterator for EmbedIter<'_, B, I> {
    type Item = Result<Embeddings>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let item = self.next_chunk();
        self.finished = !matches!(item, Some(Ok(_)));
        item
    }
}

impl<B: Backend, I: Iterator<Item = Input>> std::iter::FusedIterator for EmbedIter<'_, B, I> {}
