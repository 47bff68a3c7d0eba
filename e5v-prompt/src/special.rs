//! Special-token strings of the supported tokenizers, and how to find them in a text.

/// Llama-3 (E5-V): the header/turn tokens, the reserved family and LLaVA's added `<image>`.
pub(crate) const LLAMA3: &[&str] = &[
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|reserved_special_token_",
    "<image>",
];

/// LLaVA-NeXT-Mistral: the SentencePiece controls plus LLaVA's added `<image>` and `<pad>`.
pub(crate) const MISTRAL: &[&str] = &["<s>", "</s>", "<unk>", "<image>", "<pad>"];

/// Phi-3-V: the SentencePiece controls, the chat tokens, the placeholder family and the
/// `<|image_N|>` markers its processor parses.
pub(crate) const PHI3: &[&str] = &[
    "<s>",
    "</s>",
    "<unk>",
    "<|endoftext|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
    "<|placeholder",
    "<|image_",
];

/// No chat wrapper: only the image marker is known.
pub(crate) const RAW: &[&str] = &["<image>"];

/// Finds the first special-token string that occurs in `text`.
///
/// `specials` are matched as plain substrings, so an entry may also be the common prefix of a
/// token family. Returns the entry that starts earliest in `text` (the longest one on a tie),
/// or `None` if the text contains none. Empty entries are ignored.
///
/// Use it with [`ChatTemplate::special_tokens`](crate::ChatTemplate::special_tokens), or with
/// the added tokens of the tokenizer actually loaded.
///
/// ```
/// use e5v_prompt::{find_special_token, ChatTemplate};
///
/// let specials = ChatTemplate::Llama3.special_tokens();
/// assert_eq!(find_special_token("a <|eot_id|> b <image>", specials), Some("<|eot_id|>"));
/// assert_eq!(find_special_token("a plain <b>text</b>", specials), None);
/// ```
pub fn find_special_token<'s, S: AsRef<str>>(text: &str, specials: &'s [S]) -> Option<&'s str> {
    specials
        .iter()
        .map(AsRef::as_ref)
        .filter(|special| !special.is_empty())
        .filter_map(|special| text.find(special).map(|at| (at, special)))
        .min_by_key(|&(at, special)| (at, std::cmp::Reverse(special.len())))
        .map(|(_, special)| special)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_earliest_then_the_longest() {
        let specials = ["<|end|>", "<|endoftext|>", "<s>", "<|end"];
        assert_eq!(find_special_token("x <s> <|end|>", &specials), Some("<s>"));
        assert_eq!(
            find_special_token("x <|endoftext|>", &specials),
            Some("<|endoftext|>")
        );
        assert_eq!(find_special_token("x <|end|>", &specials), Some("<|end|>"));
    }

    #[test]
    fn accepts_owned_lists_and_ignores_empty_entries() {
        let specials = vec![String::new(), "<image>".to_owned()];
        assert_eq!(find_special_token("plain", &specials), None);
        assert_eq!(
            find_special_token("an <image> here", &specials),
            Some("<image>")
        );
    }

    #[test]
    fn families_match_by_prefix() {
        assert_eq!(
            find_special_token("<|reserved_special_token_42|>", LLAMA3),
            Some("<|reserved_special_token_")
        );
        assert_eq!(
            find_special_token("see <|image_2|>", PHI3),
            Some("<|image_")
        );
    }

    #[test]
    fn every_list_knows_its_image_marker() {
        for chat in [
            crate::ChatTemplate::Llama3,
            crate::ChatTemplate::Mistral,
            crate::ChatTemplate::Phi3,
            crate::ChatTemplate::Raw,
        ] {
            assert!(find_special_token(chat.image_marker(), chat.special_tokens()).is_some());
        }
    }
}
