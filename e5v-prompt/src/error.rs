//! The crate's error type.

use crate::Modality;

/// Everything that can go wrong while building or rendering a prompt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// A template has the wrong number of one placeholder for its modality.
    #[error(
        "a {modality} template needs {expected} `{placeholder}` placeholder(s), \
         found {found} in {template:?}"
    )]
    PlaceholderCount {
        /// The placeholder that was miscounted: `<sent>` or `<image>`.
        placeholder: &'static str,
        /// The modality the template was built for.
        modality: Modality,
        /// How many the modality requires (0 or 1).
        expected: usize,
        /// How many the template contains.
        found: usize,
        /// The offending template.
        template: String,
    },
    /// The template has a `<sent>` slot but no text was given.
    #[error("the template {template:?} needs a text for its `<sent>` slot, none was given")]
    MissingText {
        /// The template.
        template: String,
    },
    /// A text was given to a template without a `<sent>` slot.
    #[error("the template {template:?} has no `<sent>` slot, but a text was given")]
    UnexpectedText {
        /// The template.
        template: String,
    },
    /// The user text contains a special-token string of the chat template's tokenizer.
    ///
    /// The tokenizer would read it as that special token, not as text, so the text cannot
    /// be embedded faithfully (see the crate docs, *Untrusted text*).
    #[error(
        "the text contains the special token {token:?}, which the tokenizer cannot read as text"
    )]
    SpecialTokenInText {
        /// The special-token string found (for a token family, its common prefix).
        token: String,
    },
}
