//! Composed image retrieval (CIRR, FashionIQ): a query is (reference image, modification text),
//! the answer one target image of a gallery.
//!
//! - CIRR: the reference image's own score is set to -1 before ranking (the E5-V code, after
//!   SEARLE). For L2-normalised embeddings -1 is the lowest possible cosine, so this excludes the
//!   reference, except that a candidate scoring exactly -1 would tie with it.
//! - CIRR subset: the target is ranked only among the query's `img_set.members` minus the
//!   reference (5 candidates in CIRR), cut-offs 1, 2, 3.
//! - FashionIQ: plain ranking over the category's gallery, nothing excluded.
//!
//! Ranks count strictly greater scores (see [`super::recall`] on ties).

use e5v_core::Embeddings;

use super::recall::{count_greater, top_k_indices};
use super::scoring::{ScoreOptions, map_score_rows};
use crate::error::{EvalError, Result};

/// CIRR cut-offs (the paper reports R@1, R@5, R@10; R@50 is CIRR's fourth).
pub const CIRR_KS: [usize; 4] = [1, 5, 10, 50];
/// CIRR subset cut-offs.
pub const CIRR_SUBSET_KS: [usize; 3] = [1, 2, 3];
/// FashionIQ cut-offs.
pub const FASHIONIQ_KS: [usize; 2] = [10, 50];

/// The score given to a CIRR query's own reference image.
pub const CIRR_REFERENCE_SCORE: f32 = -1.0;

/// Checks that `indices` has one gallery index per query.
fn check_indices(
    what: &str,
    indices: &[usize],
    queries: &Embeddings,
    gallery: &Embeddings,
) -> Result<()> {
    if indices.len() != queries.len() {
        return Err(EvalError::InvalidArgument(format!(
            "{} queries but {} {what}",
            queries.len(),
            indices.len()
        )));
    }
    if let Some((q, &i)) = indices
        .iter()
        .enumerate()
        .find(|(_, i)| **i >= gallery.len())
    {
        return Err(EvalError::InvalidArgument(format!(
            "query {q}: {what} index {i} is outside the gallery of {}",
            gallery.len()
        )));
    }
    Ok(())
}

/// Rank of each CIRR target in the whole gallery, with the reference's score set to
/// [`CIRR_REFERENCE_SCORE`].
pub fn cirr_ranks(
    queries: &Embeddings,
    gallery: &Embeddings,
    references: &[usize],
    targets: &[usize],
    options: &ScoreOptions,
) -> Result<Vec<usize>> {
    check_indices("references", references, queries, gallery)?;
    check_indices("targets", targets, queries, gallery)?;
    map_score_rows(queries, gallery, options, |q, scores| {
        scores[references[q]] = CIRR_REFERENCE_SCORE;
        count_greater(scores, scores[targets[q]])
    })
}

/// The `k` best gallery indices of each CIRR query (the reference scored
/// [`CIRR_REFERENCE_SCORE`]), best first, ties to the lower index: the test-server submission
/// uses `k = 50`.
pub fn cirr_top_k(
    queries: &Embeddings,
    gallery: &Embeddings,
    references: &[usize],
    k: usize,
    options: &ScoreOptions,
) -> Result<Vec<Vec<usize>>> {
    check_indices("references", references, queries, gallery)?;
    map_score_rows(queries, gallery, options, |q, scores| {
        scores[references[q]] = CIRR_REFERENCE_SCORE;
        top_k_indices(scores, k)
    })
}

