//! Every subcommand, end to end through [`run_task`], on the tiny random checkpoint
//! (`fixtures/tiny-e5v`) and the miniature datasets of `tests/data/`: the report's structure,
//! scores within their ranges, two runs with identical numbers, the second one served entirely
//! from the embedding cache. Random weights make the numbers themselves meaningless; the
//! report must say so.
//!
//! Runs use flex (enabled for tests through the dev-dependency) and small `--limit`s where a
//! set has many images: an image costs ~1 s in a debug build on two cores.

use std::path::Path;

use e5v_eval::datasets::{CirrSplit, bundled_mini_dir};
use e5v_eval::report::Report;
use e5v_eval::runner::{EvalModel, EvalTask, ModelOptions, RunConfig, RunOutput, run_task};
use e5v_eval::{EvalError, Metric, Task};

use crate::fixtures::{data, tiny_model};

type Backend = e5v_core::Flex;

fn model() -> EvalModel<Backend> {
    EvalModel::load(
        tiny_model(),
        ModelOptions::new().with_batch_size(4),
        &Default::default(),
    )
    .expect("tiny checkpoint loads")
}

/// Asserts the report's shape and ranges, and that it serialises with the published columns.
fn check_report(report: &Report, expected: &[(Task, usize)]) {
    assert!(report.model.contains("tiny-e5v"), "{}", report.model);
    assert!(
        report.notes.iter().any(|n| n.contains("meaningless")),
        "{:?}",
        report.notes
    );
    assert!(report.render_table().contains("numbers are meaningless"));
    let tasks: Vec<(Task, usize)> = report
        .tasks
        .iter()
        .map(|t| (t.task, t.metrics.len()))
        .collect();
    assert_eq!(tasks, expected);
    for task in &report.tasks {
        for (metric, value) in &task.metrics {
            let range = match metric {
                Metric::Spearman | Metric::Pearson => -100.0..=100.0,
                _ => 0.0..=100.0,
            };
            assert!(
                range.contains(&value.ours),
                "{} {metric} = {}",
                task.task,
                value.ours
            );
        }
    }
    let json = serde_json::to_value(report).expect("serialises");
    for key in ["model", "notes", "tasks"] {
        assert!(json.get(key).is_some(), "report JSON lacks {key}");
    }
    for task in json["tasks"].as_array().expect("tasks") {
        for value in task["metrics"].as_object().expect("metrics").values() {
            for key in ["ours", "published_e5v", "published_clip_vit_l"] {
                assert!(value.get(key).is_some(), "metric JSON lacks {key}");
            }
        }
    }
    let back: Report = serde_json::from_value(json).expect("deserialises");
    assert_eq!(&back, report);
}

/// Runs `task` twice with one cache: the numbers must not change and the second run must
/// compute nothing. Returns the first run's output.
fn run_twice(
    model: &EvalModel<Backend>,
    task: EvalTask,
    data_dir: &Path,
    limit: Option<usize>,
    out_dir: &Path,
) -> RunOutput {
    let cache = tempfile::tempdir().expect("cache dir");
    let config = RunConfig::new(data_dir)
        .with_cache_dir(cache.path())
        .with_limit(limit)
        .with_submission_dir(out_dir);
    let first = run_task(model, task, &config).expect("first run");
    let second = run_task(model, task, &config).expect("second run");
    // The first run may already hit vectors it stored itself (a sentence in two STS years).
    assert!(first.cache.embedded > 0, "{:?}", first.cache);
    assert_eq!(
        second.cache.embedded, 0,
        "second run recomputed: {:?}",
        second.cache
    );
    assert_eq!(second.cache.hits, first.cache.hits + first.cache.embedded);
    assert_eq!(first.report, second.report, "two runs differ");
    assert_eq!(first.files, second.files);
    if let Some(n) = limit {
        assert!(
            first
                .report
                .notes
                .iter()
                .any(|note| note.contains(&format!("--limit {n}")))
        );
    }
    first
}

