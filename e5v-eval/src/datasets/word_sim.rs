//! Human word-similarity judgements in the tab-separated layout gensim ships
//! (`gensim/test/test_data/wordsim353.tsv`, `simlex999.txt`): `#` comment lines, then
//! `word1<TAB>word2<TAB>score` (further columns ignored).
//!
//! The files are not bundled (their licences are unclear); see this crate's README for how to
//! fetch them.

use std::path::Path;

use super::read::{numbered_lines, read_text};
use crate::error::{EvalError, Result};

/// A word-similarity set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WordSimSet {
    /// WordSim353 (Finkelstein et al. 2002): relatedness, 0-10.
    WordSim353,
    /// SimLex-999 (Hill et al. 2015): similarity, 0-10.
    SimLex999,
}

impl WordSimSet {
    /// Both sets.
    pub const ALL: [WordSimSet; 2] = [WordSimSet::WordSim353, WordSimSet::SimLex999];

    /// The file name gensim uses.
    pub fn file_name(self) -> &'static str {
        match self {
            WordSimSet::WordSim353 => "wordsim353.tsv",
            WordSimSet::SimLex999 => "simlex999.txt",
        }
    }
}

/// A rated word pair.
#[derive(Clone, Debug, PartialEq)]
pub struct WordPair {
    /// First word (or phrase).
    pub word1: String,
    /// Second word.
    pub word2: String,
    /// Mean human rating.
    pub score: f64,
}

/// Loads a word-similarity file. Fails with [`EvalError::MalformedLine`] on a line with fewer
/// than 3 columns or a bad score, and when the file has no pairs.
pub fn load_word_similarity(path: &Path) -> Result<Vec<WordPair>> {
    let text = read_text(path)?;
    let error = |line: usize, message: String| EvalError::MalformedLine {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut pairs = Vec::new();
    for (line, content) in numbered_lines(&text) {
        let content = content.trim_end();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = content.split('\t').collect();
        if fields.len() < 3 {
            return Err(error(
                line,
                format!("expected 3 tab-separated columns, found {}", fields.len()),
            ));
        }
        let score = fields[2].trim();
        let score = match score.parse::<f64>() {
            Ok(v) if v.is_finite() => v,
            _ => return Err(error(line, format!("score {score:?} is not a number"))),
        };
        pairs.push(WordPair {
            word1: fields[0].trim().to_owned(),
            word2: fields[1].trim().to_owned(),
            score,
        });
    }
    if pairs.is_empty() {
        return Err(error(1, "no word pairs".into()));
    }
    Ok(pairs)
}
