//! Result structs (serde-serialisable) and a plain-text table.
//!
//! Each [`TaskReport`] maps [`Metric`]s to our value with the paper's numbers beside it (filled
//! from [`crate::published`]); a [`Report`] collects them and renders a table. JSON map keys are
//! the metrics' display strings (`"t2i R@1"`), ordered by metric kind, then numerically by k.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::metrics::{RecallAtK, StsScore};
use crate::published::{PublishedModel, published, published_note};
use crate::task::{Metric, Task};

/// Our number and the published ones for one metric.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricValue {
    /// Our result.
    pub ours: f64,
    /// The paper's E5-V number, if known.
    pub published_e5v: Option<f64>,
    /// The paper's CLIP ViT-L number, if known.
    pub published_clip_vit_l: Option<f64>,
}

/// The results on one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    /// The task.
    pub task: Task,
    /// Metric -> values.
    pub metrics: BTreeMap<Metric, MetricValue>,
    /// Free text: what differed from the paper's protocol, what the paper gives instead of
    /// numbers, counts.
    pub note: Option<String>,
}

impl TaskReport {
    /// An empty report; the note starts with [`published_note`] where there is one.
    pub fn new(task: Task) -> Self {
        Self {
            task,
            metrics: BTreeMap::new(),
            note: published_note(task).map(str::to_owned),
        }
    }

    /// Records our value of `metric`, with the published numbers.
    pub fn with_metric(mut self, metric: Metric, ours: f64) -> Self {
        let value = MetricValue {
            ours,
            published_e5v: published(PublishedModel::E5V, self.task, metric),
            published_clip_vit_l: published(PublishedModel::ClipVitL, self.task, metric),
        };
        self.metrics.insert(metric, value);
        self
    }

    /// Records recalls, naming each with `metric(k)` (e.g. `Metric::TextToImage`).
    pub fn with_recalls(self, metric: impl Fn(usize) -> Metric, recalls: &[RecallAtK]) -> Self {
        recalls
            .iter()
            .fold(self, |report, r| report.with_metric(metric(r.k), r.percent))
    }

    /// Records an STS score (Spearman and Pearson).
    pub fn with_sts(self, score: StsScore) -> Self {
        self.with_metric(Metric::Spearman, score.spearman)
            .with_metric(Metric::Pearson, score.pearson)
    }

    /// Appends a sentence to the note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        let note = note.into();
        self.note = Some(match self.note.take() {
            Some(old) => format!("{old}; {note}"),
            None => note,
        });
        self
    }

    /// Our value of `metric`, if recorded.
    pub fn get(&self, metric: Metric) -> Option<f64> {
        self.metrics.get(&metric).map(|v| v.ours)
    }
}

/// All results of one evaluation run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What was evaluated (model id, precision, backend).
    pub model: String,
    /// Notes on the whole run (e.g. that random weights make the numbers meaningless), shown
    /// above the table.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Per-task results, in insertion order.
    pub tasks: Vec<TaskReport>,
}

