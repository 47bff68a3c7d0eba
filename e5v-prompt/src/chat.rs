//! Chat wrappers: the model-specific text around the inner prompt.

use crate::special;

/// The chat wrapper put around a [`Template`](crate::Template) when it is rendered.
///
/// `{}` below stands for the inner prompt. No wrapper contains a BOS token: the tokenizer adds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChatTemplate {
    /// E5-V (LLaVA-NeXT Llama-3):
    /// `"<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n \n"`.
    #[default]
    Llama3,
    /// LLaVA-NeXT Mistral (a baseline): `"[INST] {} [/INST]"`.
    Mistral,
    /// Phi-3-V (a baseline): `"<|user|>\n{}<|end|>\n<|assistant|>\n"`, image marker `<|image_1|>`.
    Phi3,
    /// No wrapper: the inner prompt alone, image marker `<image>`.
    Raw,
}

impl ChatTemplate {
    /// The text before and after the inner prompt.
    pub(crate) const fn wrapper(self) -> (&'static str, &'static str) {
        match self {
            Self::Llama3 => (
                "<|start_header_id|>user<|end_header_id|>\n\n",
                "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n \n",
            ),
            Self::Mistral => ("[INST] ", " [/INST]"),
            Self::Phi3 => ("<|user|>\n", "<|end|>\n<|assistant|>\n"),
            Self::Raw => ("", ""),
        }
    }

    /// The string the model's processor reads as "the image goes here".
    ///
    /// A rendered [`Prompt`](crate::Prompt) marks the image with
    /// [`Segment::Image`](crate::Segment::Image) instead; this string only appears in its
    /// `Display` output, which is the string transformers would tokenise.
    pub const fn image_marker(self) -> &'static str {
        match self {
            Self::Phi3 => "<|image_1|>",
            Self::Llama3 | Self::Mistral | Self::Raw => "<image>",
        }
    }

    /// The special-token strings this crate knows for the chat template's tokenizer.
    ///
    /// They are matched as substrings by [`find_special_token`](crate::find_special_token),
    /// and a few entries are the common prefix of a token family
    /// (`<|reserved_special_token_`, `<|placeholder`, `<|image_`). The list is fixed; the
    /// tokenizer actually loaded may know more, which a caller can check the same way.
    pub const fn special_tokens(self) -> &'static [&'static str] {
        match self {
            Self::Llama3 => special::LLAMA3,
            Self::Mistral => special::MISTRAL,
            Self::Phi3 => special::PHI3,
            Self::Raw => special::RAW,
        }
    }
}
