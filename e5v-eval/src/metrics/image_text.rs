//! Image-text retrieval (Flickr30K, COCO): several captions per image.
//!
//! Scores are `caption . image`. Text->image: a caption's query hits at k if its image ranks
//! below k among all images. Image->text: an image hits at k if *any* of its captions ranks below
//! k among all captions, i.e. its rank is the rank of its best-scoring caption. Ranks count
//! strictly greater scores (see [`super::recall`] on ties). The image-image variant (captions
//! rendered as images) uses the same functions with the rendered-caption embeddings as `texts`.

use e5v_core::Embeddings;
use serde::{Deserialize, Serialize};

use super::recall::{RecallAtK, count_greater, recall_at_ks};
use super::scoring::{ScoreOptions, map_score_rows};
use crate::error::{EvalError, Result};

/// The paper's cut-offs for Flickr30K and COCO.
pub const IMAGE_TEXT_KS: [usize; 3] = [1, 5, 10];

/// Both directions of image-text retrieval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageTextRecall {
    /// Text->image recall, one entry per k.
    pub text_to_image: Vec<RecallAtK>,
    /// Image->text recall, one entry per k.
    pub image_to_text: Vec<RecallAtK>,
}

/// Checks `caption_to_image` and returns, per image, its captions.
fn captions_per_image(
    texts: &Embeddings,
    images: &Embeddings,
    caption_to_image: &[usize],
) -> Result<Vec<Vec<usize>>> {
    if caption_to_image.len() != texts.len() {
        return Err(EvalError::InvalidArgument(format!(
            "{} caption embeddings but {} caption_to_image entries",
            texts.len(),
            caption_to_image.len()
        )));
    }
    let mut per_image = vec![Vec::new(); images.len()];
    for (caption, &image) in caption_to_image.iter().enumerate() {
        per_image
            .get_mut(image)
            .ok_or_else(|| {
                EvalError::InvalidArgument(format!(
                    "caption {caption} belongs to image {image}, but there are {} images",
                    images.len()
                ))
            })?
            .push(caption);
    }
    Ok(per_image)
}

/// Text->image rank of every caption: the number of images scoring strictly higher than the
/// caption's own image `caption_to_image[i]`.
pub fn text_to_image_ranks(
    texts: &Embeddings,
    images: &Embeddings,
    caption_to_image: &[usize],
    options: &ScoreOptions,
) -> Result<Vec<usize>> {
    captions_per_image(texts, images, caption_to_image)?;
    map_score_rows(texts, images, options, |caption, scores| {
        count_greater(scores, scores[caption_to_image[caption]])
    })
}

/// Image->text rank of every image: the number of captions scoring strictly higher than the
/// image's best-scoring own caption. Every image needs at least one caption.
pub fn image_to_text_ranks(
    images: &Embeddings,
    texts: &Embeddings,
    caption_to_image: &[usize],
    options: &ScoreOptions,
) -> Result<Vec<usize>> {
    let per_image = captions_per_image(texts, images, caption_to_image)?;
    if let Some(image) = per_image.iter().position(Vec::is_empty) {
        return Err(EvalError::InvalidArgument(format!(
            "image {image} has no caption"
        )));
    }
    map_score_rows(images, texts, options, |image, scores| {
        let best = per_image[image]
            .iter()
            .map(|&c| scores[c])
            .fold(f32::NEG_INFINITY, f32::max);
        count_greater(scores, best)
    })
}

