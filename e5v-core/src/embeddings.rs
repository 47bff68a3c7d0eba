//! Embedding matrices: what an embedding call returns, and what similarity search and the
//! evaluation metrics take.

use std::ops::Range;

use crate::{Error, Result};

/// A row-major `[len, dim]` matrix of `f32` vectors, one row per input.
///
/// [`Embedder::embed`](crate::Embedder::embed) returns one row per input, in input order, with
/// what the model saw for each ([`Embeddings::info`]). Vectors computed elsewhere (a cache, a
/// file, another model) enter through [`Embeddings::from_matrix`] or [`Embeddings::from_rows`],
/// which check the shape and that every value is finite; their rows have no [`InputInfo`].
/// Batches combine with [`Embeddings::append`], and [`Embeddings::slice`] copies a range of rows
/// out.
///
/// Scores are plain dot products ([`Embeddings::dot`]), so they are cosine similarities once the
/// rows are unit length: the embedder normalises by default
/// ([`EmbedderOptions::normalize`](crate::EmbedderOptions::normalize)), and
/// [`Embeddings::normalize`] does it afterwards. [`Embeddings::similarity`],
/// [`Embeddings::similarity_into`] and [`Embeddings::top_k`] all use that same dot product, so
/// a score is bit for bit the same whichever of them computed it.
///
/// Equality compares the width, the values and the row info.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    dim: usize,
    data: Vec<f32>,
    /// One entry per row: `Some` for rows computed by the embedder.
    info: Vec<Option<InputInfo>>,
}

/// What the model saw for one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct InputInfo {
    /// Length of the sequence the decoder ran on (image features included).
    pub seq_len: usize,
    /// Number of image feature vectors spliced in, if the input had an image.
    pub image_tokens: Option<usize>,
}

impl InputInfo {
    pub(crate) fn new(seq_len: usize, image_tokens: Option<usize>) -> Self {
        Self {
            seq_len,
            image_tokens,
        }
    }
}

impl Embeddings {
    /// The embedder's output: `info.len()` rows of `dim` values, not checked (the model's
    /// output is finite).
    pub(crate) fn new(dim: usize, data: Vec<f32>, info: Vec<InputInfo>) -> Self {
        debug_assert_eq!(data.len(), dim * info.len());
        Self {
            dim,
            data,
            info: info.into_iter().map(Some).collect(),
        }
    }

