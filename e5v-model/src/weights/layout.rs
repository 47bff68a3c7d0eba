//! The key layouts of LLaVA-NeXT checkpoints, normalised to one canonical form.
//!
//! | producer | language model | vision tower | projector / newline |
//! |---|---|---|---|
//! | transformers < 4.52 (royokong/e5-v) | `language_model.model.*` | `vision_tower.vision_model.*` | `multi_modal_projector.*`, `image_newline` |
//! | transformers 4.52-4.57 | `model.language_model.*` | `model.vision_tower.vision_model.*` | `model.multi_modal_projector.*`, `model.image_newline` |
//! | transformers 5.x | `language_model.model.*` | `vision_tower.*` | `multi_modal_projector.*`, `image_newline` |
//!
//! Canonical keys: `decoder.*`, `lm_head.*`, `vision.*`, `projector.*`, `image_newline`;
//! below those prefixes the HF names are kept as they are.

/// (checkpoint prefix, canonical prefix), most specific first: the first match wins.
const PREFIXES: &[(&str, &str)] = &[
    ("model.language_model.", "decoder."),
    ("language_model.model.", "decoder."),
    ("language_model.lm_head.", "lm_head."),
    ("lm_head.", "lm_head."),
    ("model.vision_tower.vision_model.", "vision."),
    ("vision_tower.vision_model.", "vision."),
    ("vision_tower.", "vision."),
    ("model.multi_modal_projector.", "projector."),
    ("multi_modal_projector.", "projector."),
    ("model.image_newline", "image_newline"),
    ("image_newline", "image_newline"),
];

/// The canonical name of a checkpoint key, or `None` if no layout knows it.
pub(crate) fn canonical_key(key: &str) -> Option<String> {
    PREFIXES
        .iter()
        .find_map(|(from, to)| key.strip_prefix(from).map(|rest| format!("{to}{rest}")))
}

#[cfg(test)]
mod tests {
    use super::canonical_key;

    #[test]
    fn all_three_layouts_map_to_the_same_keys() {
        let cases = [
            (
                "language_model.model.layers.0.mlp.up_proj.weight",
                "decoder.layers.0.mlp.up_proj.weight",
            ),
            ("model.language_model.norm.weight", "decoder.norm.weight"),
            ("language_model.lm_head.weight", "lm_head.weight"),
            ("lm_head.weight", "lm_head.weight"),
            (
                "vision_tower.vision_model.pre_layrnorm.bias",
                "vision.pre_layrnorm.bias",
            ),
            (
                "model.vision_tower.vision_model.embeddings.class_embedding",
                "vision.embeddings.class_embedding",
            ),
            (
                "vision_tower.encoder.layers.1.mlp.fc1.weight",
                "vision.encoder.layers.1.mlp.fc1.weight",
            ),
            (
                "multi_modal_projector.linear_1.bias",
                "projector.linear_1.bias",
            ),
            (
                "model.multi_modal_projector.linear_2.weight",
                "projector.linear_2.weight",
            ),
            ("image_newline", "image_newline"),
            ("model.image_newline", "image_newline"),
        ];
        for (key, canonical) in cases {
            assert_eq!(canonical_key(key).as_deref(), Some(canonical), "{key}");
        }
        assert_eq!(canonical_key("text_model.embeddings.weight"), None);
    }
}
