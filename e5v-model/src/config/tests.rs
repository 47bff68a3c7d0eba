use super::*;

/// The shape of royokong/e5-v's config.json (transformers 4.41.2 writes only non-default
/// fields; the vision tower is given as a dict, the pinpoints at the top level).
const E5V_4X: &str = r#"{
  "architectures": ["LlavaNextForConditionalGeneration"],
  "ignore_index": -100,
  "image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
  "image_token_index": 128256,
  "model_type": "llava_next",
  "projector_hidden_act": "gelu",
  "text_config": {
    "_name_or_path": "meta-llama/Meta-Llama-3-8B-Instruct",
    "architectures": ["LlamaForCausalLM"],
    "bos_token_id": 128000,
    "eos_token_id": 128009,
    "intermediate_size": 14336,
    "max_position_embeddings": 8192,
    "model_type": "llama",
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "torch_dtype": "float16",
    "vocab_size": 128320
  },
  "tie_word_embeddings": false,
  "torch_dtype": "float16",
  "transformers_version": "4.41.2",
  "use_image_newline_parameter": true,
  "vision_config": {
    "hidden_size": 1024,
    "image_size": 336,
    "intermediate_size": 4096,
    "model_type": "clip_vision_model",
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "patch_size": 14,
    "projection_dim": 768,
    "vocab_size": 32000
  },
  "vision_feature_layer": -2,
  "vision_feature_select_strategy": "default",
  "vocab_size": 128320
}"#;

#[test]
fn e5v_config_resolves_to_the_reference_architecture() {
    let c = LlavaNextConfig::from_json(E5V_4X).expect("valid config");
    let t = &c.text;
    assert_eq!(t.family, DecoderFamily::Llama);
    assert_eq!(
        (t.hidden_size, t.num_layers, t.num_heads, t.num_kv_heads),
        (4096, 32, 32, 8)
    );
    assert_eq!((t.intermediate_size, t.head_dim), (14336, 128));
    assert_eq!((t.rms_norm_eps, t.rope.theta), (1e-5, 500000.0));
    assert_eq!(t.rope.llama3_scaling, None);
    assert_eq!(t.activation, Activation::Silu);
    assert_eq!(t.sliding_window, None);
    let v = &c.vision;
    assert_eq!(
        (
            v.hidden_size,
            v.num_layers,
            v.num_heads,
            v.intermediate_size
        ),
        (1024, 24, 16, 4096)
    );
    assert_eq!(
        (v.image_size, v.patch_size, v.patches_per_crop()),
        (336, 14, 576)
    );
    assert_eq!(v.feature_blocks, 23);
    assert_eq!(v.activation, Activation::QuickGelu);
    assert_eq!(c.projector.activation, Activation::Gelu);
    assert!(c.projector.bias);
    assert_eq!(c.image_token_id, 128256);
    assert_eq!(c.grid_pinpoints[0], (336, 672));
}

#[test]
fn transformers5_rope_parameters_and_image_token_id_are_read() {
    let json = r#"{"model_type": "llava_next", "image_token_id": 7,
        "text_config": {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
          "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}},
        "vision_config": {"hidden_size": 32, "num_attention_heads": 4, "num_hidden_layers": 3,
          "image_size": 336, "patch_size": 14}}"#;
    let c = LlavaNextConfig::from_json(json).expect("valid config");
    assert_eq!(c.image_token_id, 7);
    assert_eq!(c.text.rope.theta, 500000.0);
    assert_eq!(c.text.rope.llama3_scaling.map(|s| s.factor), Some(8.0));
    assert_eq!(c.vision.feature_blocks, 2);
}

#[test]
fn mistral_defaults_to_a_4096_window_unless_null() {
    let with = r#"{"model_type": "llava_next", "text_config": {"model_type": "mistral"}}"#;
    let without = r#"{"model_type": "llava_next", "text_config": {"model_type": "mistral", "sliding_window": null}}"#;
    let c = LlavaNextConfig::from_json(with).expect("valid config");
    assert_eq!(
        (c.text.sliding_window, c.text.num_kv_heads),
        (Some(4096), 8)
    );
    let c = LlavaNextConfig::from_json(without).expect("valid config");
    assert_eq!(c.text.sliding_window, None);
}

#[test]
fn initializer_ranges_default_to_002_and_the_projector_follows_the_text_model() {
    let c = LlavaNextConfig::from_json(E5V_4X).expect("valid config");
    assert_eq!(
        (
            c.text.initializer_range,
            c.vision.initializer_range,
            c.projector.initializer_range
        ),
        (0.02, 0.02, 0.02)
    );
    assert_eq!(c.text.vocab_size, 128320);
    let json = r#"{"model_type": "llava_next", "text_config": {"initializer_range": 0.01},
        "vision_config": {"initializer_range": 0.03, "image_size": 336, "patch_size": 14}}"#;
    let c = LlavaNextConfig::from_json(json).expect("valid config");
    assert_eq!(
        (
            c.text.initializer_range,
            c.vision.initializer_range,
            c.projector.initializer_range
        ),
        (0.01, 0.03, 0.01)
    );
    let json = r#"{"model_type": "llava_next", "initializer_range": 0.05}"#;
    let c = LlavaNextConfig::from_json(json).expect("valid config");
    assert_eq!(c.projector.initializer_range, 0.05);
    let e = error_of(r#"{"model_type": "llava_next", "text_config": {"initializer_range": -1}}"#);
    assert!(e.contains("initializer_range"), "{e}");
}