/// Recall@k in both directions (`ks` = [`IMAGE_TEXT_KS`] for the paper).
pub fn image_text_recall(
    texts: &Embeddings,
    images: &Embeddings,
    caption_to_image: &[usize],
    ks: &[usize],
    options: &ScoreOptions,
) -> Result<ImageTextRecall> {
    let t2i = text_to_image_ranks(texts, images, caption_to_image, options)?;
    let i2t = image_to_text_ranks(images, texts, caption_to_image, options)?;
    Ok(ImageTextRecall {
        text_to_image: recall_at_ks(&t2i, ks)?,
        image_to_text: recall_at_ks(&i2t, ks)?,
    })
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;
    use crate::metrics::test_util::random_unit_rows;

    fn emb(dim: usize, data: &[f32]) -> Embeddings {
        Embeddings::from_matrix(dim, data.to_vec()).expect("valid")
    }

    /// 3 images on the axes of R^3; 2 captions each.
    #[test]
    fn hand_computed() {
        let images = emb(3, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        // Scores against (img0, img1, img2) are the caption's coordinates.
        let texts = emb(
            3,
            &[
                0.9, 0.1, 0.0, // c0 -> img0: rank 0
                0.2, 0.8, 0.0, // c1 -> img0: rank 1 (img1 higher)
                0.1, 0.7, 0.3, // c2 -> img1: rank 0
                0.6, 0.5, 0.4, // c3 -> img1: rank 1
                0.3, 0.3, 0.2, // c4 -> img2: rank 2
                0.5, 0.1, 0.4, // c5 -> img2: rank 1
            ],
        );
        let c2i = [0, 0, 1, 1, 2, 2];
        let opts = ScoreOptions::new();
        assert_eq!(
            text_to_image_ranks(&texts, &images, &c2i, &opts).expect("t2i"),
            vec![0, 1, 0, 1, 2, 1]
        );
        // img0 column: [.9 .2 .1 .6 .3 .5], own best .9 -> 0.
        // img1 column: [.1 .8 .7 .5 .3 .1], own best .7 (c2) -> c1 higher -> 1.
        // img2 column: [0 0 .3 .4 .2 .4], own best .4 (c5) -> nothing strictly higher -> 0.
        assert_eq!(
            image_to_text_ranks(&images, &texts, &c2i, &opts).expect("i2t"),
            vec![0, 1, 0]
        );
        let r = image_text_recall(&texts, &images, &c2i, &[1, 2], &opts).expect("recall");
        assert!((r.text_to_image[0].percent - 200.0 / 6.0).abs() < 1e-12);
        assert!((r.text_to_image[1].percent - 500.0 / 6.0).abs() < 1e-12);
        assert!((r.image_to_text[0].percent - 200.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.image_to_text[1].percent, 100.0);
    }

    #[test]
    fn ties_are_optimistic() {
        // Two identical images: the caption ties; the rank counts strictly greater scores only.
        let images = emb(2, &[1.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
        let texts = emb(2, &[1.0, 0.0, 0.0, 1.0]);
        let opts = ScoreOptions::new();
        assert_eq!(
            text_to_image_ranks(&texts, &images, &[1, 2], &opts).expect("t2i"),
            vec![0, 0]
        );
        // Image 0 has no caption.
        assert!(image_to_text_ranks(&images, &texts, &[1, 2], &opts).is_err());
        // Tied captions: both images' best captions tie with each other.
        let texts = emb(2, &[1.0, 0.0, 1.0, 0.0]);
        let images = emb(2, &[1.0, 0.0, 0.0, 1.0]);
        assert_eq!(
            image_to_text_ranks(&images, &texts, &[0, 1], &opts).expect("i2t"),
            vec![0, 0]
        );
    }

    #[test]
    fn bad_mappings() {
        let images = emb(2, &[1.0, 0.0]);
        let texts = emb(2, &[1.0, 0.0, 0.0, 1.0]);
        let opts = ScoreOptions::new();
        assert!(text_to_image_ranks(&texts, &images, &[0], &opts).is_err());
        assert!(text_to_image_ranks(&texts, &images, &[0, 1], &opts).is_err());
    }

    /// The blocked, threaded scorer against a naive full score matrix on random data.
    #[test]
    fn blocked_matches_naive() {
        let (n_images, per_image, dim) = (37, 5, 16);
        let images = random_unit_rows(n_images, dim, 1);
        let texts = random_unit_rows(n_images * per_image, dim, 2);
        let c2i: Vec<usize> = (0..n_images * per_image).map(|i| i / per_image).collect();
        let full: Vec<Vec<f32>> = texts
            .rows()
            .map(|t| images.rows().map(|i| Embeddings::dot(t, i)).collect())
            .collect();
        let naive_t2i: Vec<usize> = full
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let mut order: Vec<usize> = (0..n_images).collect();
                order.sort_by(|a, b| row[*b].total_cmp(&row[*a]));
                order.iter().position(|&i| i == c2i[c]).expect("present")
            })
            .collect();
        let naive_i2t: Vec<usize> = (0..n_images)
            .map(|i| {
                let col: Vec<f32> = full.iter().map(|row| row[i]).collect();
                let mut order: Vec<usize> = (0..col.len()).collect();
                order.sort_by(|a, b| col[*b].total_cmp(&col[*a]));
                order.iter().position(|&c| c2i[c] == i).expect("present")
            })
            .collect();
        for (block, threads) in [(256, 1), (7, 1), (10, 3), (1, 4)] {
            let opts = ScoreOptions::new()
                .with_block_rows(NonZeroUsize::new(block).expect("nz"))
                .with_threads(NonZeroUsize::new(threads).expect("nz"));
            let t2i = text_to_image_ranks(&texts, &images, &c2i, &opts).expect("t2i");
            let i2t = image_to_text_ranks(&images, &texts, &c2i, &opts).expect("i2t");
            assert_eq!(t2i, naive_t2i);
            assert_eq!(i2t, naive_i2t);
        }
        let r = image_text_recall(&texts, &images, &c2i, &IMAGE_TEXT_KS, &ScoreOptions::new())
            .expect("recall");
        let naive = recall_at_ks(&naive_t2i, &IMAGE_TEXT_KS).expect("naive");
        assert_eq!(r.text_to_image, naive);
    }
}
