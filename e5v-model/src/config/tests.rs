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