/// Scores of each query's subset candidates (`members` without the reference), with the
/// candidates' gallery indices.
fn subset_scores<'a>(
    queries: &'a Embeddings,
    gallery: &'a Embeddings,
    references: &'a [usize],
    members: &'a [Vec<usize>],
) -> Result<impl Iterator<Item = (Vec<usize>, Vec<f32>)> + 'a> {
    check_indices("references", references, queries, gallery)?;
    if members.len() != queries.len() {
        return Err(EvalError::InvalidArgument(format!(
            "{} queries but {} member sets",
            queries.len(),
            members.len()
        )));
    }
    if queries.dim() != gallery.dim() {
        return Err(EvalError::InvalidArgument(
            "query and gallery dims differ".into(),
        ));
    }
    for (q, set) in members.iter().enumerate() {
        if let Some(&m) = set.iter().find(|&&m| m >= gallery.len()) {
            return Err(EvalError::InvalidArgument(format!(
                "query {q}: member index {m} is outside the gallery"
            )));
        }
    }
    Ok(queries
        .rows()
        .zip(references)
        .zip(members)
        .map(|((query, &reference), set)| {
            let candidates: Vec<usize> = set.iter().copied().filter(|&m| m != reference).collect();
            let scores = candidates
                .iter()
                .map(|&m| {
                    gallery
                        .get(m)
                        .map_or(f32::NEG_INFINITY, |g| Embeddings::dot(query, g))
                })
                .collect();
            (candidates, scores)
        }))
}

/// Rank of each CIRR target among its query's `members` minus the reference. The target must
/// be one of the members.
pub fn cirr_subset_ranks(
    queries: &Embeddings,
    gallery: &Embeddings,
    references: &[usize],
    targets: &[usize],
    members: &[Vec<usize>],
) -> Result<Vec<usize>> {
    check_indices("targets", targets, queries, gallery)?;
    subset_scores(queries, gallery, references, members)?
        .zip(targets)
        .enumerate()
        .map(|(q, ((candidates, scores), target))| {
            let pos = candidates.iter().position(|c| c == target).ok_or_else(|| {
                EvalError::InvalidArgument(format!(
                    "query {q}: target {target} is not a subset member (other than the reference)"
                ))
            })?;
            Ok(count_greater(&scores, scores[pos]))
        })
        .collect()
}

/// The `k` best subset candidates of each CIRR query (gallery indices, best first, ties to the
/// earlier member): the subset submission uses `k = 3`.
pub fn cirr_subset_top_k(
    queries: &Embeddings,
    gallery: &Embeddings,
    references: &[usize],
    members: &[Vec<usize>],
    k: usize,
) -> Result<Vec<Vec<usize>>> {
    Ok(subset_scores(queries, gallery, references, members)?
        .map(|(candidates, scores)| {
            top_k_indices(&scores, k)
                .into_iter()
                .map(|i| candidates[i])
                .collect()
        })
        .collect())
}

