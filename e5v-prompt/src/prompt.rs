//! The rendered, structured prompt.

use std::fmt;

/// One piece of a rendered [`Prompt`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Text to tokenise as it is (never empty).
    Text(String),
    /// The place where the image features are spliced in.
    Image,
}

/// A rendered prompt: text segments and at most one image, in order.
///
/// Tokenise each [`Segment::Text`] on its own and put the image features at
/// [`Segment::Image`]: nothing has to be searched for in the strings. The tokenizer adds the
/// BOS token once, in front of the whole sequence, even when the first segment is the image.
///
/// `Display` writes the single string transformers would tokenise, with the chat template's
/// [image marker](crate::ChatTemplate::image_marker) in place of the image.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Prompt {
    segments: Vec<Segment>,
    image_marker: &'static str,
}

impl Prompt {
    /// Builds a prompt; the caller guarantees non-empty texts and at most one image.
    pub(crate) fn new(segments: Vec<Segment>, image_marker: &'static str) -> Self {
        debug_assert!(segments.iter().filter(|s| **s == Segment::Image).count() <= 1);
        debug_assert!(!segments.contains(&Segment::Text(String::new())));
        Self {
            segments,
            image_marker,
        }
    }

    /// The segments in order: at most one [`Segment::Image`], no empty text.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether the prompt has an image slot.
    pub fn has_image(&self) -> bool {
        self.segments.contains(&Segment::Image)
    }
}

impl fmt::Display for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.segments.iter().try_for_each(|segment| match segment {
            Segment::Text(text) => f.write_str(text),
            Segment::Image => f.write_str(self.image_marker),
        })
    }
}
