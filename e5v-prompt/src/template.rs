//! Validated inner prompts with `<sent>` and `<image>` slots, and their rendering.

use std::fmt;

use crate::{ChatTemplate, Prompt, PromptError, Segment, find_special_token};

/// What a template embeds: which slots it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Modality {
    /// A text: one `<sent>`, no `<image>`.
    Text,
    /// An image: one `<image>`, no `<sent>`.
    Image,
    /// An image with a text (composed retrieval): one `<image>` and one `<sent>`.
    Composed,
}

impl Modality {
    /// Whether templates of this modality have a `<sent>` slot.
    pub const fn has_text(self) -> bool {
        matches!(self, Self::Text | Self::Composed)
    }

    /// Whether templates of this modality have an `<image>` slot.
    pub const fn has_image(self) -> bool {
        matches!(self, Self::Image | Self::Composed)
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Image => "image",
            Self::Composed => "composed",
        })
    }
}

/// A piece of a template, split once at construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part {
    Literal(String),
    Sent,
    Image,
}

/// A validated inner prompt, e.g. `"<sent>\nSummary above sentence in one word: "`.
///
/// `<sent>` is the slot for the text and `<image>` the slot for the image. A template holds
/// exactly the slots of its [`Modality`]. It is split at its slots once, when built, so
/// rendering inserts the text verbatim and a text can never create a slot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Template {
    source: String,
    modality: Modality,
    parts: Vec<Part>,
}

impl Template {
    /// The text slot.
    pub const SENT: &'static str = "<sent>";
    /// The image slot.
    pub const IMAGE: &'static str = "<image>";

    /// Validates `source` for `modality`: exactly one `<sent>` if the modality has a text,
    /// none otherwise, and the same for `<image>`.
    ///
    /// # Errors
    /// [`PromptError::PlaceholderCount`] naming the first miscounted placeholder.
    pub fn new(source: impl Into<String>, modality: Modality) -> Result<Self, PromptError> {
        let template = Self::split(source.into(), modality);
        for (placeholder, part, expected) in [
            (Self::SENT, Part::Sent, modality.has_text()),
            (Self::IMAGE, Part::Image, modality.has_image()),
        ] {
            let found = template.parts.iter().filter(|p| **p == part).count();
            if found != usize::from(expected) {
                return Err(PromptError::PlaceholderCount {
                    placeholder,
                    modality,
                    expected: usize::from(expected),
                    found,
                    template: template.source,
                });
            }
        }
        Ok(template)
    }

    /// A text template: [`Template::new`] with [`Modality::Text`].
    ///
    /// # Errors
    /// See [`Template::new`].
    pub fn text(source: impl Into<String>) -> Result<Self, PromptError> {
        Self::new(source, Modality::Text)
    }

    /// An image template: [`Template::new`] with [`Modality::Image`].
    ///
    /// # Errors
    /// See [`Template::new`].
    pub fn image(source: impl Into<String>) -> Result<Self, PromptError> {
        Self::new(source, Modality::Image)
    }

    /// A composed (image + text) template: [`Template::new`] with [`Modality::Composed`].
    ///
    /// # Errors
    /// See [`Template::new`].
    pub fn composed(source: impl Into<String>) -> Result<Self, PromptError> {
        Self::new(source, Modality::Composed)
    }

