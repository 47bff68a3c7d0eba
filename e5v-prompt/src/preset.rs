//! The prompts of the E5-V paper, exactly as the authors' code writes them.

use crate::{FashionCategory, Modality, Template};

/// A prompt of the E5-V paper; [`Preset::template`] gives its inner [`Template`].
///
/// The strings are the authors' own, typos and whitespace included. They are meant for
/// [`ChatTemplate::Llama3`](crate::ChatTemplate::Llama3); the baselines in the authors' code
/// use slightly different whitespace around some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Preset {
    /// Text for retrieval: `"<sent>\nSummary above sentence in one word: "` (trailing space).
    Text,
    /// Image: `"<image>\nSummary above image in one word: "`. Also the prompt of the rendered
    /// caption images of the image-image evaluation.
    Image,
    /// CIRR gallery image: `"<image>\n Describe this image in one word:"`.
    CirrGallery,
    /// CIRR query (image + modification text):
    /// `"<image>Modify this image with \"<sent>\", desribe modified image in one word:"`.
    CirrQuery,
    /// FashionIQ gallery image:
    /// `"<image>\n Describe this CAT in one word based on its style:"`, CAT being the
    /// category's [noun](FashionCategory::prompt_noun).
    FashionIqGallery(FashionCategory),
    /// FashionIQ query (image + captions):
    /// `"<image> change the style of this CAT to <sent>\n Desribe this modified CAT in one word based on its style:"`;
    /// fill it with each text of [`fashion_iq_texts`](crate::fashion_iq_texts).
    FashionIqQuery(FashionCategory),
    /// STS sentence: `" <sent>\nSummary above sentence in one word:"` (leading space, none
    /// trailing); fill it with [`normalize_sts_sentence`](crate::normalize_sts_sentence).
    Sts,
}

impl Preset {
    /// The slots of the preset's template.
    pub const fn modality(self) -> Modality {
        match self {
            Self::Text | Self::Sts => Modality::Text,
            Self::Image | Self::CirrGallery | Self::FashionIqGallery(_) => Modality::Image,
            Self::CirrQuery | Self::FashionIqQuery(_) => Modality::Composed,
        }
    }

    /// The preset's inner prompt.
    pub fn template(self) -> Template {
        let source = match self {
            Self::Text => "<sent>\nSummary above sentence in one word: ".to_owned(),
            Self::Image => "<image>\nSummary above image in one word: ".to_owned(),
            Self::CirrGallery => "<image>\n Describe this image in one word:".to_owned(),
            Self::CirrQuery => {
                "<image>Modify this image with \"<sent>\", desribe modified image in one word:"
                    .to_owned()
            }
            Self::FashionIqGallery(category) => format!(
                "<image>\n Describe this {} in one word based on its style:",
                category.prompt_noun()
            ),
            Self::FashionIqQuery(category) => format!(
                "<image> change the style of this {noun} to <sent>\n Desribe this modified {noun} \
                 in one word based on its style:",
                noun = category.prompt_noun()
            ),
            Self::Sts => " <sent>\nSummary above sentence in one word:".to_owned(),
        };
        // Every preset is valid (see the tests), so it skips the counting.
        Template::split(source, self.modality())
    }
}

impl From<Preset> for Template {
    fn from(preset: Preset) -> Self {
        preset.template()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChatTemplate, PromptError, Segment, fashion_iq_texts, normalize_sts_sentence};
    use FashionCategory::{Dress, Shirt, Toptee};

    const ALL: [Preset; 10] = [
        Preset::Text,
        Preset::Image,
        Preset::CirrGallery,
        Preset::CirrQuery,
        Preset::FashionIqGallery(Dress),
        Preset::FashionIqGallery(Shirt),
        Preset::FashionIqGallery(Toptee),
        Preset::FashionIqQuery(Dress),
        Preset::FashionIqQuery(Shirt),
        Preset::FashionIqQuery(Toptee),
    ];

    const HEAD: &str = "<|start_header_id|>user<|end_header_id|>\n\n";