fn error_of(json: &str) -> String {
    LlavaNextConfig::from_json(json)
        .expect_err("must be rejected")
        .to_string()
}

#[test]
fn unsupported_choices_are_named_in_the_error() {
    let e = error_of(r#"{"model_type": "llava"}"#);
    assert!(e.contains("model_type") && e.contains("llava_next"), "{e}");
    let e = error_of(r#"{"model_type": "llava_next", "text_config": {"model_type": "gemma"}}"#);
    assert!(e.contains("gemma"), "{e}");
    let e = error_of(r#"{"model_type": "llava_next", "projector_hidden_act": "mish"}"#);
    assert!(e.contains("mish") && e.contains("quick_gelu"), "{e}");
    let e = error_of(r#"{"model_type": "llava_next", "vision_feature_select_strategy": "full"}"#);
    assert!(e.contains("full"), "{e}");
    let e = error_of(r#"{"model_type": "llava_next", "vision_feature_layer": [-2, -5]}"#);
    assert!(e.contains("vision_feature_layer"), "{e}");
    let e = error_of(r#"{"model_type": "llava_next", "vision_feature_layer": -30}"#);
    assert!(e.contains("out of range"), "{e}");
    let e = error_of(
        r#"{"model_type": "llava_next", "text_config": {"rope_scaling": {"rope_type": "yarn", "factor": 2.0}}}"#,
    );
    assert!(e.contains("yarn"), "{e}");
    let e = error_of(
        r#"{"model_type": "llava_next", "text_config": {"num_attention_heads": 32, "num_key_value_heads": 5}}"#,
    );
    assert!(e.contains("num_key_value_heads"), "{e}");
    let e = error_of(r#"{"model_type": "llava_next", "image_grid_pinpoints": [[336, 500]]}"#);
    assert!(e.contains("pinpoints"), "{e}");
    assert!(error_of("{not json").contains("config.json"));
}

mod properties {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;
    use crate::{ImagePipeline, anyres};

    /// Values a field may be replaced with: wrong types, zero, negatives, huge and fractional
    /// numbers, and plausible sizes.
    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (0u64..5000).prop_map(Value::from),
            prop_oneof![
                Just(0.0),
                Just(-1.0),
                Just(1e300),
                Just(0.5),
                Just(f64::MIN_POSITIVE)
            ]
            .prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::from),
            prop::collection::vec((0u32..2000).prop_map(Value::from), 0..3).prop_map(Value::from),
            Just(serde_json::json!([[0, 336]])),
            Just(serde_json::json!({})),
        ]
    }

    /// Replaces (or removes, for `Null` in an object) the value at a path chosen by `steps`.
    fn mutate(value: &mut Value, steps: &[prop::sample::Index], new: Value) {
        let Some((step, rest)) = steps.split_first() else {
            *value = new;
            return;
        };
        match value {
            Value::Object(map) if !map.is_empty() => {
                let key = map
                    .keys()
                    .nth(step.index(map.len()))
                    .cloned()
                    .unwrap_or_default();
                if rest.is_empty() && new.is_null() {
                    map.remove(&key);
                } else if let Some(child) = map.get_mut(&key) {
                    mutate(child, rest, new);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                let i = step.index(items.len());
                mutate(&mut items[i], rest, new);
            }
            other => *other = new,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any edit of E5-V's config.json either fails with a typed error or gives a config
        /// whose derived geometry can be computed without a panic (no division by zero, no
        /// overflow) for any image size.
        #[test]
        fn edited_configs_parse_or_fail_cleanly(
            edits in prop::collection::vec(
                (prop::collection::vec(any::<prop::sample::Index>(), 1..4), value()),
                1..4,
            ),
            image in (1u32..5000, 1u32..5000),
        ) {
            let mut json: Value = serde_json::from_str(E5V_4X).expect("fixture");
            for (path, new) in edits {
                mutate(&mut json, &path, new);
            }
            let Ok(config) = LlavaNextConfig::from_json(&json.to_string()) else { return Ok(()) };
            let vision = &config.vision;
            let per_side = vision.patches_per_side();
            prop_assert!(per_side > 0 && vision.patches_per_crop() >= per_side);
            prop_assert!(config.text.hidden_size > 0 && config.text.num_heads > 0);
            for behaviour in [ImagePipeline::Transformers, ImagePipeline::Transformers441] {
                let tokens = anyres::image_token_count(
                    image,
                    &config.grid_pinpoints,
                    vision.image_size as u32,
                    per_side,
                    behaviour,
                );
                prop_assert!(tokens >= per_side * per_side);
            }
        }

        /// Arbitrary text is never a panic.
        #[test]
        fn arbitrary_text_is_an_error_not_a_panic(text in "\\PC{0,64}") {
            prop_assert!(LlavaNextConfig::from_json(&text).is_err());
        }
    }
}
