//! CIRR test-server submission files.
//!
//! Format (CIRR's `Test-split_server.md`): one JSON object with `"version": "rc2"`,
//! `"metric": "recall"` or `"recall_subset"`, and for every query `"<pairid>": [image names]`,
//! the top 50 of the gallery (recall) or the top 3 of the query's subset (recall_subset), best
//! first.

use std::path::Path;

use serde_json::{Map, Value};

use super::cirr::CirrDataset;
use crate::error::{EvalError, Result};

/// Which test-server metric a submission is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubmissionMetric {
    /// Recall@K over the whole gallery: top 50 per query.
    Recall,
    /// Recall_subset@K: top 3 of the query's subset.
    RecallSubset,
}

impl SubmissionMetric {
    /// The `"metric"` value.
    pub fn name(self) -> &'static str {
        match self {
            SubmissionMetric::Recall => "recall",
            SubmissionMetric::RecallSubset => "recall_subset",
        }
    }

    /// How many names each query lists.
    pub fn top_k(self) -> usize {
        match self {
            SubmissionMetric::Recall => 50,
            SubmissionMetric::RecallSubset => 3,
        }
    }
}

/// Builds the submission JSON text. `rankings[i]` are gallery indices for query `i`, best first
/// (from `cirr_top_k` / `cirr_subset_top_k`); the first [`SubmissionMetric::top_k`] are written
/// (all candidates when a miniature gallery or subset has fewer).
///
/// Fails with [`EvalError::InvalidArgument`] if the number of rankings differs from the number
/// of queries, a ranking is too short, or an index is outside the gallery.
pub fn cirr_submission_json(
    dataset: &CirrDataset,
    rankings: &[Vec<usize>],
    metric: SubmissionMetric,
) -> Result<String> {
    if rankings.len() != dataset.queries.len() {
        return Err(EvalError::InvalidArgument(format!(
            "{} rankings for {} queries",
            rankings.len(),
            dataset.queries.len()
        )));
    }
    let k = metric.top_k();
    let mut map = Map::new();
    map.insert("version".into(), Value::from("rc2"));
    map.insert("metric".into(), Value::from(metric.name()));
    for (query, ranking) in dataset.queries.iter().zip(rankings) {
        // Fewer than k candidates exist only in miniature galleries: then all are listed.
        let candidates = match metric {
            SubmissionMetric::Recall => dataset.images.len(),
            SubmissionMetric::RecallSubset => query
                .members
                .iter()
                .filter(|&&m| m != query.reference)
                .count(),
        };
        let needed = k.min(candidates);
        if ranking.len() < needed {
            return Err(EvalError::InvalidArgument(format!(
                "pairid {}: {} ranked images, {} needed",
                query.pairid,
                ranking.len(),
                needed
            )));
        }
        let names = ranking[..needed]
            .iter()
            .map(|&i| {
                dataset
                    .images
                    .get(i)
                    .map(|im| Value::from(im.name.as_str()))
                    .ok_or_else(|| {
                        EvalError::InvalidArgument(format!(
                            "pairid {}: gallery index {i} out of range",
                            query.pairid
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        map.insert(query.pairid.to_string(), Value::Array(names));
    }
    serde_json::to_string(&Value::Object(map))
        .map_err(|e| EvalError::InvalidArgument(format!("cannot serialise the submission: {e}")))
}

/// Writes [`cirr_submission_json`] to `path`.
pub fn write_cirr_submission(
    path: &Path,
    dataset: &CirrDataset,
    rankings: &[Vec<usize>],
    metric: SubmissionMetric,
) -> Result<()> {
    let text = cirr_submission_json(dataset, rankings, metric)?;
    std::fs::write(path, text).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}
