//! Composed image retrieval runs: CIRR (val metrics, test1 submissions) and FashionIQ val.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use e5v_core::{Embeddings, FashionCategory, Preset};
use e5v_prompt::fashion_iq_texts;

use super::embed::{Item, Session};
use super::{RunConfig, limit};
use crate::datasets::{
    CirrDataset, CirrSplit, FashionIqCategory, SubmissionMetric, load_cirr, load_fashioniq,
    write_cirr_submission,
};
use crate::error::{EvalError, Result};
use crate::metrics::{
    CIRR_KS, CIRR_SUBSET_KS, FASHIONIQ_KS, cirr_ranks, cirr_subset_ranks, cirr_subset_top_k,
    cirr_top_k, fashioniq_ranks, mean_recalls, recall_at_ks,
};
use crate::report::TaskReport;
use crate::task::{Metric, Task};

/// Where CIRR's split files point: `img_raw/` under the CIRR root if it exists (CIRR's own
/// layout), else the root itself (SEARLE's layout, `./dev/...` next to `captions/`).
fn cirr_image_root(dir: &Path) -> PathBuf {
    let raw = dir.join("img_raw");
    if raw.is_dir() { raw } else { dir.to_path_buf() }
}

/// Gallery and query embeddings (normalised) of a CIRR split.
fn cirr_embeddings<B: Backend>(
    session: &mut Session<'_, B>,
    data: &CirrDataset,
    root: &Path,
) -> Result<(Embeddings, Embeddings)> {
    let split = data.split.name();
    let gallery_items: Vec<Item> = data
        .images
        .iter()
        .map(|im| Item::file(root.join(&im.path)))
        .collect();
    let gallery = session
        .embed(
            &format!("CIRR {split} gallery"),
            &Preset::CirrGallery.template(),
            &gallery_items,
        )?
        .normalized();
    let query_items: Vec<Item> = data
        .queries
        .iter()
        .map(|q| Item::composed(root.join(&data.images[q.reference].path), &q.caption))
        .collect();
    let queries = session
        .embed(
            &format!("CIRR {split} queries"),
            &Preset::CirrQuery.template(),
            &query_items,
        )?
        .normalized();
    Ok((gallery, queries))
}

/// CIRR val: Recall@1/5/10/50 (reference excluded) and subset Recall@1/2/3. CIRR test1: the two
/// test-server submission files, written to `config.submission_dir`.
pub(super) fn cirr<B: Backend>(
    session: &mut Session<'_, B>,
    config: &RunConfig,
    split: CirrSplit,
) -> Result<(TaskReport, Vec<PathBuf>)> {
    let mut data = load_cirr(&config.data_dir, split)?;
    if let Some(n) = config.limit {
        limit::cirr(&mut data, n);
    }
    let (gallery, queries) = cirr_embeddings(session, &data, &cirr_image_root(&config.data_dir))?;
    let references = data.references();
    let members = data.members();
    let counts = format!(
        "{} queries, gallery of {} images",
        data.queries.len(),
        data.images.len()
    );
    match split {
        CirrSplit::Test1 => {
            let top = cirr_top_k(&queries, &gallery, &references, 50, &config.score)?;
            let subset_top = cirr_subset_top_k(&queries, &gallery, &references, &members, 3)?;
            let dir = &config.submission_dir;
            std::fs::create_dir_all(dir).map_err(|source| EvalError::Io {
                path: dir.clone(),
                source,
            })?;
            let recall = dir.join("cirr_test1_recall.json");
            let subset = dir.join("cirr_test1_recall_subset.json");
            write_cirr_submission(&recall, &data, &top, SubmissionMetric::Recall)?;
            write_cirr_submission(&subset, &data, &subset_top, SubmissionMetric::RecallSubset)?;
            let report = TaskReport::new(Task::CirrTest1).with_note(format!(
                "{counts}; no labels: upload {} and {} to the CIRR test server",
                recall.display(),
                subset.display()
            ));
            Ok((report, vec![recall, subset]))
        }
        _ => {
            let targets = data.targets().ok_or_else(|| {
                EvalError::InvalidArgument("CIRR val queries without targets".into())
            })?;
            let ranks = cirr_ranks(&queries, &gallery, &references, &targets, &config.score)?;
            let subset_ranks =
                cirr_subset_ranks(&queries, &gallery, &references, &targets, &members)?;
            let report = TaskReport::new(Task::CirrVal)
                .with_recalls(Metric::Recall, &recall_at_ks(&ranks, &CIRR_KS)?)
                .with_recalls(
                    Metric::SubsetRecall,
                    &recall_at_ks(&subset_ranks, &CIRR_SUBSET_KS)?,
                )
                .with_note(counts);
            Ok((report, Vec::new()))
        }
    }
}

