//! Training data: SimCSE's NLI triplets (`sent0,sent1,hard_neg`: a premise, its entailment, its
//! contradiction), from a CSV file with that header.

use std::path::Path;

use crate::{Result, TrainError};

/// One training row: an anchor, its positive and its hard negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triplet {
    /// The anchor (`sent0`).
    pub anchor: String,
    /// The positive (`sent1`, the entailment).
    pub positive: String,
    /// The hard negative (`hard_neg`, the contradiction).
    pub negative: String,
}

/// Reads a CSV whose header names the columns `sent0`, `sent1` and `hard_neg` (others are
/// ignored). A row with a missing or empty sentence is an error naming its line; an empty
/// file is an error.
pub fn read_nli_csv(path: impl AsRef<Path>) -> Result<Vec<Triplet>> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|source| TrainError::Io {
        path: path.to_owned(),
        source,
    })?;
    read_nli(file, path)
}

/// [`read_nli_csv`] from any reader; `path` names the source in errors.
pub fn read_nli(reader: impl std::io::Read, path: &Path) -> Result<Vec<Triplet>> {
    let data = |line: u64, reason: String| TrainError::Data {
        path: path.to_owned(),
        line,
        reason,
    };
    let mut csv = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let header = csv.headers().map_err(|e| data(1, e.to_string()))?.clone();
    let column = |name: &str| {
        header.iter().position(|h| h.trim() == name).ok_or_else(|| {
            data(
                1,
                format!("no `{name}` column (the header must name sent0, sent1, hard_neg)"),
            )
        })
    };
    let (anchor, positive, negative) = (column("sent0")?, column("sent1")?, column("hard_neg")?);
    let mut rows = Vec::new();
    for record in csv.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            data(line, e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |index: usize, name: &str| match record.get(index) {
            Some(text) if !text.trim().is_empty() => Ok(text.to_owned()),
            _ => Err(data(line, format!("`{name}` is empty"))),
        };
        rows.push(Triplet {
            anchor: field(anchor, "sent0")?,
            positive: field(positive, "sent1")?,
            negative: field(negative, "hard_neg")?,
        });
    }
    if rows.is_empty() {
        return Err(data(1, "no rows".into()));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Triplet>> {
        read_nli(text.as_bytes(), Path::new("nli.csv"))
    }

    #[test]
    fn reads_quoted_fields_and_ignores_other_columns() {
        let rows = read(
            "id,sent0,sent1,hard_neg\n7,\"A man, smiling.\",He smiles.,\"He said \"\"no\"\".\"\n",
        )
        .expect("valid");
        assert_eq!(
            rows,
            [Triplet {
                anchor: "A man, smiling.".into(),
                positive: "He smiles.".into(),
                negative: "He said \"no\".".into(),
            }]
        );
    }

    #[test]
    fn bad_files_are_errors_naming_the_line() {
        let err = read("sent0,sent1\na,b\n").expect_err("no hard_neg");
        assert!(err.to_string().contains("hard_neg"), "{err}");
        let err = read("sent0,sent1,hard_neg\na,b,c\nd,,f\n").expect_err("empty field");
        assert!(err.to_string().contains("line 3"), "{err}");
        let err = read("sent0,sent1,hard_neg\na,b,c\nd,e\n").expect_err("short row");
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(read("sent0,sent1,hard_neg\n").is_err());
    }
}