#[test]
fn flickr30k_and_coco() {
    let model = model();
    let out = tempfile::tempdir().expect("out");
    let flickr = run_twice(
        &model,
        EvalTask::Flickr30k,
        &data("karpathy"),
        Some(2),
        out.path(),
    );
    // 2 images + their 10 captions.
    assert_eq!(flickr.cache.embedded, 12);
    check_report(&flickr.report, &[(Task::Flickr30k, 6)]);
    let t2i = flickr.report.tasks[0].metrics[&Metric::TextToImage(1)];
    assert_eq!(t2i.published_e5v, Some(79.5));
    assert_eq!(t2i.published_clip_vit_l, Some(67.3));
    // With 2 images, every caption's image is in the top 5.
    assert_eq!(
        flickr.report.tasks[0].get(Metric::TextToImage(5)),
        Some(100.0)
    );

    let coco = run_twice(&model, EvalTask::Coco, &data("karpathy"), None, out.path());
    assert_eq!(coco.cache.embedded, 12);
    check_report(&coco.report, &[(Task::Coco, 6)]);
    assert_eq!(
        coco.report.tasks[0].metrics[&Metric::ImageToText(5)].published_e5v,
        Some(83.6)
    );
}

#[test]
fn image_image_variants() {
    let model = model();
    let out = tempfile::tempdir().expect("out");
    for (task, expected) in [
        (EvalTask::Flickr30kImageImage, Task::Flickr30kImageImage),
        (EvalTask::CocoImageImage, Task::CocoImageImage),
    ] {
        let run = run_twice(&model, task, &data("karpathy"), Some(1), out.path());
        // 1 image + its 5 captions drawn as images.
        assert_eq!(run.cache.embedded, 6);
        check_report(&run.report, &[(expected, 6)]);
        let note = run.report.tasks[0].note.as_deref().unwrap_or_default();
        assert!(note.contains("Liberation Sans"), "{note}");
    }
}

#[test]
fn cirr_val_and_test1() {
    let model = model();
    let out = tempfile::tempdir().expect("out");
    let val = run_twice(
        &model,
        EvalTask::Cirr(CirrSplit::Val),
        &data("cirr"),
        None,
        out.path(),
    );
    // Gallery of 6 + 3 queries.
    assert_eq!(val.cache.embedded, 9);
    check_report(&val.report, &[(Task::CirrVal, 7)]);
    let metrics = &val.report.tasks[0].metrics;
    for m in [
        Metric::Recall(1),
        Metric::Recall(50),
        Metric::SubsetRecall(1),
        Metric::SubsetRecall(3),
    ] {
        assert!(metrics.contains_key(&m), "{m}");
    }
    // The reference is excluded, so 5 candidates remain: R@50 = 100.
    assert_eq!(val.report.tasks[0].get(Metric::Recall(50)), Some(100.0));
    assert!(val.files.is_empty());

    let test = run_twice(
        &model,
        EvalTask::Cirr(CirrSplit::Test1),
        &data("cirr"),
        None,
        out.path(),
    );
    assert_eq!(test.cache.embedded, 8);
    check_report(&test.report, &[(Task::CirrTest1, 0)]);
    assert_eq!(test.files.len(), 2);
    for (file, metric, per_query) in [
        (&test.files[0], "recall", 6),
        (&test.files[1], "recall_subset", 3),
    ] {
        let text = std::fs::read_to_string(file).expect("submission written");
        let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(json["version"], "rc2");
        assert_eq!(json["metric"], metric);
        for pairid in ["12063", "12064"] {
            let names = json[pairid].as_array().expect("ranking");
            assert_eq!(names.len(), per_query, "{metric} {pairid}");
            // The subset ranking never lists the query's own reference.
            if metric == "recall_subset" {
                let reference = if pairid == "12063" {
                    "test1-147-1-img1"
                } else {
                    "test1-83-1-img1"
                };
                assert!(!names.iter().any(|n| n == reference));
            }
        }
    }
}

