//! The inner prompt of each modality an embedding call renders.

use e5v_prompt::{Modality, Preset, Template};

/// One template per modality: what [`Input::Text`](crate::Input::Text),
/// [`Input::Image`](crate::Input::Image) and [`Input::Composed`](crate::Input::Composed) are
/// rendered with, inside the model's chat wrapper. Set once in
/// [`EmbedderOptions::prompts`](crate::EmbedderOptions::prompts), or per call with
/// [`Embedder::embed_with`](crate::Embedder::embed_with) and
/// [`EmbedIter::with_prompts`](crate::EmbedIter::with_prompts).
///
/// A template carries its modality, so it can only ever fill its own slot:
///
/// ```
/// use e5v_core::{Modality, Preset, Prompts};
///
/// // The paper's STS prompt for texts; images and composed queries keep the defaults.
/// let prompts = Prompts::new().with(Preset::Sts.template());
/// assert_eq!(prompts.get(Modality::Text), &Preset::Sts.template());
/// assert_eq!(prompts.get(Modality::Image), &Preset::Image.template());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompts {
    text: Template,
    image: Template,
    composed: Template,
}

impl Default for Prompts {
    /// The paper's retrieval prompts: [`Preset::Text`], [`Preset::Image`] and
    /// [`Preset::CirrQuery`].
    fn default() -> Self {
        Self {
            text: Preset::Text.template(),
            image: Preset::Image.template(),
            composed: Preset::CirrQuery.template(),
        }
    }
}

impl Prompts {
    /// The paper's retrieval prompts (the [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// These prompts with `template` for its modality.
    pub fn with(mut self, template: impl Into<Template>) -> Self {
        self.set(template.into());
        self
    }

    /// Replaces the template of `template`'s modality.
    pub fn set(&mut self, template: Template) {
        match template.modality() {
            Modality::Text => self.text = template,
            Modality::Image => self.image = template,
            Modality::Composed => self.composed = template,
        }
    }

    /// The template of `modality`.
    pub fn get(&self, modality: Modality) -> &Template {
        match modality {
            Modality::Text => &self.text,
            Modality::Image => &self.image,
            Modality::Composed => &self.composed,
        }
    }
}
