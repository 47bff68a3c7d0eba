//! A raw serde mirror of a `llava_next` `config.json`, as transformers 4.x and 5.x write it.
//!
//! transformers 4.x writes only the fields that differ from the class defaults, so every field
//! is optional here; [`super::LlavaNextConfig`] applies the defaults of the HF classes.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RawLlavaNextConfig {
    pub model_type: Option<String>,
    pub text_config: Option<RawTextConfig>,
    pub vision_config: Option<RawVisionConfig>,
    /// 4.x name.
    pub image_token_index: Option<u32>,
    /// 5.x name.
    pub image_token_id: Option<u32>,
    /// An integer or (5.x) a list of layers.
    pub vision_feature_layer: Option<Value>,
    pub vision_feature_select_strategy: Option<String>,
    pub projector_hidden_act: Option<String>,
    pub multimodal_projector_bias: Option<bool>,
    pub image_grid_pinpoints: Option<Vec<[u32; 2]>>,
    pub initializer_range: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RawTextConfig {
    pub model_type: Option<String>,
    pub vocab_size: Option<usize>,
    pub hidden_size: Option<usize>,
    pub intermediate_size: Option<usize>,
    pub num_hidden_layers: Option<usize>,
    pub num_attention_heads: Option<usize>,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub hidden_act: Option<String>,
    pub max_position_embeddings: Option<usize>,
    pub rms_norm_eps: Option<f64>,
    /// 4.x.
    pub rope_theta: Option<f64>,
    /// 4.x.
    pub rope_scaling: Option<RawRopeParameters>,
    /// 5.x: `{rope_type, rope_theta, ...scaling fields}`.
    pub rope_parameters: Option<RawRopeParameters>,
    /// Missing means the class default; `null` means no window.
    #[serde(default, deserialize_with = "present")]
    pub sliding_window: Option<Value>,
    pub attention_bias: Option<bool>,
    pub mlp_bias: Option<bool>,
    pub initializer_range: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RawRopeParameters {
    pub rope_type: Option<String>,
    /// Older name of `rope_type`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub rope_theta: Option<f64>,
    pub factor: Option<f64>,
    pub low_freq_factor: Option<f64>,
    pub high_freq_factor: Option<f64>,
    pub original_max_position_embeddings: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RawVisionConfig {
    pub model_type: Option<String>,
    pub hidden_size: Option<usize>,
    pub intermediate_size: Option<usize>,
    pub num_hidden_layers: Option<usize>,
    pub num_attention_heads: Option<usize>,
    pub num_channels: Option<usize>,
    pub image_size: Option<usize>,
    pub patch_size: Option<usize>,
    pub hidden_act: Option<String>,
    pub layer_norm_eps: Option<f64>,
    pub initializer_range: Option<f64>,
}

/// Keeps an explicit `null` as `Some(Value::Null)` (serde maps it to `None` otherwise).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}
