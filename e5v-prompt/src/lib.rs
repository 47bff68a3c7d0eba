//! Typed E5-V prompts: chat wrappers, validated templates, the paper's presets, rendered into
//! segments ready to tokenise.
//!
//! E5-V embeds every input through a prompt that asks for a summary "in one word". A prompt is
//! a [`ChatTemplate`] (the model's chat wrapper) around a [`Template`] (the inner prompt, with a
//! `<sent>` slot for text and an `<image>` slot for the image). [`Preset`] holds the paper's
//! exact templates. [`Template::render`] fills the text in and returns a [`Prompt`]: text
//! [`Segment`]s and at most one [`Segment::Image`], so the caller tokenises the texts and splices
//! the image features in without searching any string.
//!
//! ```
//! use e5v_prompt::{ChatTemplate, Preset, Segment};
//!
//! let prompt = Preset::Text.template().render(ChatTemplate::Llama3, Some("a cat"))?;
//! assert_eq!(
//!     prompt.to_string(),
//!     "<|start_header_id|>user<|end_header_id|>\n\na cat\nSummary above sentence in one word: \
//!      <|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n \n"
//! );
//!
//! let prompt = Preset::Image.template().render(ChatTemplate::Llama3, None)?;
//! for segment in prompt.segments() {
//!     match segment {
//!         Segment::Text(text) => { /* tokenise `text` */ }
//!         Segment::Image => { /* splice the image features here */ }
//!     }
//! }
//! # Ok::<(), e5v_prompt::PromptError>(())
//! ```
//!
//! The dataset-specific text preparation of the paper's evaluations lives here too:
//! [`normalize_sts_sentence`] and [`fashion_iq_texts`].
//!
//! # Untrusted text
//!
//! The user's text is inserted verbatim into the `<sent>` slot: it is never interpreted, and
//! since the template is split at its slots before the text goes in, a text containing
//! `<sent>` or `<image>` cannot create a slot. A text that contains a special-token string of
//! the model's tokenizer (`<image>`, `<|eot_id|>`, ... see [`ChatTemplate::special_tokens`]) is
//! rejected instead, with [`PromptError::SpecialTokenInText`]: the tokenizer would read that
//! string as the special token, not as text, so the text cannot be embedded as written. This
//! differs from transformers on purpose: there the whole prompt is one string, and such a text
//! silently becomes a control token (an `<image>` in a caption adds an image slot, an
//! `<|eot_id|>` ends the user turn). [`Template::render`] checks the tokens this crate knows;
//! a caller holding the real tokenizer should also check its added tokens with
//! [`find_special_token`].

mod chat;
mod error;
mod fashion;
mod preset;
mod prompt;
mod special;
mod sts;
mod template;

pub use chat::ChatTemplate;
pub use error::PromptError;
pub use fashion::{FashionCategory, fashion_iq_texts};
pub use preset::Preset;
pub use prompt::{Prompt, Segment};
pub use special::find_special_token;
pub use sts::normalize_sts_sentence;
pub use template::{Modality, Template};
