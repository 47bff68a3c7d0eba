//! Semantic textual similarity: cosine of each sentence pair, correlated with the gold scores.
//!
//! The paper reports Spearman x100: for STS12-16 over the concatenation of all subsets of the
//! year ("all"), for STS-B and SICK-R over the test set, and the mean of those seven numbers.

use e5v_core::Embeddings;
use serde::{Deserialize, Serialize};

use super::correlation::{pearson, spearman};
use crate::error::{EvalError, Result};

/// Correlations of predicted with gold similarities, x100.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StsScore {
    /// Spearman's rho x100 (the paper's metric).
    pub spearman: f64,
    /// Pearson's r x100.
    pub pearson: f64,
}

/// Cosine similarity of row `i` of `a` with row `i` of `b`, in f64 (the reference uses
/// SentEval's cosine on the raw embeddings; normalised or not gives the same cosine). A zero
/// row gives 0, as SentEval's `nan_to_num` does.
pub fn pair_cosines(a: &Embeddings, b: &Embeddings) -> Result<Vec<f64>> {
    if a.dim() != b.dim() || a.len() != b.len() {
        return Err(EvalError::InvalidArgument(format!(
            "sentence pairs need equal shapes, got {}x{} and {}x{}",
            a.len(),
            a.dim(),
            b.len(),
            b.dim()
        )));
    }
    Ok(a.rows()
        .zip(b.rows())
        .map(|(x, y)| {
            let (mut xy, mut xx, mut yy) = (0.0f64, 0.0f64, 0.0f64);
            for (p, q) in x.iter().zip(y) {
                let (p, q) = (f64::from(*p), f64::from(*q));
                xy += p * q;
                xx += p * p;
                yy += q * q;
            }
            let denom = (xx * yy).sqrt();
            if denom > 0.0 { xy / denom } else { 0.0 }
        })
        .collect())
}

/// Spearman and Pearson x100 of `predicted` against `gold`.
pub fn sts_score(predicted: &[f64], gold: &[f64]) -> Result<StsScore> {
    Ok(StsScore {
        spearman: 100.0 * spearman(predicted, gold)?,
        pearson: 100.0 * pearson(predicted, gold)?,
    })
}

/// The reference's "Avg.": each score is first rounded to 2 decimals (it formats them with
/// `"%.2f"`), then averaged. Fails on an empty slice.
pub fn sts_average(scores_x100: &[f64]) -> Result<f64> {
    if scores_x100.is_empty() {
        return Err(EvalError::InvalidArgument(
            "average of zero STS scores".into(),
        ));
    }
    let rounded = scores_x100.iter().map(|s| {
        // Rust's `{:.2}` rounds the exact binary value like Python's `%.2f`.
        let text = format!("{s:.2}");
        text.parse::<f64>().unwrap_or(*s)
    });
    Ok(rounded.sum::<f64>() / scores_x100.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosines() {
        let a = Embeddings::from_matrix(2, vec![3.0, 4.0, 1.0, 0.0, 0.0, 0.0]).expect("a");
        let b = Embeddings::from_matrix(2, vec![6.0, 8.0, 0.0, 2.0, 1.0, 1.0]).expect("b");
        assert_eq!(pair_cosines(&a, &b).expect("cos"), vec![1.0, 0.0, 0.0]);
        let c = Embeddings::from_matrix(2, vec![1.0, 0.0]).expect("c");
        assert!(pair_cosines(&a, &c).is_err());
    }

    #[test]
    fn score_and_average() {
        let s = sts_score(&[0.1, 0.4, 0.3, 0.9], &[1.0, 2.0, 3.0, 4.0]).expect("score");
        assert!((s.spearman - 80.0).abs() < 1e-9);
        // 85.125 is exact in binary and rounds half to even -> 85.12; 70.006 -> 70.01.
        let avg = sts_average(&[85.125, 70.006]).expect("avg");
        assert!((avg - (85.12 + 70.01) / 2.0).abs() < 1e-12);
        assert!(sts_average(&[]).is_err());
    }
}
