//! Image-text retrieval runs: Flickr30K, COCO, their image-image variants, and the mini set.

use std::path::Path;

use burn::tensor::backend::Backend;
use e5v_core::Preset;

use super::embed::{Item, Session};
use super::{EvalTask, RunConfig, limit};
use crate::datasets::{
    ImageTextDataset, KARPATHY_CAPTIONS_PER_IMAGE, KarpathySplit, MINI_IMAGES_DIR, load_karpathy,
    load_mini,
};
use crate::error::{EvalError, Result};
use crate::metrics::{IMAGE_TEXT_KS, image_text_recall};
use crate::report::TaskReport;
use crate::task::{Metric, Task};

/// How the caption side is embedded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum CaptionSide {
    /// As text, with the text prompt.
    Text,
    /// Drawn as an image ([`crate::render`]), with the image prompt.
    Rendered,
}

/// Embeds a retrieval set and computes Recall@1/5/10 in both directions.
pub(super) fn retrieval<B: Backend>(
    session: &mut Session<'_, B>,
    config: &RunConfig,
    data: &ImageTextDataset,
    image_root: &Path,
    side: CaptionSide,
    task: Task,
) -> Result<TaskReport> {
    let name = task.display_name();
    let image_items: Vec<Item> = data
        .images
        .iter()
        .map(|im| Item::file(image_root.join(&im.path)))
        .collect();
    let images = session
        .embed(
            &format!("{name} images"),
            &Preset::Image.template(),
            &image_items,
        )?
        .normalized();
    let captions = match side {
        CaptionSide::Text => {
            let items: Vec<Item> = data.captions.iter().map(Item::text).collect();
            session.embed(
                &format!("{name} captions"),
                &Preset::Text.template(),
                &items,
            )?
        }
        CaptionSide::Rendered => {
            let items: Vec<Item> = data.captions.iter().map(Item::rendered).collect();
            session.embed(
                &format!("{name} rendered captions"),
                &Preset::Image.template(),
                &items,
            )?
        }
    }
    .normalized();
    let recall = image_text_recall(
        &captions,
        &images,
        &data.caption_to_image,
        &IMAGE_TEXT_KS,
        &config.score,
    )?;
    let mut report = TaskReport::new(task)
        .with_recalls(Metric::TextToImage, &recall.text_to_image)
        .with_recalls(Metric::ImageToText, &recall.image_to_text)
        .with_note(format!(
            "{} images, {} captions",
            data.images.len(),
            data.captions.len()
        ));
    if side == CaptionSide::Rendered {
        report = report.with_note(
            "captions drawn with Liberation Sans (Arial's metrics), not Arial: pixels differ slightly",
        );
    }
    Ok(report)
}

/// Flickr30K or COCO (Karpathy test split), as text or rendered captions.
pub(super) fn karpathy<B: Backend>(
    session: &mut Session<'_, B>,
    config: &RunConfig,
    task: EvalTask,
) -> Result<TaskReport> {
    use CaptionSide::{Rendered, Text};
    const FLICKR: (&str, Option<&str>) = ("dataset_flickr30k.json", Some("flickr30k-images"));
    // COCO's Karpathy file gives `filepath/filename` relative to the data folder.
    const COCO: (&str, Option<&str>) = ("dataset_coco.json", None);
    let ((json, images), side, report_task) = match task {
        EvalTask::Flickr30k => (FLICKR, Text, Task::Flickr30k),
        EvalTask::Flickr30kImageImage => (FLICKR, Rendered, Task::Flickr30kImageImage),
        EvalTask::Coco => (COCO, Text, Task::Coco),
        EvalTask::CocoImageImage => (COCO, Rendered, Task::CocoImageImage),
        other => {
            return Err(EvalError::InvalidArgument(format!(
                "{} is not a Flickr30K/COCO task",
                other.name()
            )));
        }
    };
    let dir = &config.data_dir;
    let json = dir.join(json);
    let image_root = images.map_or_else(|| dir.clone(), |images| dir.join(images));
    let mut data = load_karpathy(&json, KarpathySplit::Test, KARPATHY_CAPTIONS_PER_IMAGE)?;
    if let Some(n) = config.limit {
        limit::image_text(&mut data, n);
    }
    retrieval(session, config, &data, &image_root, side, report_task)
}

/// The mini set's text-image retrieval.
pub(super) fn mini<B: Backend>(
    session: &mut Session<'_, B>,
    config: &RunConfig,
    dir: &Path,
) -> Result<TaskReport> {
    let mut data = load_mini(dir)?;
    if let Some(n) = config.limit {
        limit::image_text(&mut data, n);
    }
    retrieval(
        session,
        config,
        &data,
        &dir.join(MINI_IMAGES_DIR),
        CaptionSide::Text,
        Task::Mini,
    )
}