#[test]
fn fashioniq() {
    let model = model();
    let out = tempfile::tempdir().expect("out");
    let run = run_twice(
        &model,
        EvalTask::FashionIq,
        &data("fashioniq"),
        Some(1),
        out.path(),
    );
    // Per category: the first gallery image and the query's target, plus both caption orders
    // of one query: dress 1 + 2, shirt 2 + 2, toptee 1 + 2.
    assert_eq!(run.cache.embedded, 10);
    check_report(&run.report, &[(Task::FashionIqVal, 8)]);
    let task = &run.report.tasks[0];
    assert!(task.metrics.contains_key(&Metric::Recall(10)));
    assert!(task.metrics.contains_key(&Metric::CategoryRecall(
        "toptee".parse().expect("category"),
        50
    )));
}

#[test]
fn sts_all_seven_and_partial() {
    let model = model();
    let out = tempfile::tempdir().expect("out");
    let full = run_twice(
        &model,
        EvalTask::Sts,
        &data("senteval_full"),
        None,
        out.path(),
    );
    let mut expected: Vec<(Task, usize)> = Task::STS.iter().map(|t| (*t, 2)).collect();
    expected.push((Task::StsAverage, 1));
    check_report(&full.report, &expected);
    let spearmans: Vec<f64> = Task::STS
        .iter()
        .map(|t| {
            full.report
                .tasks
                .iter()
                .find(|r| r.task == *t)
                .and_then(|r| r.get(Metric::Spearman))
                .expect("spearman")
        })
        .collect();
    let average = full.report.tasks[7].get(Metric::Spearman).expect("average");
    let rounded: f64 = spearmans
        .iter()
        .map(|s| format!("{s:.2}").parse::<f64>().expect("number"))
        .sum::<f64>()
        / 7.0;
    assert!((average - rounded).abs() < 1e-9);

    // Only STS13, STS-B and SICK-R: the others are skipped with a note, and no average.
    let partial = run_twice(&model, EvalTask::Sts, &data("senteval"), None, out.path());
    check_report(
        &partial.report,
        &[
            (Task::Sts13, 2),
            (Task::StsBenchmark, 2),
            (Task::SickRelatedness, 2),
        ],
    );
    assert!(
        partial
            .report
            .notes
            .iter()
            .any(|n| n.contains("skipped STS12") && n.contains("needs all seven"))
    );
}

#[test]
fn mini_with_word_similarity() {
    let model = model();
    let out = tempfile::tempdir().expect("out");
    let run = run_twice(&model, EvalTask::Mini, &data("mini"), None, out.path());
    check_report(
        &run.report,
        &[(Task::Mini, 6), (Task::WordSim353, 2), (Task::SimLex999, 2)],
    );
    // 3 images, 3 captions, 11 + 10 distinct words ("book" is in two WordSim pairs).
    assert_eq!(run.cache.embedded, 3 + 3 + 11 + 10);

    // The bundled set (two images of it), without the word files: a note says how to get them.
    let bundled = run_twice(
        &model,
        EvalTask::Mini,
        &bundled_mini_dir(),
        Some(2),
        out.path(),
    );
    check_report(&bundled.report, &[(Task::Mini, 6)]);
    assert!(
        bundled
            .report
            .notes
            .iter()
            .any(|n| n.contains("fetch-word-similarity.sh"))
    );
}

#[test]
fn missing_data_names_the_file() {
    let model = model();
    let config = RunConfig::new(data("cirr_missing_target"));
    let err = run_task(&model, EvalTask::Flickr30k, &config).expect_err("no Karpathy file");
    assert!(
        matches!(&err, EvalError::Io { path, .. } if path.ends_with("dataset_flickr30k.json")),
        "{err}"
    );
    // The Karpathy file is there but its images are not.
    let empty = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        data("karpathy/dataset_flickr30k.json"),
        empty.path().join("dataset_flickr30k.json"),
    )
    .expect("copy");
    let config = RunConfig::new(empty.path());
    let err = run_task(&model, EvalTask::Flickr30k, &config).expect_err("no images");
    assert!(
        matches!(&err, EvalError::Io { path, .. } if path.ends_with("flickr30k-images/1007129816.jpg")),
        "{err}"
    );
    let err = run_task(&model, EvalTask::Sts, &config).expect_err("no STS data");
    assert!(err.to_string().contains("no STS data"), "{err}");
}
