//! STS12-16, STS-B and SICK-R in SentEval's layout (`SentEval/data/downstream/`, as produced by
//! SentEval's `get_transfer_data.bash`, which the E5-V code uses through SimCSE's SentEval).
//!
//! Assumed layout, relative to that folder:
//! - `STS/STS<yy>-en-test/STS.input.<subset>.txt`: one pair per line, the two sentences separated
//!   by a tab (already Moses-tokenised by SentEval's script); `STS.gs.<subset>.txt`: the gold
//!   score on the same line number, or an empty line for an unscored pair, which is skipped (as
//!   SentEval does). The subsets per year are [`StsYear::subsets`] (STS13 without SMT).
//! - `STS/STSBenchmark/sts-test.csv`: tab-separated, no header, no quoting; columns (0-based)
//!   4 = score, 5 and 6 = the sentences; further columns are ignored.
//! - `SICK/SICK_test_annotated.txt`: tab-separated with a header row (skipped); columns 1 and
//!   2 = the sentences, 3 = the relatedness score.
//!
//! Tolerances: `\r\n` line ends, a UTF-8 byte-order mark, trailing whitespace (also trailing
//! empty tab columns on STS input lines), blank lines at the end of a file, and blank lines in
//! STS-B and SICK files are accepted. Sentences are normalised as SentEval's tokens are
//! re-joined by the E5-V batcher: split on whitespace, joined by single spaces. A wrong column
//! count, an unparsable score, or input and gold files of different lengths is an
//! [`EvalError::MalformedLine`] naming the file and line.

use std::path::{Path, PathBuf};

use super::read::{normalise_words, numbered_lines, read_text};
use crate::error::{EvalError, Result};

/// One STS year of SemEval, as evaluated by SentEval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StsYear {
    /// SemEval 2012.
    Sts12,
    /// SemEval 2013 (FNWN, headlines, OnWN; SMT is not distributed).
    Sts13,
    /// SemEval 2014.
    Sts14,
    /// SemEval 2015.
    Sts15,
    /// SemEval 2016.
    Sts16,
}

impl StsYear {
    /// All years.
    pub const ALL: [StsYear; 5] = [
        StsYear::Sts12,
        StsYear::Sts13,
        StsYear::Sts14,
        StsYear::Sts15,
        StsYear::Sts16,
    ];

    /// The year's folder under `STS/`.
    pub fn dir_name(self) -> &'static str {
        match self {
            StsYear::Sts12 => "STS12-en-test",
            StsYear::Sts13 => "STS13-en-test",
            StsYear::Sts14 => "STS14-en-test",
            StsYear::Sts15 => "STS15-en-test",
            StsYear::Sts16 => "STS16-en-test",
        }
    }

    /// The subsets SentEval evaluates, in its order.
    pub fn subsets(self) -> &'static [&'static str] {
        match self {
            StsYear::Sts12 => &[
                "MSRpar",
                "MSRvid",
                "SMTeuroparl",
                "surprise.OnWN",
                "surprise.SMTnews",
            ],
            StsYear::Sts13 => &["FNWN", "headlines", "OnWN"],
            StsYear::Sts14 => &[
                "deft-forum",
                "deft-news",
                "headlines",
                "images",
                "OnWN",
                "tweet-news",
            ],
            StsYear::Sts15 => &[
                "answers-forums",
                "answers-students",
                "belief",
                "headlines",
                "images",
            ],
            StsYear::Sts16 => &[
                "answer-answer",
                "headlines",
                "plagiarism",
                "postediting",
                "question-question",
            ],
        }
    }
}

/// A scored sentence pair.
#[derive(Clone, Debug, PartialEq)]
pub struct StsPair {
    /// First sentence (whitespace-normalised).
    pub sentence1: String,
    /// Second sentence (whitespace-normalised).
    pub sentence2: String,
    /// Gold similarity (0-5 for STS, 1-5 for SICK).
    pub score: f64,
}

/// The scored pairs of one subset.
#[derive(Clone, Debug, PartialEq)]
pub struct StsSubset {
    /// The subset name, e.g. `MSRpar`.
    pub name: &'static str,
    /// Its scored pairs, in file order.
    pub pairs: Vec<StsPair>,
}

/// All subsets of one STS year.
#[derive(Clone, Debug, PartialEq)]
pub struct StsYearData {
    /// Which year.
    pub year: StsYear,
    /// The subsets, in [`StsYear::subsets`] order.
    pub subsets: Vec<StsSubset>,
}

impl StsYearData {
    /// Every pair of the year, subset after subset: the paper's "all" Spearman is computed over
    /// this concatenation.
    pub fn all_pairs(&self) -> impl Iterator<Item = &StsPair> + '_ {
        self.subsets.iter().flat_map(|s| &s.pairs)
    }
}

