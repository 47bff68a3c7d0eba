//! The result of an embedding call.

use crate::{Error, Result};

/// One vector per input, in input order, with what the model saw for each.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    dim: usize,
    data: Vec<f32>,
    info: Vec<InputInfo>,
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
    pub(crate) fn new(dim: usize, data: Vec<f32>, info: Vec<InputInfo>) -> Self {
        debug_assert_eq!(data.len(), dim * info.len());
        Self { dim, data, info }
    }

    /// Number of vectors.
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
        self.data.get(i * self.dim..(i + 1) * self.dim)
    }

    /// What the model saw for the `i`-th input.
    pub fn info(&self, i: usize) -> Option<InputInfo> {
        self.info.get(i).copied()
    }

    /// The vectors, one slice each.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[f32]> {
        self.data
            .chunks_exact(self.dim.max(1))
            .take(self.info.len())
    }

    /// The row-major `[len, dim]` matrix.
    pub fn as_matrix(&self) -> &[f32] {
        &self.data
    }

    /// The row-major `[len, dim]` matrix, by value.
    pub fn into_matrix(self) -> Vec<f32> {
        self.data
    }

    /// Dot products of every row of `self` with every row of `other`: a row-major
    /// `[self.len(), other.len()]` matrix (cosine similarities for normalised vectors).
    pub fn similarity(&self, other: &Embeddings) -> Result<Vec<f32>> {
        self.check_dim(other.dim)?;
        Ok(self
            .rows()
            .flat_map(|a| other.rows().map(move |b| dot(a, b)))
            .collect())
    }

    /// The `k` rows most similar to `query` (highest dot product first; ties keep row order).
    pub fn top_k(&self, query: &[f32], k: usize) -> Result<Vec<(usize, f32)>> {
        self.check_dim(query.len())?;
        let mut scored: Vec<(usize, f32)> =
            self.rows().map(|row| dot(row, query)).enumerate().collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        Ok(scored)
    }

    fn check_dim(&self, dim: usize) -> Result<()> {
        match dim == self.dim {
            true => Ok(()),
            false => Err(Error::InvalidArgument(format!(
                "vectors of width {dim} cannot be compared with embeddings of width {}",
                self.dim
            ))),
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
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

    #[test]
    fn rows_similarity_and_top_k() {
        let e = sample();
        assert_eq!(e.len(), 3);
        assert_eq!(e.get(2), Some(&[0.6, 0.8][..]));
        assert_eq!(e.get(3), None);
        let s = e.similarity(&e).expect("same width");
        assert_eq!(s.len(), 9);
        assert!((s[2] - 0.6).abs() < 1e-6 && (s[4] - 1.0).abs() < 1e-6);
        let top = e.top_k(&[0.0, 1.0], 2).expect("same width");
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), [1, 2]);
        assert!(e.top_k(&[1.0], 1).is_err());
    }

    #[test]
    fn normalize_gives_unit_vectors_and_keeps_zero() {
        let mut v = [3.0, 4.0];
        normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut z = [0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, [0.0, 0.0]);
    }
}
