//! The paper's published numbers, as data.
//!
//! Only the numbers stated in docs/METHOD.md (section "Evaluation protocols and published
//! numbers") are here: E5-V and CLIP ViT-L on Flickr30K and COCO. Every other cell (R@10, the image-image
//! variants, CIRR, FashionIQ, STS) is `None` from [`published`]: the notes do not state them,
//! and numbers are not filled in from memory. CIRR is only given relative to iSEARLE-XL
//! ([`published_note`]).

use serde::{Deserialize, Serialize};

use crate::task::{Metric, Task};

/// A model whose numbers the paper reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PublishedModel {
    /// E5-V (royokong/e5-v).
    E5V,
    /// CLIP ViT-L, the paper's zero-shot baseline.
    ClipVitL,
}

/// One published number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PublishedNumber {
    /// Whose number.
    pub model: PublishedModel,
    /// On which task.
    pub task: Task,
    /// Which metric.
    pub metric: Metric,
    /// The value (percent).
    pub value: f64,
}

const fn number(model: PublishedModel, task: Task, metric: Metric, value: f64) -> PublishedNumber {
    PublishedNumber {
        model,
        task,
        metric,
        value,
    }
}

/// Every published number this crate knows.
pub const PUBLISHED: &[PublishedNumber] = &[
    number(
        PublishedModel::E5V,
        Task::Flickr30k,
        Metric::TextToImage(1),
        79.5,
    ),
    number(
        PublishedModel::E5V,
        Task::Flickr30k,
        Metric::ImageToText(1),
        88.2,
    ),
    number(
        PublishedModel::E5V,
        Task::Coco,
        Metric::TextToImage(1),
        52.0,
    ),
    number(
        PublishedModel::E5V,
        Task::Coco,
        Metric::ImageToText(1),
        62.0,
    ),
    number(
        PublishedModel::E5V,
        Task::Coco,
        Metric::TextToImage(5),
        76.5,
    ),
    number(
        PublishedModel::E5V,
        Task::Coco,
        Metric::ImageToText(5),
        83.6,
    ),
    number(
        PublishedModel::ClipVitL,
        Task::Flickr30k,
        Metric::TextToImage(1),
        67.3,
    ),
    number(
        PublishedModel::ClipVitL,
        Task::Flickr30k,
        Metric::ImageToText(1),
        87.2,
    ),
    number(
        PublishedModel::ClipVitL,
        Task::Coco,
        Metric::TextToImage(1),
        37.0,
    ),
    number(
        PublishedModel::ClipVitL,
        Task::Coco,
        Metric::ImageToText(1),
        58.1,
    ),
];

/// The published value of `metric` on `task` for `model`, if the paper's number is known here.
pub fn published(model: PublishedModel, task: Task, metric: Metric) -> Option<f64> {
    PUBLISHED
        .iter()
        .find(|n| n.model == model && n.task == task && n.metric == metric)
        .map(|n| n.value)
}

/// What is published about `task` beyond [`PUBLISHED`], if anything.
pub fn published_note(task: Task) -> Option<&'static str> {
    match task {
        Task::CirrVal | Task::CirrTest1 => {
            Some("paper: E5-V +8.50 R@1 / +10.07 R@5 over iSEARLE-XL (no absolute numbers here)")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(
            published(PublishedModel::E5V, Task::Flickr30k, Metric::TextToImage(1)),
            Some(79.5)
        );
        assert_eq!(
            published(PublishedModel::ClipVitL, Task::Coco, Metric::ImageToText(1)),
            Some(58.1)
        );
        assert_eq!(
            published(PublishedModel::ClipVitL, Task::Coco, Metric::ImageToText(5)),
            None
        );
        assert_eq!(
            published(PublishedModel::E5V, Task::Sts12, Metric::Spearman),
            None
        );
        assert!(published_note(Task::CirrVal).is_some());
        assert!(published_note(Task::Coco).is_none());
    }
}
