//! The sentence normalisation of the STS evaluation.

/// Normalises a sentence as the authors' STS evaluation does before filling
/// [`Preset::Sts`](crate::Preset::Sts).
///
/// The steps, in the order of the authors' `eval_sts.py`:
/// 1. split at whitespace and join the words with single spaces (Python `' '.join(s.split())`);
/// 2. append `.` unless the sentence is empty or ends in one of `.`, `?`, `"`, `'`;
/// 3. replace every `"` with `'`;
/// 4. replace a final `?` with `.`.
///
/// Checking the ending after steps 3 and 4 instead (the order of the reference notes) gives
/// the same result: a final `"` becomes `'` and a final `?` becomes `.`, both of which are in
/// the set. An empty sentence stays empty; SentEval drops those before they get here.
///
/// ```
/// use e5v_prompt::normalize_sts_sentence;
///
/// assert_eq!(normalize_sts_sentence("  a \"big\"\tcat "), "a 'big' cat.");
/// assert_eq!(normalize_sts_sentence("is it?"), "is it.");
/// ```
pub fn normalize_sts_sentence(sentence: &str) -> String {
    let mut s = sentence
        .split(is_python_whitespace)
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if s.chars()
        .next_back()
        .is_some_and(|last| !".?\"'".contains(last))
    {
        s.push('.');
    }
    let mut s = s.replace('"', "'");
    if s.ends_with('?') {
        s.pop();
        s.push('.');
    }
    s
}

/// Python's `str.isspace`: Unicode `White_Space` plus the separators U+001C..=U+001F.
fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::normalize_sts_sentence as norm;

    #[test]
    fn joins_words_with_single_spaces() {
        assert_eq!(
            norm("  a\t\tman \n is\u{a0}playing\u{1f}a flute "),
            "a man is playing a flute."
        );
    }

    #[test]
    fn appends_a_period_unless_the_sentence_ends_in_one_of_the_set() {
        assert_eq!(norm("A dog runs"), "A dog runs.");
        assert_eq!(norm("A dog runs."), "A dog runs.");
        assert_eq!(norm("It's the dogs'"), "It's the dogs'");
        assert_eq!(norm("Who runs?"), "Who runs.");
        assert_eq!(norm("A dog runs!"), "A dog runs!.");
        assert_eq!(norm("A dog runs ."), "A dog runs .");
    }

    #[test]
    fn double_quotes_become_single_quotes() {
        assert_eq!(norm("He said \"hi\""), "He said 'hi'");
        assert_eq!(norm("\"Hi\" he said"), "'Hi' he said.");
    }

    #[test]
    fn only_a_final_question_mark_becomes_a_period() {
        assert_eq!(norm("Why? Because?"), "Why? Because.");
        assert_eq!(norm("Why? Because"), "Why? Because.");
        assert_eq!(norm("?"), ".");
        assert_eq!(norm("Why \"?\""), "Why '?'");
    }

    #[test]
    fn empty_stays_empty() {
        assert_eq!(norm(""), "");
        assert_eq!(norm(" \t\n"), "");
    }
}
