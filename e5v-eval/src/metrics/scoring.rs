//! Blocked query x gallery scoring: the full score matrix never exists at once. Each block is
//! scored by [`Embeddings::similarity_into`], so a score is bit for bit [`Embeddings::dot`] of
//! its two rows whatever the block size and thread count.

use std::num::NonZeroUsize;

use e5v_core::Embeddings;

use crate::error::{EvalError, Result};

/// How queries are scored against a gallery.
///
/// Scores are computed `block_rows` queries at a time, so at most `block_rows x gallery` scores
/// (4 bytes each) are held: with the default 256 rows, 5 MB for COCO text->image (5k images) and
/// 25 MB for image->text (25k captions). Each row is reduced to what the metric keeps (a rank or
/// a top-k list) before the next block is scored. `threads` splits each block across scoped
/// threads; results do not depend on it or on `block_rows`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScoreOptions {
    /// Queries scored per block.
    pub block_rows: NonZeroUsize,
    /// Worker threads per block.
    pub threads: NonZeroUsize,
}

/// The default block size.
const DEFAULT_BLOCK_ROWS: NonZeroUsize = match NonZeroUsize::new(256) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            block_rows: DEFAULT_BLOCK_ROWS,
            threads: NonZeroUsize::MIN,
        }
    }
}

impl ScoreOptions {
    /// The defaults: 256 query rows per block, one thread.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the number of query rows per block.
    pub fn with_block_rows(mut self, block_rows: NonZeroUsize) -> Self {
        self.block_rows = block_rows;
        self
    }

    /// Sets the number of worker threads (e.g. from `std::thread::available_parallelism` in a
    /// binary).
    pub fn with_threads(mut self, threads: NonZeroUsize) -> Self {
        self.threads = threads;
        self
    }
}

/// Scores every query against the whole gallery and maps each score row (query index, mutable
/// scores) to a `T`, in query order. Only one block of score rows exists at a time.
pub(crate) fn map_score_rows<T, F>(
    queries: &Embeddings,
    gallery: &Embeddings,
    options: &ScoreOptions,
    f: F,
) -> Result<Vec<T>>
where
    T: Send,
    F: Fn(usize, &mut [f32]) -> T + Sync,
{
    if queries.dim() != gallery.dim() {
        return Err(EvalError::InvalidArgument(format!(
            "query dim {} differs from gallery dim {}",
            queries.dim(),
            gallery.dim()
        )));
    }
    let n_queries = queries.len();
    let n_gallery = gallery.len();
    if n_gallery == 0 {
        return Ok((0..n_queries).map(|i| f(i, &mut [])).collect());
    }
    let block_rows = options.block_rows.get();
    let threads = options.threads.get();
    let mut out = Vec::with_capacity(n_queries);
    let mut scores = vec![0.0f32; block_rows.min(n_queries) * n_gallery];
    for first in (0..n_queries).step_by(block_rows) {
        let rows = block_rows.min(n_queries - first);
        let scores = &mut scores[..rows * n_gallery];
        // Rows per thread, rounded up; the last chunk may be shorter.
        let per_thread = rows.div_ceil(threads).max(1);
        // Scores query rows `base..base + s.len() / n_gallery` into `s` and maps them.
        let run = |base: usize, s: &mut [f32]| -> Result<Vec<T>> {
            let block = queries
                .slice(base..base + s.len() / n_gallery)
                .ok_or_else(|| EvalError::InvalidArgument("query block out of range".into()))?;
            block.similarity_into(gallery, s)?;
            Ok(s.chunks_exact_mut(n_gallery)
                .enumerate()
                .map(|(i, row)| f(base + i, row))
                .collect())
        };
        if threads == 1 || rows <= 1 {
            out.extend(run(first, scores)?);
            continue;
        }
        let chunks: Vec<Result<Vec<T>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = scores
                .chunks_mut(per_thread * n_gallery)
                .enumerate()
                .map(|(c, s)| {
                    let run = &run;
                    scope.spawn(move || run(first + c * per_thread, s))
                })
                .collect();
            // A panic in a worker is a bug in this crate: re-raise it unchanged.
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        for chunk in chunks {
            out.extend(chunk?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_threads_do_not_change_rows() {
        // dim 19: two full 8-lane chunks plus a tail; 9 queries: two groups of 4 plus one.
        let q = Embeddings::from_matrix(19, (0..9 * 19).map(|i| (i as f32 * 0.7).cos()).collect())
            .expect("q");
        let g = Embeddings::from_matrix(19, (0..37 * 19).map(|i| (i as f32 * 1.3).sin()).collect())
            .expect("g");
        let collect = |opts: &ScoreOptions| {
            map_score_rows(&q, &g, opts, |i, row: &mut [f32]| (i, row.to_vec())).expect("scores")
        };
        let reference = collect(&ScoreOptions::new());
        assert_eq!(reference.len(), 9);
        for (i, (qi, row)) in reference.iter().enumerate() {
            assert_eq!(*qi, i);
            for (j, s) in row.iter().enumerate() {
                let expected = Embeddings::dot(q.get(i).expect("row"), g.get(j).expect("row"));
                assert_eq!(s.to_bits(), expected.to_bits());
            }
        }
        for block in [1, 2, 3, 7, 100] {
            for threads in [1, 2, 3, 8] {
                let opts = ScoreOptions::new()
                    .with_block_rows(NonZeroUsize::new(block).expect("nz"))
                    .with_threads(NonZeroUsize::new(threads).expect("nz"));
                assert_eq!(collect(&opts), reference, "block {block} threads {threads}");
            }
        }
    }

    #[test]
    fn empty_inputs_and_dim_mismatch() {
        let q = Embeddings::from_matrix(2, vec![1.0, 0.0]).expect("q");
        let empty = Embeddings::from_matrix(2, vec![]).expect("empty");
        let rows = map_score_rows(&q, &empty, &ScoreOptions::new(), |_, r: &mut [f32]| r.len())
            .expect("ok");
        assert_eq!(rows, vec![0]);
        let rows = map_score_rows(&empty, &q, &ScoreOptions::new(), |_, r: &mut [f32]| r.len())
            .expect("ok");
        assert!(rows.is_empty());
        let other = Embeddings::from_matrix(3, vec![1.0, 0.0, 0.0]).expect("other");
        assert!(map_score_rows(&q, &other, &ScoreOptions::new(), |_, _| ()).is_err());
    }
}
