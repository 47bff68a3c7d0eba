//! Template source + user text -> rendered prompt: slots come from the template only.
#![no_main]

use e5v_prompt::{ChatTemplate, Modality, Segment, Template};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (source, text) = input;
    for modality in [Modality::Text, Modality::Image, Modality::Composed] {
        let Ok(template) = Template::new(source, modality) else {
            continue;
        };
        for chat in [
            ChatTemplate::Llama3,
            ChatTemplate::Mistral,
            ChatTemplate::Phi3,
            ChatTemplate::Raw,
        ] {
            let text = modality.has_text().then_some(text);
            if let Ok(prompt) = template.render(chat, text) {
                let images = prompt
                    .segments()
                    .iter()
                    .filter(|s| **s == Segment::Image)
                    .count();
                assert_eq!(images, usize::from(modality.has_image()));
            }
        }
    }
});
