//! Metrics over embedding matrices.
//!
//! Every metric takes [`e5v_core::Embeddings`] matrices, L2-normalised with
//! [`Embeddings::normalized`](e5v_core::Embeddings::normalized) where the protocol says so.
//!
//! - [`ScoreOptions`]: scoring runs in blocks of query rows (optionally on several threads) and
//!   keeps only ranks or top-k lists, so the full query x gallery score matrix never exists.
//! - Image-text retrieval (Flickr30K, COCO, and the rendered-caption image-image variant):
//!   [`text_to_image_ranks`], [`image_to_text_ranks`], [`image_text_recall`].
//! - Composed retrieval: [`cirr_ranks`] (reference scored -1), [`cirr_subset_ranks`],
//!   [`fashioniq_ranks`]; [`cirr_top_k`] and [`cirr_subset_top_k`] for test-server submissions.
//! - [`recall_at_ks`] turns ranks into Recall@K in percent; [`mean_recalls`] averages runs.
//! - STS: [`pair_cosines`], [`sts_score`] (Spearman / Pearson x100), [`sts_average`];
//!   [`spearman`] (average ranks for ties) and [`pearson`].
//!
//! Ties: a rank is the number of candidates scoring *strictly* higher than the positive
//! (optimistic); top-k lists break ties by the lower gallery index.

mod composed;
mod correlation;
mod image_text;
mod recall;
mod scoring;
mod sts;

pub use composed::{
    CIRR_KS, CIRR_REFERENCE_SCORE, CIRR_SUBSET_KS, FASHIONIQ_KS, cirr_ranks, cirr_subset_ranks,
    cirr_subset_top_k, cirr_top_k, fashioniq_ranks,
};
pub use correlation::{pearson, spearman};
pub use image_text::{
    IMAGE_TEXT_KS, ImageTextRecall, image_text_recall, image_to_text_ranks, text_to_image_ranks,
};
pub use recall::{RecallAtK, mean_recalls, recall_at_ks};
pub use scoring::ScoreOptions;
pub use sts::{StsScore, pair_cosines, sts_average, sts_score};

#[cfg(test)]
pub(crate) mod test_util {
    use e5v_core::Embeddings;

    /// `rows x dim` L2-normalised pseudo-random rows (xorshift, deterministic per seed).
    pub(crate) fn random_unit_rows(rows: usize, dim: usize, seed: u64) -> Embeddings {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let data = (0..rows * dim)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        Embeddings::from_matrix(dim, data)
            .expect("finite")
            .normalized()
    }
}