/// A malformed-line error.
fn line_error(path: &Path, line: usize, message: impl Into<String>) -> EvalError {
    EvalError::MalformedLine {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// Parses a gold score.
fn parse_score(path: &Path, line: usize, field: &str) -> Result<f64> {
    let field = field.trim();
    match field.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(line_error(
            path,
            line,
            format!("score {field:?} is not a number"),
        )),
    }
}

/// Lines of a file without the blank lines at its end.
fn content_lines(text: &str) -> Vec<(usize, &str)> {
    let mut lines: Vec<_> = numbered_lines(text).collect();
    while lines.last().is_some_and(|(_, l)| l.trim().is_empty()) {
        lines.pop();
    }
    lines
}

/// Loads one subset from its input and gold files.
fn load_subset(input_path: &Path, gold_path: &Path, name: &'static str) -> Result<StsSubset> {
    let input = read_text(input_path)?;
    let gold = read_text(gold_path)?;
    let input_lines = content_lines(&input);
    let gold_lines: Vec<_> = numbered_lines(&gold).collect();
    if gold_lines.len() < input_lines.len() {
        return Err(line_error(
            gold_path,
            gold_lines.len() + 1,
            format!(
                "{} gold lines for {} input lines",
                gold_lines.len(),
                input_lines.len()
            ),
        ));
    }
    if let Some((line, _)) = gold_lines[input_lines.len()..]
        .iter()
        .find(|(_, l)| !l.trim().is_empty())
    {
        return Err(line_error(
            gold_path,
            *line,
            format!("gold score beyond the {} input lines", input_lines.len()),
        ));
    }
    let mut pairs = Vec::new();
    for ((line, text), (gold_line, score)) in input_lines.into_iter().zip(gold_lines) {
        let mut fields: Vec<&str> = text.split('\t').collect();
        while fields.len() > 2 && fields.last().is_some_and(|f| f.trim().is_empty()) {
            fields.pop();
        }
        if fields.len() != 2 {
            return Err(line_error(
                input_path,
                line,
                format!(
                    "expected 2 tab-separated sentences, found {} columns",
                    fields.len()
                ),
            ));
        }
        if score.trim().is_empty() {
            continue;
        }
        pairs.push(StsPair {
            sentence1: normalise_words(fields[0]),
            sentence2: normalise_words(fields[1]),
            score: parse_score(gold_path, gold_line, score)?,
        });
    }
    Ok(StsSubset { name, pairs })
}

/// Loads every subset of `year` from SentEval's `data/downstream` folder.
pub fn load_sts_year(senteval_data: &Path, year: StsYear) -> Result<StsYearData> {
    let dir = senteval_data.join("STS").join(year.dir_name());
    let subsets = year
        .subsets()
        .iter()
        .map(|&name| {
            load_subset(
                &dir.join(format!("STS.input.{name}.txt")),
                &dir.join(format!("STS.gs.{name}.txt")),
                name,
            )
        })
        .collect::<Result<_>>()?;
    Ok(StsYearData { year, subsets })
}

/// Reads a tab-separated file of pairs, skipping `skip_header` first line and blank lines.
fn load_columns(
    path: &Path,
    skip_header: bool,
    score: usize,
    first: usize,
    second: usize,
) -> Result<Vec<StsPair>> {
    let text = read_text(path)?;
    let needed = score.max(first).max(second) + 1;
    let mut pairs = Vec::new();
    for (line, content) in numbered_lines(&text).skip(usize::from(skip_header)) {
        if content.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = content.split('\t').collect();
        if fields.len() < needed {
            return Err(line_error(
                path,
                line,
                format!(
                    "expected at least {needed} tab-separated columns, found {}",
                    fields.len()
                ),
            ));
        }
        pairs.push(StsPair {
            sentence1: normalise_words(fields[first]),
            sentence2: normalise_words(fields[second]),
            score: parse_score(path, line, fields[score])?,
        });
    }
    if pairs.is_empty() {
        return Err(line_error(path, 1, "no sentence pairs"));
    }
    Ok(pairs)
}

/// Path of the STS-B test file under SentEval's `data/downstream` folder.
pub fn sts_benchmark_path(senteval_data: &Path) -> PathBuf {
    senteval_data
        .join("STS")
        .join("STSBenchmark")
        .join("sts-test.csv")
}

/// Path of the SICK test file under SentEval's `data/downstream` folder.
pub fn sick_relatedness_path(senteval_data: &Path) -> PathBuf {
    senteval_data.join("SICK").join("SICK_test_annotated.txt")
}

/// Loads the STS Benchmark test pairs.
pub fn load_sts_benchmark(senteval_data: &Path) -> Result<Vec<StsPair>> {
    load_columns(&sts_benchmark_path(senteval_data), false, 4, 5, 6)
}

/// Loads the SICK relatedness test pairs.
pub fn load_sick_relatedness(senteval_data: &Path) -> Result<Vec<StsPair>> {
    load_columns(&sick_relatedness_path(senteval_data), true, 3, 1, 2)
}
