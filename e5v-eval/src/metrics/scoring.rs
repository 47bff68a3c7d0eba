//! Blocked query x gallery scoring: the full score matrix never exists at once.

use std::num::NonZeroUsize;

use super::embeddings::Embeddings;
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

/// Dot product with eight independent accumulators (vectorises well). Symmetric bit for bit:
/// `dot(a, b) == dot(b, a)`, since each product is commutative and the summation order only
/// depends on the index.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    finish(&acc, ra, rb)
}

/// Reduces eight lane accumulators and the tail products exactly as [`dot`] does.
#[inline(always)]
fn finish(acc: &[f32; 8], a_tail: &[f32], b_tail: &[f32]) -> f32 {
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in a_tail.iter().zip(b_tail) {
        sum += x * y;
    }
    sum
}

/// [`dot`] of four queries with one gallery row at once (each gallery chunk is loaded once for
/// four queries). Every result is bit-identical to `dot(q[i], g)`: each query keeps its own
/// accumulators and the same operation order.
fn dot4(q: [&[f32]; 4], g: &[f32]) -> [f32; 4] {
    let (mut a0, mut a1, mut a2, mut a3) = ([0.0f32; 8], [0.0f32; 8], [0.0f32; 8], [0.0f32; 8]);
    let chunks = g
        .chunks_exact(8)
        .zip(q[0].chunks_exact(8))
        .zip(q[1].chunks_exact(8))
        .zip(q[2].chunks_exact(8))
        .zip(q[3].chunks_exact(8));
    for ((((y, x0), x1), x2), x3) in chunks {
        for l in 0..8 {
            a0[l] += x0[l] * y[l];
            a1[l] += x1[l] * y[l];
            a2[l] += x2[l] * y[l];
            a3[l] += x3[l] * y[l];
        }
    }
    let n = g.len() / 8 * 8;
    [
        finish(&a0, &q[0][n..], &g[n..]),
        finish(&a1, &q[1][n..], &g[n..]),
        finish(&a2, &q[2][n..], &g[n..]),
        finish(&a3, &q[3][n..], &g[n..]),
    ]
}

/// Gallery rows scored per tile: 32 rows of 4096 f32 = 512 KiB, which stays in L2 while every
/// query of the thread's chunk is scored against it.
const GALLERY_TILE: usize = 32;

/// Scores `queries` (row-major, `dim` wide) against the whole gallery into `out`
/// (`queries x gallery`, row-major).
fn score_into(queries: &[f32], gallery: &Embeddings, out: &mut [f32]) {
    let dim = gallery.dim();
    let n_gallery = gallery.rows();
    let g = gallery.as_slice();
    let q_rows: Vec<&[f32]> = queries.chunks_exact(dim).collect();
    for tile_start in (0..n_gallery).step_by(GALLERY_TILE) {
        let tile_end = (tile_start + GALLERY_TILE).min(n_gallery);
        let mut i = 0;
        while i + 4 <= q_rows.len() {
            let q = [q_rows[i], q_rows[i + 1], q_rows[i + 2], q_rows[i + 3]];
            for j in tile_start..tile_end {
                let s = dot4(q, &g[j * dim..(j + 1) * dim]);
                for (r, v) in s.into_iter().enumerate() {
                    out[(i + r) * n_gallery + j] = v;
                }
            }
            i += 4;
        }
        for (r, q) in q_rows.iter().enumerate().skip(i) {
            for j in tile_start..tile_end {
                out[r * n_gallery + j] = dot(q, &g[j * dim..(j + 1) * dim]);
            }
        }
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
    let dim = queries.dim();
    let n_gallery = gallery.rows();
    if n_gallery == 0 {
        return Ok((0..queries.rows()).map(|i| f(i, &mut [])).collect());
    }
    let block_rows = options.block_rows.get();
    let threads = options.threads.get();
    let mut out = Vec::with_capacity(queries.rows());
    let mut scores = vec![0.0f32; block_rows.min(queries.rows()) * n_gallery];
    for (block_idx, block) in queries.as_slice().chunks(block_rows * dim).enumerate() {
        let first = block_idx * block_rows;
        let rows = block.len() / dim;
        let scores = &mut scores[..rows * n_gallery];
        // Rows per thread, rounded up; the last chunk may be shorter.
        let per_thread = rows.div_ceil(threads).max(1);
        let run = |chunk_idx: usize, q: &[f32], s: &mut [f32]| -> Vec<T> {
            score_into(q, gallery, s);
            let base = first + chunk_idx * per_thread;
            s.chunks_exact_mut(n_gallery)
                .enumerate()
                .map(|(i, row)| f(base + i, row))
                .collect()
        };
        if threads == 1 || rows <= 1 {
            out.extend(run(0, block, scores));
            continue;
        }
        let chunks: Vec<Vec<T>> = std::thread::scope(|scope| {
            let handles: Vec<_> = block
                .chunks(per_thread * dim)
                .zip(scores.chunks_mut(per_thread * n_gallery))
                .enumerate()
                .map(|(c, (q, s))| {
                    let run = &run;
                    scope.spawn(move || run(c, q, s))
                })
                .collect();
            // A panic in a worker is a bug in this crate: re-raise it unchanged.
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        out.extend(chunks.into_iter().flatten());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_is_symmetric_and_correct() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.1 - 0.7).collect();
        let b: Vec<f32> = (0..19).map(|i| (i as f32 * 0.37).sin()).collect();
        let naive: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        assert!((f64::from(dot(&a, &b)) - naive).abs() < 1e-5);
        assert_eq!(dot(&a, &b).to_bits(), dot(&b, &a).to_bits());
    }

    #[test]
    fn blocks_and_threads_do_not_change_rows() {
        // dim 19: two full 8-lane chunks plus a tail; 9 queries: two groups of 4 plus one.
        let q =
            Embeddings::new(19, (0..9 * 19).map(|i| (i as f32 * 0.7).cos()).collect()).expect("q");
        let g =
            Embeddings::new(19, (0..37 * 19).map(|i| (i as f32 * 1.3).sin()).collect()).expect("g");
        let collect = |opts: &ScoreOptions| {
            map_score_rows(&q, &g, opts, |i, row: &mut [f32]| (i, row.to_vec())).expect("scores")
        };
        let reference = collect(&ScoreOptions::new());
        assert_eq!(reference.len(), 9);
        for (i, (qi, row)) in reference.iter().enumerate() {
            assert_eq!(*qi, i);
            for (j, s) in row.iter().enumerate() {
                let expected = dot(q.row(i).expect("row"), g.row(j).expect("row"));
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
        let q = Embeddings::new(2, vec![1.0, 0.0]).expect("q");
        let empty = Embeddings::new(2, vec![]).expect("empty");
        let rows = map_score_rows(&q, &empty, &ScoreOptions::new(), |_, r: &mut [f32]| r.len())
            .expect("ok");
        assert_eq!(rows, vec![0]);
        let rows = map_score_rows(&empty, &q, &ScoreOptions::new(), |_, r: &mut [f32]| r.len())
            .expect("ok");
        assert!(rows.is_empty());
        let other = Embeddings::new(3, vec![1.0, 0.0, 0.0]).expect("other");
        assert!(map_score_rows(&q, &other, &ScoreOptions::new(), |_, _| ()).is_err());
    }
}