/// The prompts' category (e5v-prompt's type).
fn prompt_category(category: FashionIqCategory) -> FashionCategory {
    match category {
        FashionIqCategory::Dress => FashionCategory::Dress,
        FashionIqCategory::Shirt => FashionCategory::Shirt,
        FashionIqCategory::Toptee => FashionCategory::Toptee,
    }
}

/// Sums rows `2i` and `2i + 1` (the two caption orders of query `i`).
fn sum_pairs(raw: &Embeddings) -> Result<Embeddings> {
    let mut data = Vec::with_capacity(raw.as_matrix().len() / 2);
    let mut rows = raw.rows();
    while let (Some(a), Some(b)) = (rows.next(), rows.next()) {
        data.extend(a.iter().zip(b).map(|(x, y)| x + y));
    }
    Ok(Embeddings::from_matrix(raw.dim(), data)?)
}

/// FashionIQ val: Recall@10/50 per category and their mean. Each query embeds both caption
/// orders; the raw vectors are summed, then normalised.
pub(super) fn fashioniq<B: Backend>(
    session: &mut Session<'_, B>,
    config: &RunConfig,
) -> Result<TaskReport> {
    let root = config.data_dir.join("images");
    let mut report = TaskReport::new(Task::FashionIqVal);
    let mut per_category = Vec::new();
    let mut counts = Vec::new();
    for category in FashionIqCategory::ALL {
        let mut data = load_fashioniq(&config.data_dir, category)?;
        if let Some(n) = config.limit {
            limit::fashioniq(&mut data, n);
        }
        let noun = prompt_category(category);
        let gallery_items: Vec<Item> = data
            .images
            .iter()
            .map(|im| Item::file(root.join(&im.path)))
            .collect();
        let gallery = session
            .embed(
                &format!("FashionIQ {category} gallery"),
                &Preset::FashionIqGallery(noun).template(),
                &gallery_items,
            )?
            .normalized();
        let query_items: Vec<Item> = data
            .queries
            .iter()
            .flat_map(|q| {
                let path = root.join(&q.candidate_path);
                fashion_iq_texts(&q.captions[0], &q.captions[1])
                    .map(|text| Item::composed(path.clone(), text))
            })
            .collect();
        let raw = session.embed(
            &format!("FashionIQ {category} queries"),
            &Preset::FashionIqQuery(noun).template(),
            &query_items,
        )?;
        let queries = sum_pairs(&raw)?.normalized();
        let ranks = fashioniq_ranks(&queries, &gallery, &data.targets(), &config.score)?;
        let recall = recall_at_ks(&ranks, &FASHIONIQ_KS)?;
        report = report.with_recalls(|k| Metric::CategoryRecall(category, k), &recall);
        per_category.push(recall);
        counts.push(format!(
            "{category}: {} queries, {} images",
            data.queries.len(),
            data.images.len()
        ));
    }
    Ok(report
        .with_recalls(Metric::Recall, &mean_recalls(&per_category)?)
        .with_note(format!(
            "{}; R@k = mean over the categories",
            counts.join(", ")
        )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_summed() {
        let raw =
            Embeddings::from_matrix(2, vec![1.0, 2.0, 3.0, 4.0, 0.5, 0.5, -0.5, 1.5]).expect("raw");
        assert_eq!(
            sum_pairs(&raw).expect("sum").as_matrix(),
            &[4.0, 6.0, 0.0, 2.0]
        );
    }
}