    /// Splits `source` at its placeholders without validating the counts.
    pub(crate) fn split(source: String, modality: Modality) -> Self {
        let mut parts = Vec::new();
        let mut rest = source.as_str();
        loop {
            let next = [(Self::SENT, Part::Sent), (Self::IMAGE, Part::Image)]
                .into_iter()
                .filter_map(|(placeholder, part)| {
                    rest.find(placeholder)
                        .map(|at| (at, placeholder.len(), part))
                })
                .min_by_key(|&(at, ..)| at);
            let Some((at, len, part)) = next else { break };
            if at > 0 {
                parts.push(Part::Literal(rest[..at].to_owned()));
            }
            parts.push(part);
            rest = &rest[at + len..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Self {
            source,
            modality,
            parts,
        }
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The template's modality, i.e. which slots it has.
    pub fn modality(&self) -> Modality {
        self.modality
    }

    /// Wraps the template in `chat` and fills `<sent>` with `text`, verbatim.
    ///
    /// `text` must be `Some` exactly when the template has a `<sent>` slot. The image is left
    /// as a [`Segment::Image`] for the caller to splice in.
    ///
    /// # Errors
    /// [`PromptError::MissingText`] or [`PromptError::UnexpectedText`] when `text` does not
    /// match the slots; [`PromptError::SpecialTokenInText`] when `text` contains one of
    /// `chat`'s [special tokens](ChatTemplate::special_tokens).
    pub fn render(&self, chat: ChatTemplate, text: Option<&str>) -> Result<Prompt, PromptError> {
        let text = match (self.modality.has_text(), text) {
            (true, Some(text)) => text,
            (false, None) => "",
            (true, None) => {
                return Err(PromptError::MissingText {
                    template: self.source.clone(),
                });
            }
            (false, Some(_)) => {
                return Err(PromptError::UnexpectedText {
                    template: self.source.clone(),
                });
            }
        };
        if let Some(token) = find_special_token(text, chat.special_tokens()) {
            return Err(PromptError::SpecialTokenInText {
                token: token.to_owned(),
            });
        }
        Ok(self.fill(chat, text))
    }

    /// Assembles the segments: `text` goes into the `<sent>` part and is never scanned.
    fn fill(&self, chat: ChatTemplate, text: &str) -> Prompt {
        fn flush(segments: &mut Vec<Segment>, buffer: &mut String) {
            if !buffer.is_empty() {
                segments.push(Segment::Text(std::mem::take(buffer)));
            }
        }
        let (before, after) = chat.wrapper();
        let mut segments = Vec::new();
        let mut buffer = before.to_owned();
        for part in &self.parts {
            match part {
                Part::Literal(literal) => buffer.push_str(literal),
                Part::Sent => buffer.push_str(text),
                Part::Image => {
                    flush(&mut segments, &mut buffer);
                    segments.push(Segment::Image);
                }
            }
        }
        buffer.push_str(after);
        flush(&mut segments, &mut buffer);
        Prompt::new(segments, chat.image_marker())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Segment {
        Segment::Text(s.to_owned())
    }

    fn count_error(
        placeholder: &'static str,
        modality: Modality,
        expected: usize,
        found: usize,
        template: &str,
    ) -> PromptError {
        PromptError::PlaceholderCount {
            placeholder,
            modality,
            expected,
            found,
            template: template.to_owned(),
        }
    }

    #[test]
    fn text_template_needs_one_sent_and_no_image() {
        assert!(Template::text("<sent> in one word:").is_ok());
        for (source, placeholder, expected, found) in [
            ("in one word:", "<sent>", 1, 0),
            ("<sent> <sent>", "<sent>", 1, 2),
            ("<sent> <image>", "<image>", 0, 1),
        ] {
            assert_eq!(
                Template::text(source),
                Err(count_error(
                    placeholder,
                    Modality::Text,
                    expected,
                    found,
                    source
                ))
            );
        }
    }

    #[test]
    fn image_template_needs_one_image_and_no_sent() {
        assert!(Template::image("<image> in one word:").is_ok());
        for (source, placeholder, expected, found) in [
            ("in one word:", "<image>", 1, 0),
            ("<image><image><image>", "<image>", 1, 3),
            ("<image> <sent>", "<sent>", 0, 1),
        ] {
            assert_eq!(
                Template::image(source),
                Err(count_error(
                    placeholder,
                    Modality::Image,
                    expected,
                    found,
                    source
                ))
            );
        }
    }

    #[test]
    fn composed_template_needs_one_of_each() {
        assert!(Template::composed("<image> with <sent>").is_ok());
        for (source, placeholder, expected, found) in [
            ("<image> alone", "<sent>", 1, 0),
            ("<sent> alone", "<image>", 1, 0),
            ("<image> <sent> <sent>", "<sent>", 1, 2),
            ("<image> <sent> <image>", "<image>", 1, 2),
        ] {
            assert_eq!(
                Template::composed(source),
                Err(count_error(
                    placeholder,
                    Modality::Composed,
                    expected,
                    found,
                    source
                ))
            );
        }
    }

    #[test]
    fn error_message_names_placeholder_count_and_template() {
        let Err(error) = Template::text("no slot") else {
            panic!("accepted a template without <sent>")
        };
        assert_eq!(
            error.to_string(),
            "a text template needs 1 `<sent>` placeholder(s), found 0 in \"no slot\""
        );
    }

    #[test]
    fn exposes_its_slots() -> Result<(), PromptError> {
        let template = Template::composed("<image> with <sent>")?;
        assert_eq!(template.modality(), Modality::Composed);
        assert!(template.modality().has_text() && template.modality().has_image());
        assert!(!Modality::Text.has_image() && !Modality::Image.has_text());
        assert_eq!(template.as_str(), "<image> with <sent>");
        Ok(())
    }

    #[test]
    fn text_must_match_the_sent_slot() -> Result<(), PromptError> {
        let image = Template::image("<image>!")?;
        let sent = Template::text("<sent>!")?;
        assert_eq!(
            image.render(ChatTemplate::Raw, Some("x")),
            Err(PromptError::UnexpectedText {
                template: "<image>!".to_owned()
            })
        );
        assert_eq!(
            sent.render(ChatTemplate::Raw, None),
            Err(PromptError::MissingText {
                template: "<sent>!".to_owned()
            })
        );
        Ok(())
    }

    #[test]
    fn special_tokens_in_text_are_rejected() -> Result<(), PromptError> {
        let template = Template::text("<sent>")?;
        for (chat, bad, token) in [
            (ChatTemplate::Llama3, "end<|eot_id|>", "<|eot_id|>"),
            (ChatTemplate::Llama3, "an <image> here", "<image>"),
            (ChatTemplate::Mistral, "<s>strike</s>", "<s>"),
            (ChatTemplate::Phi3, "look <|image_1|>", "<|image_"),
            (ChatTemplate::Raw, "<image>", "<image>"),
        ] {
            assert_eq!(
                template.render(chat, Some(bad)),
                Err(PromptError::SpecialTokenInText {
                    token: token.to_owned()
                })
            );
        }
        Ok(())
    }

    #[test]
    fn text_never_creates_a_slot() -> Result<(), PromptError> {
        // Below the special-token check: the text is inserted into the split template as is.
        let template = Template::composed("<image>[<sent>]")?;
        let prompt = template.fill(ChatTemplate::Raw, "<image> and <sent>");
        assert_eq!(
            prompt.segments(),
            [Segment::Image, text("[<image> and <sent>]")]
        );

        // `<sent>` is no special token, so it passes render and stays text.
        let prompt = template.render(ChatTemplate::Llama3, Some("say <sent>"))?;
        assert_eq!(
            prompt
                .segments()
                .iter()
                .filter(|s| **s == Segment::Image)
                .count(),
            1
        );
        assert_eq!(
            prompt.segments()[2],
            text("[say <sent>]<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n \n")
        );

        // Phi-3 marks images with `<|image_1|>`, so a literal `<image>` is plain text there.
        let prompt = Template::text("<sent>")?.render(ChatTemplate::Phi3, Some("<image>"));
        assert_eq!(
            prompt?.segments(),
            [text("<|user|>\n<image><|end|>\n<|assistant|>\n")]
        );
        Ok(())
    }

    #[test]
    fn every_chat_template_wraps_and_marks_the_image() -> Result<(), PromptError> {
        let template = Template::composed("<image>: <sent>")?;
        for (chat, expected) in [
            (ChatTemplate::Mistral, "[INST] <image>: hi [/INST]"),
            (
                ChatTemplate::Phi3,
                "<|user|>\n<|image_1|>: hi<|end|>\n<|assistant|>\n",
            ),
            (ChatTemplate::Raw, "<image>: hi"),
        ] {
            let prompt = template.render(chat, Some("hi"))?;
            assert!(prompt.has_image());
            assert_eq!(prompt.to_string(), expected);
        }
        let prompt = template.render(ChatTemplate::Raw, Some(""))?;
        assert_eq!(prompt.segments(), [Segment::Image, text(": ")]);
        Ok(())
    }

    #[test]
    fn raw_text_prompt_is_the_text_alone() -> Result<(), PromptError> {
        let prompt = Template::text("<sent>")?.render(ChatTemplate::Raw, Some(""))?;
        assert!(prompt.segments().is_empty() && !prompt.has_image());
        Ok(())
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Template sources: placeholders, their fragments and arbitrary text, in any order.
        fn source() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just("<sent>".to_string()),
                Just("<image>".to_string()),
                Just("<".to_string()),
                Just(">".to_string()),
                Just("<sent".to_string()),
                Just("image>".to_string()),
                "\\PC{0,6}",
            ];
            prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
        }

        /// User text, often holding placeholders and special tokens.
        fn user_text() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just("<sent>".to_string()),
                Just("<image>".to_string()),
                Just("<|eot_id|>".to_string()),
                Just("[INST]".to_string()),
                Just("<|image_1|>".to_string()),
                "\\PC{0,8}",
            ];
            prop::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
        }

        const MODALITIES: [Modality; 3] = [Modality::Text, Modality::Image, Modality::Composed];
        const CHATS: [ChatTemplate; 4] = [
            ChatTemplate::Llama3,
            ChatTemplate::Mistral,
            ChatTemplate::Phi3,
            ChatTemplate::Raw,
        ];

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

            /// Any source either fails with a typed error or is a template whose rendering has
            /// exactly the modality's image slots, whatever the user text holds: text can never
            /// create, remove or move a slot, and the text arrives verbatim.
            #[test]
            fn user_text_never_changes_the_slots(source in source(), text in user_text()) {
                for modality in MODALITIES {
                    let Ok(template) = Template::new(source.clone(), modality) else { continue };
                    for chat in CHATS {
                        let text = modality.has_text().then_some(text.as_str());
                        let Ok(prompt) = template.render(chat, text) else { continue };
                        let images = prompt.segments().iter().filter(|s| **s == Segment::Image).count();
                        prop_assert_eq!(images, usize::from(modality.has_image()));
                        prop_assert!(!prompt.segments().contains(&Segment::Text(String::new())));
                        if let Some(text) = text {
                            let joined: String = prompt.segments().iter().map(|s| match s {
                                Segment::Text(t) => t.as_str(),
                                Segment::Image => "",
                            }).collect();
                            prop_assert!(joined.contains(text));
                        }
                    }
                }
            }
        }
    }
}