impl Report {
    /// An empty report for `model`.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            notes: Vec::new(),
            tasks: Vec::new(),
        }
    }

    /// Adds a note on the whole run.
    pub fn push_note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Adds a task's results.
    pub fn push(&mut self, task: TaskReport) {
        self.tasks.push(task);
    }

    /// The [`Task::StsAverage`] row: the mean Spearman of the seven [`Task::STS`] tasks, each
    /// rounded to 2 decimals first as the reference does. `None` unless all seven are present.
    pub fn sts_average(&self) -> Option<TaskReport> {
        let scores: Option<Vec<f64>> = Task::STS
            .iter()
            .map(|t| {
                self.tasks
                    .iter()
                    .find(|r| r.task == *t)
                    .and_then(|r| r.get(Metric::Spearman))
            })
            .collect();
        let mean = crate::metrics::sts_average(&scores?).ok()?;
        Some(TaskReport::new(Task::StsAverage).with_metric(Metric::Spearman, mean))
    }

    /// A plain-text table: the run's notes, one row per metric with our value, the paper's E5-V
    /// and CLIP ViT-L values (`-` when unknown) and our difference to E5-V; then the tasks'
    /// notes.
    pub fn render_table(&self) -> String {
        let fmt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        let header = [
            "task",
            "metric",
            "ours",
            "E5-V paper",
            "CLIP-L paper",
            "ours-E5-V",
        ];
        let mut rows: Vec<[String; 6]> = Vec::new();
        for report in &self.tasks {
            for (metric, v) in &report.metrics {
                rows.push([
                    report.task.to_string(),
                    metric.to_string(),
                    format!("{:.2}", v.ours),
                    fmt(v.published_e5v),
                    fmt(v.published_clip_vit_l),
                    v.published_e5v
                        .map_or_else(|| "-".to_owned(), |p| format!("{:+.2}", v.ours - p)),
                ]);
            }
        }
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let _ = writeln!(out, "model: {}", self.model);
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        let line = |out: &mut String, cells: [&str; 6]| {
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let sep = if i == 0 { "" } else { "  " };
                // Text columns left-aligned, numbers right-aligned.
                let _ = if i < 2 {
                    write!(out, "{sep}{cell:<w$}")
                } else {
                    write!(out, "{sep}{cell:>w$}")
                };
            }
            let trimmed = out.trim_end_matches(' ').len();
            out.truncate(trimmed);
            out.push('\n');
        };
        line(&mut out, header);
        let rule = widths.map(|w| "-".repeat(w));
        line(
            &mut out,
            [&rule[0], &rule[1], &rule[2], &rule[3], &rule[4], &rule[5]],
        );
        for row in &rows {
            line(
                &mut out,
                [&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]],
            );
        }
        let notes: Vec<_> = self
            .tasks
            .iter()
            .filter_map(|r| r.note.as_ref().map(|n| (r.task, n)))
            .collect();
        if !notes.is_empty() {
            out.push_str("\nnotes:\n");
            for (task, note) in notes {
                let _ = writeln!(out, "  {task}: {note}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::FashionIqCategory;

    fn sample() -> Report {
        let mut report = Report::new("royokong/e5-v fp16");
        report.push(TaskReport::new(Task::Flickr30k).with_recalls(
            Metric::TextToImage,
            &[
                RecallAtK {
                    k: 1,
                    percent: 79.0,
                },
                RecallAtK {
                    k: 10,
                    percent: 97.25,
                },
            ],
        ));
        report.push(
            TaskReport::new(Task::FashionIqVal)
                .with_recalls(
                    |k| Metric::CategoryRecall(FashionIqCategory::Dress, k),
                    &[RecallAtK {
                        k: 10,
                        percent: 33.3,
                    }],
                )
                .with_note("val only"),
        );
        report.push(TaskReport::new(Task::CirrVal).with_metric(Metric::Recall(1), 40.0));
        report
    }

    #[test]
    fn metrics_carry_published_numbers() {
        let report = sample();
        let flickr = &report.tasks[0];
        let v = flickr.metrics[&Metric::TextToImage(1)];
        assert_eq!(
            v,
            MetricValue {
                ours: 79.0,
                published_e5v: Some(79.5),
                published_clip_vit_l: Some(67.3)
            }
        );
        assert_eq!(flickr.metrics[&Metric::TextToImage(10)].published_e5v, None);
        assert_eq!(flickr.get(Metric::TextToImage(10)), Some(97.25));
        assert!(
            report.tasks[2]
                .note
                .as_deref()
                .is_some_and(|n| n.contains("iSEARLE"))
        );
    }

    #[test]
    fn json_round_trip() {
        let report = sample();
        let json = serde_json::to_string(&report).expect("serialise");
        assert!(json.contains("\"t2i R@1\":{\"ours\":79.0,\"published_e5v\":79.5"));
        assert!(json.contains("\"task\":\"fashion_iq_val\""));
        let back: Report = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, report);
    }

    #[test]
    fn table() {
        let table = sample().render_table();
        let expected = "\
model: royokong/e5-v fp16
task           metric       ours  E5-V paper  CLIP-L paper  ours-E5-V
-------------  ----------  -----  ----------  ------------  ---------
Flickr30K      t2i R@1     79.00       79.50         67.30      -0.50
Flickr30K      t2i R@10    97.25           -             -          -
FashionIQ val  dress R@10  33.30           -             -          -
CIRR val       R@1         40.00           -             -          -

notes:
  FashionIQ val: val only
  CIRR val: paper: E5-V +8.50 R@1 / +10.07 R@5 over iSEARLE-XL (no absolute numbers here)
";
        assert_eq!(table, expected);
    }

    #[test]
    fn sts_average_needs_all_seven() {
        let mut report = Report::new("m");
        for (i, task) in Task::STS.iter().enumerate() {
            assert!(report.sts_average().is_none());
            report.push(TaskReport::new(*task).with_metric(Metric::Spearman, 70.0 + i as f64));
        }
        let avg = report.sts_average().expect("all seven");
        assert_eq!(avg.get(Metric::Spearman), Some(73.0));
    }
}
