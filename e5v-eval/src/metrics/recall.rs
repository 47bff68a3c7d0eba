//! Recall@K from ranks, and ranking primitives shared by the retrieval metrics.
//!
//! # Ties
//! A rank is the number of candidates with a *strictly greater* score than the positive
//! (0 = first), so a positive tied with negatives counts as ranked before them (optimistic).
//! With float embeddings exact ties are rare; the reference (`torch.topk`) breaks them in an
//! unspecified order. Top-k lists ([`top_k_indices`]) break ties by the lower gallery index.

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// Recall at one cut-off, in percent (the paper's unit).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecallAtK {
    /// The cut-off.
    pub k: usize,
    /// Share of queries whose positive is ranked below `k`, x100.
    pub percent: f64,
}

/// Recall@k for each `k`: the percentage of `ranks` (0-based, see the module docs) below `k`.
///
/// Fails on empty `ranks` or a `k` of 0.
pub fn recall_at_ks(ranks: &[usize], ks: &[usize]) -> Result<Vec<RecallAtK>> {
    if ranks.is_empty() {
        return Err(EvalError::InvalidArgument("recall of zero queries".into()));
    }
    ks.iter()
        .map(|&k| {
            if k == 0 {
                return Err(EvalError::InvalidArgument(
                    "recall cut-off k must be > 0".into(),
                ));
            }
            let hits = ranks.iter().filter(|&&r| r < k).count();
            Ok(RecallAtK {
                k,
                percent: 100.0 * hits as f64 / ranks.len() as f64,
            })
        })
        .collect()
}

/// Averages recalls over several runs with the same cut-offs (FashionIQ: the mean over the
/// dress, shirt and toptee categories).
pub fn mean_recalls(runs: &[Vec<RecallAtK>]) -> Result<Vec<RecallAtK>> {
    let Some(first) = runs.first() else {
        return Err(EvalError::InvalidArgument(
            "mean of zero recall runs".into(),
        ));
    };
    let mut sums: Vec<RecallAtK> = first
        .iter()
        .map(|r| RecallAtK {
            k: r.k,
            percent: 0.0,
        })
        .collect();
    for run in runs {
        if run.len() != sums.len() || run.iter().zip(&sums).any(|(a, b)| a.k != b.k) {
            return Err(EvalError::InvalidArgument(
                "recall runs have different cut-offs".into(),
            ));
        }
        for (sum, r) in sums.iter_mut().zip(run) {
            sum.percent += r.percent;
        }
    }
    for sum in &mut sums {
        sum.percent /= runs.len() as f64;
    }
    Ok(sums)
}

/// Number of scores strictly greater than `threshold`.
pub(crate) fn count_greater(scores: &[f32], threshold: f32) -> usize {
    scores.iter().filter(|&&s| s > threshold).count()
}

/// Indices of the `k` highest scores (fewer if `scores` is shorter), best first; ties go to the
/// lower index.
pub(crate) fn top_k_indices(scores: &[f32], k: usize) -> Vec<usize> {
    let order = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    let k = k.min(idx.len());
    if k == 0 {
        return Vec::new();
    }
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, order);
        idx.truncate(k);
    }
    idx.sort_unstable_by(order);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_from_ranks() {
        let r = recall_at_ks(&[0, 1, 4, 9, 10], &[1, 5, 10]).expect("ok");
        let pct: Vec<f64> = r.iter().map(|r| r.percent).collect();
        assert_eq!(pct, vec![20.0, 60.0, 80.0]);
        assert_eq!(r[2].k, 10);
        assert!(recall_at_ks(&[], &[1]).is_err());
        assert!(recall_at_ks(&[0], &[0]).is_err());
    }

    #[test]
    fn mean_of_runs() {
        let a = vec![
            RecallAtK {
                k: 10,
                percent: 30.0,
            },
            RecallAtK {
                k: 50,
                percent: 60.0,
            },
        ];
        let b = vec![
            RecallAtK {
                k: 10,
                percent: 40.0,
            },
            RecallAtK {
                k: 50,
                percent: 70.0,
            },
        ];
        let m = mean_recalls(&[a.clone(), b]).expect("ok");
        assert_eq!(
            m,
            vec![
                RecallAtK {
                    k: 10,
                    percent: 35.0
                },
                RecallAtK {
                    k: 50,
                    percent: 65.0
                }
            ]
        );
        assert!(mean_recalls(&[]).is_err());
        assert!(mean_recalls(&[a, vec![RecallAtK { k: 5, percent: 1.0 }]]).is_err());
    }

    #[test]
    fn top_k_order_and_ties() {
        let s = [0.1, 0.9, 0.5, 0.9, -1.0, 0.5];
        assert_eq!(top_k_indices(&s, 3), vec![1, 3, 2]);
        assert_eq!(top_k_indices(&s, 4), vec![1, 3, 2, 5]);
        assert_eq!(top_k_indices(&s, 10), vec![1, 3, 2, 5, 0, 4]);
        assert!(top_k_indices(&s, 0).is_empty());
        assert_eq!(count_greater(&s, 0.5), 2);
        assert_eq!(count_greater(&s, 0.9), 0);
    }
}