    /// Wraps row-major `data`, rows of `dim` values (an empty `data` is a matrix of no rows).
    ///
    /// Fails with [`Error::InvalidArgument`] if `dim` is 0, `data.len()` is not a multiple of
    /// `dim`, or a value is NaN or infinite. The rows have no [`InputInfo`].
    pub fn from_matrix(dim: usize, data: Vec<f32>) -> Result<Self> {
        if dim == 0 {
            return Err(Error::InvalidArgument("embedding dim must be > 0".into()));
        }
        if !data.len().is_multiple_of(dim) {
            return Err(Error::InvalidArgument(format!(
                "{} values are not a whole number of rows of dim {dim}",
                data.len()
            )));
        }
        if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "embedding row {} has a non-finite value",
                pos / dim
            )));
        }
        let rows = data.len() / dim;
        Ok(Self {
            dim,
            data,
            info: vec![None; rows],
        })
    }

    /// Stacks rows of `dim` values each (`dim` also gives the width of an empty matrix).
    ///
    /// Fails as [`Embeddings::from_matrix`] does, and if a row does not have `dim` values.
    pub fn from_rows<R: AsRef<[f32]>>(
        dim: usize,
        rows: impl IntoIterator<Item = R>,
    ) -> Result<Self> {
        let mut data = Vec::new();
        for (i, row) in rows.into_iter().enumerate() {
            let row = row.as_ref();
            if row.len() != dim {
                return Err(Error::InvalidArgument(format!(
                    "row {i} has {} values, expected {dim}",
                    row.len()
                )));
            }
            data.extend_from_slice(row);
        }
        Self::from_matrix(dim, data)
    }

    /// Number of vectors (rows).
    pub fn len(&self) -> usize {
        self.info.len()
    }

    /// Whether there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.info.is_empty()
    }

    /// Width of each vector (4096 for E5-V).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The `i`-th vector, if there is one.
    pub fn get(&self, i: usize) -> Option<&[f32]> {
        (i < self.len()).then(|| self.row(i))
    }

    /// What the model saw for the `i`-th input: `None` past the end, and for rows that did not
    /// come from [`Embedder::embed`](crate::Embedder::embed) (built with
    /// [`Embeddings::from_matrix`] or [`Embeddings::from_rows`]).
    pub fn info(&self, i: usize) -> Option<InputInfo> {
        self.info.get(i).copied().flatten()
    }

    /// The vectors, one slice each, in row order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[f32]> {
        (0..self.len()).map(|i| self.row(i))
    }

    /// The row-major `[len, dim]` matrix.
    pub fn as_matrix(&self) -> &[f32] {
        &self.data
    }

    /// The row-major `[len, dim]` matrix, by value.
    pub fn into_matrix(self) -> Vec<f32> {
        self.data
    }

    /// A copy of rows `range` (with their info), or `None` if the range is out of bounds or
    /// decreasing.
    pub fn slice(&self, range: Range<usize>) -> Option<Embeddings> {
        let info = self.info.get(range.clone())?.to_vec();
        let data = self.data[range.start * self.dim..range.end * self.dim].to_vec();
        Some(Self {
            dim: self.dim,
            data,
            info,
        })
    }

    /// Appends the rows of `other` (with their info) after those of `self`: batches of a
    /// stream become one matrix.
    ///
    /// Fails with [`Error::InvalidArgument`] if the widths differ; `self` is then unchanged.
    pub fn append(&mut self, other: Embeddings) -> Result<()> {
        self.check_dim(other.dim)?;
        self.data.extend_from_slice(&other.data);
        self.info.extend(other.info);
        Ok(())
    }

    /// Scales every row to unit L2 length, in place (a zero row stays zero). The norm and the
    /// division are computed in `f64`.
    pub fn normalize(&mut self) {
        if self.dim > 0 {
            self.data.chunks_exact_mut(self.dim).for_each(normalize);
        }
    }

    /// The matrix with every row scaled to unit L2 length (see [`Embeddings::normalize`]).
    pub fn normalized(mut self) -> Self {
        self.normalize();
        self
    }

    /// The dot product of two vectors of the same length, as every score of this type is
    /// computed: in `f32`, with eight independent accumulators (it vectorises well). Symmetric
    /// bit for bit: `dot(a, b) == dot(b, a)`. Values past the shorter vector are ignored.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
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

    /// Dot products of every row of `self` with every row of `other`: a row-major
    /// `[self.len(), other.len()]` matrix (cosine similarities for normalised vectors).
    ///
    /// Fails with [`Error::InvalidArgument`] if the widths differ.
    pub fn similarity(&self, other: &Embeddings) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.len() * other.len()];
        self.similarity_into(other, &mut out)?;
        Ok(out)
    }

    /// [`Embeddings::similarity`] into `out`, which must hold exactly
    /// `self.len() * other.len()` scores: scoring a large gallery one block of query rows at a
    /// time (see [`Embeddings::slice`]) reuses one buffer and bounds the memory.
    ///
    /// Fails with [`Error::InvalidArgument`] if the widths differ or `out` has another length.
    pub fn similarity_into(&self, other: &Embeddings, out: &mut [f32]) -> Result<()> {
        self.check_dim(other.dim)?;
        if out.len() != self.len() * other.len() {
            return Err(Error::InvalidArgument(format!(
                "a {}x{} similarity matrix does not fit {} scores",
                self.len(),
                other.len(),
                out.len()
            )));
        }
        score_into(self, other, out);
        Ok(())
    }

    /// The `k` rows most similar to `query`: `(row, score)` with the highest dot product first,
    /// ties to the lower row (all rows if `k >= len`).
    ///
    /// Fails with [`Error::InvalidArgument`] if `query` does not have `dim` values.
    pub fn top_k(&self, query: &[f32], k: usize) -> Result<Vec<(usize, f32)>> {
        self.check_dim(query.len())?;
        let mut scored: Vec<(usize, f32)> = self
            .rows()
            .map(|row| Self::dot(row, query))
            .enumerate()
            .collect();
        let order = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if k == 0 {
            return Ok(Vec::new());
        }
        if k < scored.len() {
            scored.select_nth_unstable_by(k - 1, order);
            scored.truncate(k);
        }
        scored.sort_unstable_by(order);
        Ok(scored)
    }

    /// Row `i`, which must exist (any `i` works for width 0).
    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    fn check_dim(&self, dim: usize) -> Result<()> {
        match dim == self.dim {
            true => Ok(()),
            false => Err(Error::InvalidArgument(format!(
                "vectors of width {dim} cannot be combined with embeddings of width {}",
                self.dim
            ))),
        }
    }
}