/// Rank of each FashionIQ target in the category's gallery (nothing excluded).
pub fn fashioniq_ranks(
    queries: &Embeddings,
    gallery: &Embeddings,
    targets: &[usize],
    options: &ScoreOptions,
) -> Result<Vec<usize>> {
    check_indices("targets", targets, queries, gallery)?;
    map_score_rows(queries, gallery, options, |q, scores| {
        count_greater(scores, scores[targets[q]])
    })
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;
    use crate::metrics::recall::recall_at_ks;
    use crate::metrics::test_util::random_unit_rows;

    fn emb(dim: usize, data: &[f32]) -> Embeddings {
        Embeddings::from_matrix(dim, data.to_vec()).expect("valid")
    }

    /// Gallery of 4 images in R^2; scores are hand-computed.
    fn gallery() -> Embeddings {
        emb(2, &[1.0, 0.0, 0.0, 1.0, 0.6, 0.8, -1.0, 0.0])
    }

    #[test]
    fn cirr_excludes_reference() {
        // Query (1, 0): scores [1, 0, .6, -1].
        let q = emb(2, &[1.0, 0.0, 1.0, 0.0]);
        let opts = ScoreOptions::new();
        // Reference 0 (score 1 -> -1): target 2 ranks first.
        assert_eq!(
            cirr_ranks(&q, &gallery(), &[0, 1], &[2, 2], &opts).expect("ranks"),
            vec![0, 1]
        );
        // Target 3 has score -1 = the reference's new score: a tie, counted optimistically.
        assert_eq!(
            cirr_ranks(&q, &gallery(), &[0, 0], &[3, 1], &opts).expect("ranks"),
            vec![2, 1]
        );
        assert_eq!(
            cirr_top_k(&q, &gallery(), &[0, 2], 3, &opts).expect("top"),
            vec![vec![2, 1, 0], vec![0, 1, 2]]
        );
        // Without exclusion (FashionIQ), the reference is a normal candidate.
        assert_eq!(
            fashioniq_ranks(&q, &gallery(), &[2, 3], &opts).expect("ranks"),
            vec![1, 3]
        );
    }

    #[test]
    fn cirr_subset() {
        // Query (0, 1): scores [0, 1, .8, 0].
        let q = emb(2, &[0.0, 1.0, 0.0, 1.0]);
        let members = vec![vec![0, 1, 2, 3], vec![3, 2, 1]];
        // Query 0: reference 1 is dropped, candidates [0, 2, 3] scores [0, .8, 0]; target 0 ties
        // with 3 -> rank 1. Query 1: reference 0 (not a member), candidates [3, 2, 1]; target 2 -> 1.
        let ranks = cirr_subset_ranks(&q, &gallery(), &[1, 0], &[0, 2], &members).expect("ranks");
        assert_eq!(ranks, vec![1, 1]);
        let top = cirr_subset_top_k(&q, &gallery(), &[1, 0], &members, 2).expect("top");
        assert_eq!(top, vec![vec![2, 0], vec![1, 2]]);
        // The reference itself is never a valid target.
        assert!(cirr_subset_ranks(&q, &gallery(), &[1, 0], &[1, 2], &members).is_err());
        // Out-of-range member.
        assert!(cirr_subset_ranks(&q, &gallery(), &[1, 0], &[0, 2], &[vec![0], vec![9]]).is_err());
    }

    #[test]
    fn argument_checks() {
        let q = emb(2, &[1.0, 0.0]);
        let opts = ScoreOptions::new();
        assert!(cirr_ranks(&q, &gallery(), &[0, 1], &[2], &opts).is_err());
        assert!(cirr_ranks(&q, &gallery(), &[4], &[2], &opts).is_err());
        assert!(fashioniq_ranks(&q, &gallery(), &[7], &opts).is_err());
    }

    /// Blocked ranks and top-k against a naive full score matrix.
    #[test]
    fn blocked_matches_naive() {
        let (n_q, n_g, dim) = (53, 41, 12);
        let q = random_unit_rows(n_q, dim, 3);
        let g = random_unit_rows(n_g, dim, 4);
        let refs: Vec<usize> = (0..n_q).map(|i| (i * 7) % n_g).collect();
        let targets: Vec<usize> = (0..n_q).map(|i| (i * 11 + 3) % n_g).collect();
        let mut naive_ranks = Vec::new();
        let mut naive_top = Vec::new();
        for (i, qr) in q.rows().enumerate() {
            let mut s: Vec<f32> = g.rows().map(|gr| Embeddings::dot(qr, gr)).collect();
            s[refs[i]] = -1.0;
            let mut order: Vec<usize> = (0..n_g).collect();
            order.sort_by(|a, b| s[*b].total_cmp(&s[*a]).then(a.cmp(b)));
            naive_ranks.push(
                order
                    .iter()
                    .position(|&j| j == targets[i])
                    .expect("present"),
            );
            naive_top.push(order[..10].to_vec());
        }
        for (block, threads) in [(256, 1), (5, 2), (16, 5)] {
            let opts = ScoreOptions::new()
                .with_block_rows(NonZeroUsize::new(block).expect("nz"))
                .with_threads(NonZeroUsize::new(threads).expect("nz"));
            assert_eq!(
                cirr_ranks(&q, &g, &refs, &targets, &opts).expect("ranks"),
                naive_ranks
            );
            assert_eq!(
                cirr_top_k(&q, &g, &refs, 10, &opts).expect("top"),
                naive_top
            );
        }
        let r = recall_at_ks(&naive_ranks, &CIRR_KS).expect("recall");
        assert_eq!(r.len(), 4);
        assert_eq!(r[3].percent, 100.0);
    }
}
