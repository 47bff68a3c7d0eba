//! FashionIQ: garment categories and the caption pair.

/// A FashionIQ category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FashionCategory {
    /// `dress`.
    Dress,
    /// `shirt`.
    Shirt,
    /// `toptee`; its prompts say "shirt", as in the authors' code.
    Toptee,
}

impl FashionCategory {
    /// The noun written into the FashionIQ prompts: `dress`, or `shirt` for both
    /// [`Shirt`](Self::Shirt) and [`Toptee`](Self::Toptee).
    pub const fn prompt_noun(self) -> &'static str {
        match self {
            Self::Dress => "dress",
            Self::Shirt | Self::Toptee => "shirt",
        }
    }
}

/// The two `<sent>` texts of a FashionIQ query, from its two modification captions.
///
/// Each caption is stripped of `.`, `?`, `,` and space at both ends (Python
/// `c.strip('.?, ')`), then they are joined by `", "` in both orders: `[c1 + ", " + c2,
/// c2 + ", " + c1]`. The reference embeds both with
/// [`Preset::FashionIqQuery`](crate::Preset::FashionIqQuery), sums the two raw (unnormalised)
/// vectors and normalises the sum.
///
/// ```
/// let texts = e5v_prompt::fashion_iq_texts("is red.", " has short sleeves ");
/// assert_eq!(texts, ["is red, has short sleeves", "has short sleeves, is red"]);
/// ```
pub fn fashion_iq_texts(first: &str, second: &str) -> [String; 2] {
    let strip = |caption: &str| caption.trim_matches(['.', '?', ',', ' ']).to_owned();
    let (first, second) = (strip(first), strip(second));
    [format!("{first}, {second}"), format!("{second}, {first}")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_the_python_set_at_both_ends() {
        let [forward, backward] = fashion_iq_texts(" ,.?is red? , ", "\tmore. fitted.\n");
        // Tabs and newlines are not in the set: they stay, and protect what they enclose.
        assert_eq!(forward, "is red, \tmore. fitted.\n");
        assert_eq!(backward, "\tmore. fitted.\n, is red");
    }

    #[test]
    fn inner_punctuation_is_kept() {
        assert_eq!(
            fashion_iq_texts("Is darker, less busy.", "has a v-neck?"),
            [
                "Is darker, less busy, has a v-neck",
                "has a v-neck, Is darker, less busy"
            ]
        );
    }

    #[test]
    fn empty_captions_still_join() {
        assert_eq!(
            fashion_iq_texts("...", "is blue"),
            [", is blue", "is blue, "]
        );
    }

    #[test]
    fn toptee_says_shirt() {
        assert_eq!(FashionCategory::Dress.prompt_noun(), "dress");
        assert_eq!(FashionCategory::Shirt.prompt_noun(), "shirt");
        assert_eq!(FashionCategory::Toptee.prompt_noun(), "shirt");
    }
}