/// Reduces eight lane accumulators and the tail products exactly as [`Embeddings::dot`] does.
#[inline(always)]
fn finish(acc: &[f32; 8], a_tail: &[f32], b_tail: &[f32]) -> f32 {
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in a_tail.iter().zip(b_tail) {
        sum += x * y;
    }
    sum
}

/// [`Embeddings::dot`] of four queries with one gallery row at once (each gallery chunk is
/// loaded once for four queries). Every result is bit-identical to `dot(q[i], g)`: each query
/// keeps its own accumulators and the same operation order.
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
/// query is scored against it.
const GALLERY_TILE: usize = 32;

/// Scores every row of `queries` against every row of `gallery` (same width) into `out`
/// (`queries x gallery`, row-major), four queries at a time over tiles of the gallery.
fn score_into(queries: &Embeddings, gallery: &Embeddings, out: &mut [f32]) {
    let n_gallery = gallery.len();
    let q_rows: Vec<&[f32]> = queries.rows().collect();
    for tile_start in (0..n_gallery).step_by(GALLERY_TILE) {
        let tile_end = (tile_start + GALLERY_TILE).min(n_gallery);
        let mut i = 0;
        while i + 4 <= q_rows.len() {
            let q = [q_rows[i], q_rows[i + 1], q_rows[i + 2], q_rows[i + 3]];
            for j in tile_start..tile_end {
                let s = dot4(q, gallery.row(j));
                for (r, v) in s.into_iter().enumerate() {
                    out[(i + r) * n_gallery + j] = v;
                }
            }
            i += 4;
        }
        for (r, q) in q_rows.iter().enumerate().skip(i) {
            for j in tile_start..tile_end {
                out[r * n_gallery + j] = Embeddings::dot(q, gallery.row(j));
            }
        }
    }
}

