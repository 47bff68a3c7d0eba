//! A row-major matrix of embeddings, the input of every metric.

use crate::error::{EvalError, Result};

/// `rows() x dim()` embeddings stored row-major in one `Vec<f32>`.
///
/// The retrieval metrics score with plain dot products, so rows should be L2-normalised (E5-V's
/// protocol); [`Embeddings::l2_normalised`] does that. All values are finite by construction.
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    dim: usize,
    data: Vec<f32>,
}

impl Embeddings {
    /// Wraps row-major `data` of rows of length `dim`.
    ///
    /// Fails with [`EvalError::InvalidArgument`] if `dim` is 0, `data.len()` is not a multiple
    /// of `dim`, or a value is NaN or infinite.
    pub fn new(dim: usize, data: Vec<f32>) -> Result<Self> {
        if dim == 0 {
            return Err(EvalError::InvalidArgument(
                "embedding dim must be > 0".into(),
            ));
        }
        if !data.len().is_multiple_of(dim) {
            return Err(EvalError::InvalidArgument(format!(
                "{} values are not a whole number of rows of dim {dim}",
                data.len()
            )));
        }
        if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
            return Err(EvalError::InvalidArgument(format!(
                "embedding row {} has a non-finite value",
                pos / dim
            )));
        }
        Ok(Self { dim, data })
    }

    /// Stacks rows of equal length `dim` (needed to tell the dim of an empty matrix).
    pub fn from_rows<R: AsRef<[f32]>>(
        dim: usize,
        rows: impl IntoIterator<Item = R>,
    ) -> Result<Self> {
        let mut data = Vec::new();
        for (i, row) in rows.into_iter().enumerate() {
            let row = row.as_ref();
            if row.len() != dim {
                return Err(EvalError::InvalidArgument(format!(
                    "row {i} has {} values, expected {dim}",
                    row.len()
                )));
            }
            data.extend_from_slice(row);
        }
        Self::new(dim, data)
    }

    /// Length of one embedding.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of embeddings.
    pub fn rows(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Row `i`, or `None` past the end.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        let start = i.checked_mul(self.dim)?;
        self.data.get(start..start.checked_add(self.dim)?)
    }

    /// Iterates over the rows.
    pub fn iter_rows(&self) -> impl ExactSizeIterator<Item = &[f32]> + '_ {
        self.data.chunks_exact(self.dim)
    }

    /// The row-major values.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Each row divided by its L2 norm (all-zero rows stay zero).
    pub fn l2_normalised(mut self) -> Self {
        for row in self.data.chunks_exact_mut(self.dim) {
            let norm = row
                .iter()
                .map(|v| f64::from(*v) * f64::from(*v))
                .sum::<f64>()
                .sqrt();
            if norm > 0.0 {
                for v in row.iter_mut() {
                    *v = (f64::from(*v) / norm) as f32;
                }
            }
        }
        self
    }

    /// Element-wise sum of two matrices of the same shape (FashionIQ sums the raw embeddings
    /// of both caption orders before normalising).
    pub fn add(&self, other: &Embeddings) -> Result<Embeddings> {
        if self.dim != other.dim || self.data.len() != other.data.len() {
            return Err(EvalError::InvalidArgument(format!(
                "cannot add {}x{} and {}x{} embeddings",
                self.rows(),
                self.dim,
                other.rows(),
                other.dim
            )));
        }
        let data = self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| a + b)
            .collect();
        Embeddings::new(self.dim, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_checks() {
        assert!(Embeddings::new(0, vec![]).is_err());
        assert!(Embeddings::new(2, vec![1.0, 2.0, 3.0]).is_err());
        assert!(Embeddings::new(1, vec![f32::NAN]).is_err());
        let e = Embeddings::new(2, vec![1.0, 2.0, 3.0, 4.0]).expect("valid");
        assert_eq!(e.rows(), 2);
        assert_eq!(e.row(1), Some(&[3.0, 4.0][..]));
        assert_eq!(e.row(2), None);
        assert!(Embeddings::from_rows(2, [[1.0f32, 2.0].as_slice(), &[3.0]]).is_err());
        assert_eq!(
            Embeddings::from_rows::<Vec<f32>>(3, [])
                .expect("empty")
                .rows(),
            0
        );
    }

    #[test]
    fn normalise_and_add() {
        let e = Embeddings::new(2, vec![3.0, 4.0, 0.0, 0.0])
            .expect("valid")
            .l2_normalised();
        assert_eq!(e.as_slice(), &[0.6, 0.8, 0.0, 0.0]);
        let s = e.add(&e).expect("same shape");
        assert_eq!(s.as_slice(), &[1.2, 1.6, 0.0, 0.0]);
        let other = Embeddings::new(1, vec![1.0]).expect("valid");
        assert!(e.add(&other).is_err());
    }
}