    /// Renders with Llama-3 and checks the segments: text, then (for images) the image slot
    /// right after the chat header, then text.
    fn render(preset: Preset, text: Option<&str>) -> Result<String, PromptError> {
        let prompt = preset.template().render(ChatTemplate::Llama3, text)?;
        match prompt.segments() {
            [Segment::Text(head), Segment::Image, Segment::Text(_)] => {
                assert_eq!(head, HEAD);
                assert!(preset.modality().has_image());
            }
            [Segment::Text(_)] => assert!(!preset.modality().has_image()),
            other => panic!("unexpected segments {other:?}"),
        }
        Ok(prompt.to_string())
    }

    #[test]
    fn every_preset_is_a_valid_template() {
        for preset in ALL.into_iter().chain([Preset::Sts]) {
            let template = preset.template();
            assert_eq!(template.modality(), preset.modality());
            assert_eq!(
                Template::new(template.as_str(), preset.modality()),
                Ok(template)
            );
        }
    }

    #[test]
    fn text() -> Result<(), PromptError> {
        assert_eq!(
            render(Preset::Text, Some("hello world"))?,
            "<|start_header_id|>user<|end_header_id|>\n\nhello world\nSummary above sentence in \
             one word: <|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n \n"
        );
        Ok(())
    }

    #[test]
    fn image() -> Result<(), PromptError> {
        let prompt = Preset::Image
            .template()
            .render(ChatTemplate::Llama3, None)?;
        assert_eq!(
            prompt.segments(),
            [
                Segment::Text("<|start_header_id|>user<|end_header_id|>\n\n".to_owned()),
                Segment::Image,
                Segment::Text(
                    "\nSummary above image in one word: <|eot_id|><|start_header_id|>assistant\
                     <|end_header_id|>\n\n \n"
                        .to_owned()
                ),
            ]
        );
        assert_eq!(
            prompt.to_string(),
            "<|start_header_id|>user<|end_header_id|>\n\n<image>\nSummary above image in one \
             word: <|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n \n"
        );
        Ok(())
    }

    #[test]
    fn cirr() -> Result<(), PromptError> {
        assert_eq!(
            render(Preset::CirrGallery, None)?,
            "<|start_header_id|>user<|end_header_id|>\n\n<image>\n Describe this image in one \
             word:<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n \n"
        );
        assert_eq!(
            render(Preset::CirrQuery, Some("make it red"))?,
            "<|start_header_id|>user<|end_header_id|>\n\n<image>Modify this image with \"make it \
             red\", desribe modified image in one word:<|eot_id|><|start_header_id|>assistant\
             <|end_header_id|>\n\n \n"
        );
        Ok(())
    }

    #[test]
    fn fashion_iq_gallery() -> Result<(), PromptError> {
        for (category, noun) in [(Dress, "dress"), (Shirt, "shirt"), (Toptee, "shirt")] {
            assert_eq!(
                render(Preset::FashionIqGallery(category), None)?,
                format!(
                    "<|start_header_id|>user<|end_header_id|>\n\n<image>\n Describe this {noun} \
                     in one word based on its style:<|eot_id|><|start_header_id|>assistant\
                     <|end_header_id|>\n\n \n"
                )
            );
        }
        Ok(())
    }

    #[test]
    fn fashion_iq_query() -> Result<(), PromptError> {
        let [forward, backward] = fashion_iq_texts("is red.", "has no sleeves");
        let query = Preset::FashionIqQuery(Toptee);
        assert_eq!(
            render(query, Some(&forward))?,
            "<|start_header_id|>user<|end_header_id|>\n\n<image> change the style of this shirt \
             to is red, has no sleeves\n Desribe this modified shirt in one word based on its \
             style:<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n \n"
        );
        assert_eq!(
            render(Preset::FashionIqQuery(Dress), Some(&backward))?,
            "<|start_header_id|>user<|end_header_id|>\n\n<image> change the style of this dress \
             to has no sleeves, is red\n Desribe this modified dress in one word based on its \
             style:<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n \n"
        );
        Ok(())
    }

    #[test]
    fn sts() -> Result<(), PromptError> {
        let sentence = normalize_sts_sentence("A man is playing a \"flute\"?");
        assert_eq!(
            render(Preset::Sts, Some(&sentence))?,
            "<|start_header_id|>user<|end_header_id|>\n\n A man is playing a 'flute'.\nSummary \
             above sentence in one word:<|eot_id|><|start_header_id|>assistant<|end_header_id|>\
             \n\n \n"
        );
        Ok(())
    }
}
