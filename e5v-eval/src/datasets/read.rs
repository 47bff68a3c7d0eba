//! File reading shared by the loaders: I/O, UTF-8 and JSON errors with file and line context.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{EvalError, Result};

/// Reads a whole file.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a UTF-8 text file (a leading byte-order mark is dropped). Invalid UTF-8 is reported
/// with the line it is on.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = read_bytes(path)?;
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..valid]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        EvalError::MalformedLine {
            path: path.to_path_buf(),
            line,
            message: "invalid UTF-8".into(),
        }
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// Parses a JSON file into `T`; syntax and shape errors carry serde_json's line and column.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = read_bytes(path)?;
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&bytes);
    serde_json::from_slice(bytes).map_err(|e| EvalError::MalformedJson {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// The lines of `text` with 1-based numbers, split on `\n` with a trailing `\r` removed. A final
/// newline does not start an extra line (as Python's `splitlines`).
pub(crate) fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l))
}

/// Splits on whitespace as Python's `str.split()` does (Unicode whitespace plus the
/// `\x1c`-`\x1f` separators) and joins the words with single spaces: the sentence a SentEval
/// batcher sees after `' '.join(tokens)`.
pub(crate) fn normalise_words(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_lines() {
        assert_eq!(normalise_words("  a\tb \u{1f}c\u{a0} d  "), "a b c d");
        let lines: Vec<_> = numbered_lines("x\r\ny\n\nz\n").collect();
        assert_eq!(lines, vec![(1, "x"), (2, "y"), (3, ""), (4, "z")]);
    }
}