/// Scales a vector to unit length (a zero vector stays zero).
pub(crate) fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut()
            .for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Embeddings {
        let info = vec![InputInfo::new(3, None); 3];
        Embeddings::new(2, vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8], info)
    }

    fn matrix(dim: usize, data: &[f32]) -> Embeddings {
        Embeddings::from_matrix(dim, data.to_vec()).expect("valid")
    }

    fn invalid(r: Result<Embeddings>) -> String {
        match r {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn rows_similarity_and_top_k() {
        let e = sample();
        assert_eq!(e.len(), 3);
        assert_eq!(e.get(2), Some(&[0.6, 0.8][..]));
        assert_eq!(e.get(3), None);
        assert_eq!(e.info(2), Some(InputInfo::new(3, None)));
        assert_eq!(e.info(3), None);
        let s = e.similarity(&e).expect("same width");
        assert_eq!(s.len(), 9);
        assert!((s[2] - 0.6).abs() < 1e-6 && (s[4] - 1.0).abs() < 1e-6);
        let top = e.top_k(&[0.0, 1.0], 2).expect("same width");
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), [1, 2]);
        assert!(e.top_k(&[1.0], 1).is_err());
    }

    #[test]
    fn constructors_check_shape_and_values() {
        assert!(invalid(Embeddings::from_matrix(0, vec![])).contains("dim must be > 0"));
        assert!(invalid(Embeddings::from_matrix(0, vec![1.0])).contains("dim must be > 0"));
        assert!(invalid(Embeddings::from_matrix(2, vec![1.0, 2.0, 3.0])).contains("whole number"));
        assert!(
            invalid(Embeddings::from_matrix(2, vec![1.0, 2.0, 3.0, f32::NAN]))
                .contains("row 1 has a non-finite value")
        );
        assert!(invalid(Embeddings::from_matrix(1, vec![f32::INFINITY])).contains("row 0"));
        assert!(invalid(Embeddings::from_matrix(1, vec![f32::NEG_INFINITY])).contains("row 0"));
        assert!(
            invalid(Embeddings::from_rows(2, [[1.0f32, 2.0].as_slice(), &[3.0]]))
                .contains("row 1 has 1 values, expected 2")
        );
        assert!(invalid(Embeddings::from_rows(2, [[1.0f32, f32::NAN]])).contains("non-finite"));
        assert!(invalid(Embeddings::from_rows::<Vec<f32>>(0, [])).contains("dim"));

        let e = matrix(2, &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!((e.len(), e.dim()), (2, 2));
        assert_eq!(e.get(1), Some(&[3.0, 4.0][..]));
        assert_eq!(e.get(2), None);
        assert_eq!(e.get(usize::MAX), None);
        assert_eq!(e.info(0), None);
        assert_eq!(e.rows().len(), 2);
        assert_eq!(
            Embeddings::from_rows(2, [[1.0f32, 2.0], [3.0, 4.0]]).expect("rows"),
            e
        );
        let empty = Embeddings::from_rows::<Vec<f32>>(3, []).expect("empty");
        assert!(empty.is_empty());
        assert_eq!((empty.len(), empty.dim(), empty.rows().len()), (0, 3, 0));
        assert_eq!(e.into_matrix(), [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn normalize_gives_unit_vectors_and_keeps_zero() {
        let mut v = [3.0, 4.0];
        normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut z = [0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, [0.0, 0.0]);

        let e = matrix(2, &[3.0, 4.0, 0.0, 0.0, -5.0, 12.0]).normalized();
        assert_eq!(
            e.as_matrix(),
            &[0.6, 0.8, 0.0, 0.0, -5.0 / 13.0, 12.0 / 13.0]
        );
        let mut again = e.clone();
        again.normalize();
        assert_eq!(again, e);
        let mut info_kept = sample();
        info_kept.normalize();
        assert_eq!(info_kept.info(0), Some(InputInfo::new(3, None)));
    }

    #[test]
    fn dot_is_symmetric_and_correct() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.1 - 0.7).collect();
        let b: Vec<f32> = (0..19).map(|i| (i as f32 * 0.37).sin()).collect();
        let naive: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        assert!((f64::from(Embeddings::dot(&a, &b)) - naive).abs() < 1e-5);
        assert_eq!(
            Embeddings::dot(&a, &b).to_bits(),
            Embeddings::dot(&b, &a).to_bits()
        );
        assert_eq!(Embeddings::dot(&[], &[]), 0.0);
    }

    #[test]
    fn similarity_is_dot_bit_for_bit() {
        // dim 19: two full 8-lane chunks plus a tail; 9 queries: two groups of 4 plus one;
        // 37 gallery rows: one full tile of 32 plus a partial one.
        let q = matrix(
            19,
            &(0..9 * 19)
                .map(|i| (i as f32 * 0.7).cos())
                .collect::<Vec<_>>(),
        );
        let g = matrix(
            19,
            &(0..37 * 19)
                .map(|i| (i as f32 * 1.3).sin())
                .collect::<Vec<_>>(),
        );
        let s = q.similarity(&g).expect("same width");
        assert_eq!(s.len(), 9 * 37);
        for (i, qr) in q.rows().enumerate() {
            for (j, gr) in g.rows().enumerate() {
                assert_eq!(s[i * 37 + j].to_bits(), Embeddings::dot(qr, gr).to_bits());
            }
        }
        let t = g.similarity(&q).expect("same width");
        for i in 0..9 {
            for j in 0..37 {
                assert_eq!(s[i * 37 + j].to_bits(), t[j * 9 + i].to_bits());
            }
        }
        // A block of query rows scores exactly as in the whole matrix.
        let mut block = vec![0.0; 3 * 37];
        q.slice(5..8)
            .expect("in range")
            .similarity_into(&g, &mut block)
            .expect("fits");
        assert_eq!(block, s[5 * 37..8 * 37]);
        assert!(q.similarity_into(&g, &mut block).is_err());
        let other = matrix(3, &[1.0, 0.0, 0.0]);
        assert!(q.similarity(&other).is_err());
        let empty = matrix(19, &[]);
        assert!(q.similarity(&empty).expect("empty").is_empty());
        assert!(empty.similarity(&g).expect("empty").is_empty());
    }

    #[test]
    fn top_k_orders_by_score_then_row() {
        // Rows 0, 2 and 3 tie at 1.0; row 1 scores 2.0; row 4 scores -1.0.
        let e = matrix(1, &[1.0, 2.0, 1.0, 1.0, -1.0]);
        let top = |k| e.top_k(&[1.0], k).expect("same width");
        assert_eq!(top(0), []);
        assert_eq!(top(1), [(1, 2.0)]);
        assert_eq!(top(2), [(1, 2.0), (0, 1.0)]);
        assert_eq!(top(3), [(1, 2.0), (0, 1.0), (2, 1.0)]);
        assert_eq!(top(5), [(1, 2.0), (0, 1.0), (2, 1.0), (3, 1.0), (4, -1.0)]);
        assert_eq!(top(99), top(5));
        assert!(matrix(1, &[]).top_k(&[1.0], 3).expect("empty").is_empty());
        assert!(e.top_k(&[1.0, 0.0], 1).is_err());
    }

    #[test]
    fn slice_and_append() {
        let e = sample();
        let tail = e.slice(1..3).expect("in range");
        assert_eq!(tail.as_matrix(), &[0.0, 1.0, 0.6, 0.8]);
        assert_eq!(tail.info(1), Some(InputInfo::new(3, None)));
        assert!(e.slice(2..2).expect("empty range").is_empty());
        assert!(e.slice(2..4).is_none());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = e.slice(2..1);
        assert!(reversed.is_none());

        // Streaming: an empty matrix of the right width, then batches with and without info.
        let mut all = matrix(2, &[]);
        all.append(e.slice(0..1).expect("row 0"))
            .expect("same width");
        all.append(matrix(2, &[5.0, 6.0])).expect("same width");
        all.append(tail).expect("same width");
        assert_eq!(all.len(), 4);
        assert_eq!(all.as_matrix(), &[1.0, 0.0, 5.0, 6.0, 0.0, 1.0, 0.6, 0.8]);
        assert_eq!(all.info(0), Some(InputInfo::new(3, None)));
        assert_eq!(all.info(1), None);
        assert_eq!(all.info(3), Some(InputInfo::new(3, None)));
        assert_eq!(all.slice(1..2), Some(matrix(2, &[5.0, 6.0])));

        let before = all.clone();
        assert!(all.append(matrix(3, &[1.0, 2.0, 3.0])).is_err());
        assert_eq!(all, before);
    }
}
