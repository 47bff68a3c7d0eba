//! Correlation runs: STS12-16, STS-B, SICK-R (SentEval layout) and the word-similarity sets.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use e5v_core::{Embeddings, Preset};
use e5v_prompt::normalize_sts_sentence;

use super::embed::{Item, Session};
use super::{RunConfig, limit};
use crate::datasets::{
    StsPair, StsYear, WordSimSet, load_sick_relatedness, load_sts_benchmark, load_sts_year,
    load_word_similarity, sick_relatedness_path, sts_benchmark_path,
};
use crate::error::{EvalError, Result};
use crate::metrics::{StsScore, pair_cosines, sts_score};
use crate::report::TaskReport;
use crate::task::Task;

/// Rows `range` of `all` as their own matrix.
fn rows(all: &Embeddings, range: std::ops::Range<usize>) -> Result<Embeddings> {
    let len = all.len();
    all.slice(range.clone()).ok_or_else(|| {
        EvalError::InvalidArgument(format!("rows {range:?} of a matrix of {len} rows"))
    })
}

/// Embeds both sentences of every pair with the STS prompt (normalised as the reference does)
/// and correlates the cosines with the gold scores.
fn score_pairs<B: Backend>(
    session: &mut Session<'_, B>,
    label: &str,
    pairs: &[&StsPair],
) -> Result<StsScore> {
    let n = pairs.len();
    let items: Vec<Item> = pairs
        .iter()
        .map(|p| &p.sentence1)
        .chain(pairs.iter().map(|p| &p.sentence2))
        .map(|s| Item::text(normalize_sts_sentence(s)))
        .collect();
    let all = session.embed(label, &Preset::Sts.template(), &items)?;
    let cosines = pair_cosines(&rows(&all, 0..n)?, &rows(&all, n..2 * n)?)?;
    let gold: Vec<f64> = pairs.iter().map(|p| p.score).collect();
    sts_score(&cosines, &gold)
}

/// The STS tasks found under SentEval's `data/downstream` folder, and notes on the missing ones.
pub(super) fn sts<B: Backend>(
    session: &mut Session<'_, B>,
    config: &RunConfig,
) -> Result<(Vec<TaskReport>, Vec<String>)> {
    let dir = &config.data_dir;
    let mut reports = Vec::new();
    let mut missing = Vec::new();
    for year in StsYear::ALL {
        let task = Task::from(year);
        let year_dir = dir.join("STS").join(year.dir_name());
        if !year_dir.is_dir() {
            missing.push(format!("{task} ({} not found)", year_dir.display()));
            continue;
        }
        let mut data = load_sts_year(dir, year)?;
        if let Some(n) = config.limit {
            limit::sts_year(&mut data, n);
        }
        let pairs: Vec<&StsPair> = data.all_pairs().collect();
        let score = score_pairs(session, task.display_name(), &pairs)?;
        reports.push(TaskReport::new(task).with_sts(score).with_note(format!(
            "{} pairs in {} subsets (\"all\": one correlation over their concatenation)",
            pairs.len(),
            data.subsets.len()
        )));
    }
    type Loader = fn(&Path) -> Result<Vec<StsPair>>;
    let singles: [(Task, std::path::PathBuf, Loader); 2] = [
        (
            Task::StsBenchmark,
            sts_benchmark_path(dir),
            load_sts_benchmark,
        ),
        (
            Task::SickRelatedness,
            sick_relatedness_path(dir),
            load_sick_relatedness,
        ),
    ];
    for (task, path, load) in singles {
        if !path.is_file() {
            missing.push(format!("{task} ({} not found)", path.display()));
            continue;
        }
        let mut pairs = load(dir)?;
        if let Some(n) = config.limit {
            pairs.truncate(n);
        }
        let refs: Vec<&StsPair> = pairs.iter().collect();
        let score = score_pairs(session, task.display_name(), &refs)?;
        reports.push(
            TaskReport::new(task)
                .with_sts(score)
                .with_note(format!("{} pairs (test)", pairs.len())),
        );
    }
    if reports.is_empty() {
        return Err(EvalError::InvalidArgument(format!(
            "no STS data under {}: expected SentEval's data/downstream layout \
             (STS/STS12-en-test/, ..., STS/STSBenchmark/sts-test.csv, SICK/SICK_test_annotated.txt)",
            dir.display()
        )));
    }
    let notes = if missing.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "skipped {}; the STS average needs all seven",
            missing.join(", ")
        )]
    };
    Ok((reports, notes))
}

/// WordSim353 and SimLex-999 from `dir` (gensim's files), where present: each word embedded
/// with the text prompt, cosine per pair, Spearman with the human ratings. Returns the reports
/// and the names of the sets not found.
pub(super) fn word_similarity<B: Backend>(
    session: &mut Session<'_, B>,
    config: &RunConfig,
    dir: &Path,
) -> Result<(Vec<TaskReport>, Vec<String>)> {
    let mut reports = Vec::new();
    let mut missing = Vec::new();
    for set in WordSimSet::ALL {
        let task = match set {
            WordSimSet::WordSim353 => Task::WordSim353,
            _ => Task::SimLex999,
        };
        let path = dir.join(set.file_name());
        if !path.is_file() {
            missing.push(set.file_name().to_owned());
            continue;
        }
        let mut pairs = load_word_similarity(&path)?;
        if let Some(n) = config.limit {
            pairs.truncate(n);
        }
        let mut words: Vec<&str> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for p in &pairs {
            for w in [p.word1.as_str(), p.word2.as_str()] {
                index.entry(w).or_insert_with(|| {
                    words.push(w);
                    words.len() - 1
                });
            }
        }
        let items: Vec<Item> = words.iter().map(|w| Item::text(*w)).collect();
        let vectors = session.embed(task.display_name(), &Preset::Text.template(), &items)?;
        let pick = |select: fn(&crate::datasets::WordPair) -> &str| -> Result<Embeddings> {
            let rows = pairs
                .iter()
                .map(|p| {
                    index
                        .get(select(p))
                        .and_then(|&i| vectors.get(i))
                        .ok_or_else(|| {
                            EvalError::InvalidArgument("word missing from its own index".into())
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Embeddings::from_rows(vectors.dim(), rows)?)
        };
        let cosines = pair_cosines(&pick(|p| &p.word1)?, &pick(|p| &p.word2)?)?;
        let gold: Vec<f64> = pairs.iter().map(|p| p.score).collect();
        let score = sts_score(&cosines, &gold)?;
        reports.push(TaskReport::new(task).with_sts(score).with_note(format!(
            "{} pairs, {} distinct words",
            pairs.len(),
            words.len()
        )));
    }
    Ok((reports, missing))
}
