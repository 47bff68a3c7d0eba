//! The typed, validated model config, resolved once from a HF `config.json`.
//!
//! Missing fields take the defaults of the transformers classes (`LlamaConfig`,
//! `MistralConfig`, `CLIPVisionConfig`, `LlavaNextConfig`), because transformers 4.x writes
//! only the fields that differ from them.

mod raw;

use std::path::Path;

use raw::{RawLlavaNextConfig, RawRopeParameters, RawTextConfig, RawVisionConfig};
use serde_json::Value;

use crate::{ModelError, Result, anyres, nn::Activation};

/// The whole LLaVA-NeXT model: vision tower, projector and decoder.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LlavaNextConfig {
    /// The language model.
    pub text: DecoderConfig,
    /// The CLIP vision tower.
    pub vision: VisionConfig,
    /// The multimodal projector.
    pub projector: ProjectorConfig,
    /// The id of the `<image>` token. For E5-V it equals the vocabulary size: it is outside the
    /// embedding table and is never looked up.
    pub image_token_id: u32,
    /// The anyres grid resolutions, as (height, width).
    pub grid_pinpoints: Vec<(u32, u32)>,
}

/// Which decoder architecture the checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecoderFamily {
    /// Llama (E5-V: Llama-3-8B).
    Llama,
    /// Mistral (the same block, with an optional sliding window).
    Mistral,
}

/// The decoder (Llama or Mistral).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DecoderConfig {
    /// Llama or Mistral.
    pub family: DecoderFamily,
    /// Rows of the token-embedding table according to the config: [`Self::init`] makes a
    /// table of this size; the loader trusts the tensor's shape instead.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder blocks.
    pub num_layers: usize,
    /// Number of query heads.
    pub num_heads: usize,
    /// Number of key/value heads (grouped-query attention when fewer than `num_heads`).
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// The MLP's gate activation (SiLU for Llama and Mistral).
    pub activation: Activation,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Rotary position embedding.
    pub rope: RopeConfig,
    /// Longest sequence the model was trained for.
    pub max_position_embeddings: usize,
    /// Mistral's sliding attention window, if any.
    pub sliding_window: Option<usize>,
    /// Std of the normal random weights of [`Self::init`] (HF `initializer_range`).
    pub initializer_range: f64,
}

/// Rotary position embedding (HF `rotate_half` layout).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RopeConfig {
    /// Base of the frequencies.
    pub theta: f64,
    /// Llama-3.1-style frequency scaling, if the config asks for it.
    pub llama3_scaling: Option<Llama3RopeScaling>,
}

/// The `llama3` rope-scaling parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Llama3RopeScaling {
    /// Scaling factor of the low frequencies.
    pub factor: f64,
    /// Wavelength threshold (in units of the original context) below which nothing changes.
    pub low_freq_factor: f64,
    /// Wavelength threshold above which frequencies are fully scaled.
    pub high_freq_factor: f64,
    /// Context length of the original model.
    pub original_max_position_embeddings: usize,
}

/// The CLIP vision tower.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VisionConfig {
    /// Width of the tower.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Blocks in the checkpoint.
    pub num_layers: usize,
    /// Blocks actually run: the output of block `feature_blocks` is the image feature
    /// (`vision_feature_layer` -2 of 24 blocks gives 23; 0 would be the pre-layernorm output).
    pub feature_blocks: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Input channels (3).
    pub num_channels: usize,
    /// Side of a square crop, in pixels.
    pub image_size: usize,
    /// Side of a patch, in pixels.
    pub patch_size: usize,
    /// MLP activation (quick_gelu for CLIP).
    pub activation: Activation,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Std of the normal random weights of [`Self::init`] (HF `initializer_range`).
    pub initializer_range: f64,
}

impl VisionConfig {
    /// Patches along one side of a crop (24 for E5-V).
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Feature vectors per crop once the CLS token is dropped (576 for E5-V).
    pub fn patches_per_crop(&self) -> usize {
        self.patches_per_side() * self.patches_per_side()
    }
}

/// The two-layer projector from vision features to decoder embeddings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProjectorConfig {
    /// Input width (the vision tower's).
    pub input_size: usize,
    /// Output width (the decoder's).
    pub output_size: usize,
    /// Activation between the two linears (exact GELU for E5-V).
    pub activation: Activation,
    /// Whether the linears have biases.
    pub bias: bool,
    /// Std of the normal random weights of [`Self::init`]: HF's top-level
    /// `initializer_range`, else the text model's.
    pub initializer_range: f64,
}

impl LlavaNextConfig {
    /// Reads and validates a `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_owned(),
            source,
        })?;
        let raw: RawLlavaNextConfig =
            serde_json::from_str(&text).map_err(|source| ModelError::Json {
                path: path.to_owned(),
                source,
            })?;
        Self::try_from_raw(raw)
    }

    /// Parses and validates the text of a `config.json`.
    pub fn from_json(json: &str) -> Result<Self> {
        let raw = serde_json::from_str(json).map_err(|source| ModelError::Json {
            path: "config.json".into(),
            source,
        })?;
        Self::try_from_raw(raw)
    }

    fn try_from_raw(raw: RawLlavaNextConfig) -> Result<Self> {
        match raw.model_type.as_deref() {
            Some("llava_next") => {}
            other => {
                return Err(ModelError::Unsupported {
                    field: "model_type",
                    found: format!("{other:?}"),
                    supported: "\"llava_next\"",
                });
            }
        }
        let vision = resolve_vision(raw.vision_config, raw.vision_feature_layer.as_ref())?;
        let text = resolve_text(raw.text_config)?;
        let strategy = raw
            .vision_feature_select_strategy
            .as_deref()
            .unwrap_or("default");
        if strategy != "default" {
            return Err(ModelError::Unsupported {
                field: "vision_feature_select_strategy",
                found: strategy.to_owned(),
                supported: "\"default\" (anyres packs a square grid of patch features without CLS)",
            });
        }
        let projector = ProjectorConfig {
            input_size: vision.hidden_size,
            output_size: text.hidden_size,
            activation: parse_activation(
                "projector_hidden_act",
                raw.projector_hidden_act.as_deref().unwrap_or("gelu"),
            )?,
            bias: raw.multimodal_projector_bias.unwrap_or(true),
            initializer_range: match raw.initializer_range {
                Some(std) => initializer_range("initializer_range", std)?,
                None => text.initializer_range,
            },
        };
        let grid_pinpoints = match raw.image_grid_pinpoints {
            Some(list) => list.into_iter().map(|[h, w]| (h, w)).collect(),
            None => anyres::DEFAULT_PINPOINTS.to_vec(),
        };
        let crop = vision.image_size as u32;
        anyres::check_pinpoints(&grid_pinpoints, Some((crop, crop)))
            .map_err(ModelError::InvalidConfig)?;
        Ok(Self {
            image_token_id: raw
                .image_token_id
                .or(raw.image_token_index)
                .unwrap_or(32000),
            text,
            vision,
            projector,
            grid_pinpoints,
        })
    }
}

/// `initializer_range` of `LlamaConfig`, `MistralConfig` and `CLIPVisionConfig`.
const DEFAULT_INITIALIZER_RANGE: f64 = 0.02;

fn resolve_text(raw: Option<RawTextConfig>) -> Result<DecoderConfig> {
    let raw = raw.unwrap_or_default();
    let family = match raw.model_type.as_deref().unwrap_or("llama") {
        "llama" => DecoderFamily::Llama,
        "mistral" => DecoderFamily::Mistral,
        other => {
            return Err(ModelError::Unsupported {
                field: "text_config.model_type",
                found: other.to_owned(),
                supported: "\"llama\", \"mistral\"",
            });
        }
    };
    if raw.attention_bias == Some(true) || raw.mlp_bias == Some(true) {
        return Err(ModelError::Unsupported {
            field: "text_config.attention_bias/mlp_bias",
            found: "true".into(),
            supported: "false (Llama and Mistral have no biases)",
        });
    }
    // (intermediate, kv heads, max positions) defaults of LlamaConfig / MistralConfig.
    let (intermediate, kv_default, max_pos) = match family {
        DecoderFamily::Llama => (11008, None, 2048),
        DecoderFamily::Mistral => (14336, Some(8), 4096 * 32),
    };
    let hidden_size = raw.hidden_size.unwrap_or(4096);
    let num_heads = raw.num_attention_heads.unwrap_or(32);
    let num_kv_heads = raw.num_key_value_heads.or(kv_default).unwrap_or(num_heads);
    let head_dim = raw.head_dim.unwrap_or(hidden_size / num_heads.max(1));
    if num_heads == 0 || num_kv_heads == 0 || !num_heads.is_multiple_of(num_kv_heads) {
        return Err(ModelError::InvalidConfig(format!(
            "num_attention_heads {num_heads} must be a positive multiple of num_key_value_heads {num_kv_heads}"
        )));
    }
    if raw.head_dim.is_none() && !hidden_size.is_multiple_of(num_heads)
        || head_dim == 0
        || !head_dim.is_multiple_of(2)
    {
        return Err(ModelError::InvalidConfig(format!(
            "head size {head_dim} (hidden {hidden_size} / {num_heads} heads) must be a positive even integer"
        )));
    }
    let sliding_window = match (family, &raw.sliding_window) {
        (DecoderFamily::Llama, _) => None,
        (DecoderFamily::Mistral, None) => Some(4096),
        (DecoderFamily::Mistral, Some(Value::Null)) => None,
        (DecoderFamily::Mistral, Some(value)) => Some(value.as_u64().map(|w| w as usize).ok_or(
            ModelError::Unsupported {
                field: "text_config.sliding_window",
                found: value.to_string(),
                supported: "a positive integer or null",
            },
        )?),
    };
    let activation = parse_activation(
        "text_config.hidden_act",
        raw.hidden_act.as_deref().unwrap_or("silu"),
    )?;
    Ok(DecoderConfig {
        family,
        vocab_size: raw.vocab_size.unwrap_or(32000),
        hidden_size,
        intermediate_size: raw.intermediate_size.unwrap_or(intermediate),
        num_layers: raw.num_hidden_layers.unwrap_or(32),
        num_heads,
        num_kv_heads,
        head_dim,
        activation,
        rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
        rope: resolve_rope(raw.rope_theta, raw.rope_parameters.or(raw.rope_scaling))?,
        max_position_embeddings: raw.max_position_embeddings.unwrap_or(max_pos),
        sliding_window,
        initializer_range: initializer_range(
            "text_config.initializer_range",
            raw.initializer_range.unwrap_or(DEFAULT_INITIALIZER_RANGE),
        )?,
    })
}

fn resolve_rope(theta: Option<f64>, params: Option<RawRopeParameters>) -> Result<RopeConfig> {
    let theta = params
        .as_ref()
        .and_then(|p| p.rope_theta)
        .or(theta)
        .unwrap_or(10000.0);
    let kind = params
        .as_ref()
        .and_then(|p| p.rope_type.clone().or(p.kind.clone()));
    let llama3_scaling = match (kind.as_deref(), params) {
        (None | Some("default"), _) | (_, None) => None,
        (Some("llama3"), Some(p)) => Some(Llama3RopeScaling {
            factor: required(p.factor, "rope_parameters.factor")?,
            low_freq_factor: required(p.low_freq_factor, "rope_parameters.low_freq_factor")?,
            high_freq_factor: required(p.high_freq_factor, "rope_parameters.high_freq_factor")?,
            original_max_position_embeddings: required(
                p.original_max_position_embeddings,
                "rope_parameters.original_max_position_embeddings",
            )?,
        }),
        (Some(other), _) => {
            return Err(ModelError::Unsupported {
                field: "rope_type",
                found: other.to_owned(),
                supported: "\"default\", \"llama3\"",
            });
        }
    };
    Ok(RopeConfig {
        theta,
        llama3_scaling,
    })
}

fn required<T>(value: Option<T>, field: &str) -> Result<T> {
    value.ok_or_else(|| ModelError::InvalidConfig(format!("`{field}` is required")))
}

fn resolve_vision(
    raw: Option<RawVisionConfig>,
    feature_layer: Option<&Value>,
) -> Result<VisionConfig> {
    // LlavaNextConfig's own default vision tower is CLIP ViT-L/14-336; a given dict falls back
    // to CLIPVisionConfig's defaults instead.
    let (hidden, inter, layers, heads, image, patch) = match &raw {
        None => (1024, 4096, 24, 16, 336, 14),
        Some(_) => (768, 3072, 12, 12, 224, 32),
    };
    let raw = raw.unwrap_or_default();
    match raw.model_type.as_deref() {
        None | Some("clip_vision_model") => {}
        Some(other) => {
            return Err(ModelError::Unsupported {
                field: "vision_config.model_type",
                found: other.to_owned(),
                supported: "\"clip_vision_model\"",
            });
        }
    }
    let num_layers = raw.num_hidden_layers.unwrap_or(layers);
    let hidden_size = raw.hidden_size.unwrap_or(hidden);
    let num_heads = raw.num_attention_heads.unwrap_or(heads);
    let image_size = raw.image_size.unwrap_or(image);
    let patch_size = raw.patch_size.unwrap_or(patch);
    if num_heads == 0 || !hidden_size.is_multiple_of(num_heads) {
        return Err(ModelError::InvalidConfig(format!(
            "vision hidden_size {hidden_size} is not divisible by {num_heads} heads"
        )));
    }
    if patch_size == 0 || !image_size.is_multiple_of(patch_size) {
        return Err(ModelError::InvalidConfig(format!(
            "vision image_size {image_size} is not a multiple of patch_size {patch_size}"
        )));
    }
    let feature_blocks = resolve_feature_layer(feature_layer, num_layers)?;
    Ok(VisionConfig {
        hidden_size,
        intermediate_size: raw.intermediate_size.unwrap_or(inter),
        num_layers,
        feature_blocks,
        num_heads,
        num_channels: raw.num_channels.unwrap_or(3),
        image_size,
        patch_size,
        activation: parse_activation(
            "vision_config.hidden_act",
            raw.hidden_act.as_deref().unwrap_or("quick_gelu"),
        )?,
        layer_norm_eps: raw.layer_norm_eps.unwrap_or(1e-5),
        initializer_range: initializer_range(
            "vision_config.initializer_range",
            raw.initializer_range.unwrap_or(DEFAULT_INITIALIZER_RANGE),
        )?,
    })
}

/// HF indexes `hidden_states` with index 0 = the pre-layernorm output and i = block i's
/// output; negative indices count from the end (-1 = the last block).
fn resolve_feature_layer(value: Option<&Value>, num_layers: usize) -> Result<usize> {
    let layer = match value {
        None => -2,
        Some(v) => v.as_i64().ok_or_else(|| ModelError::Unsupported {
            field: "vision_feature_layer",
            found: v.to_string(),
            supported: "a single integer layer index",
        })?,
    };
    let states = num_layers as i64 + 1;
    let index = if layer < 0 { states + layer } else { layer };
    if !(0..states).contains(&index) {
        return Err(ModelError::InvalidConfig(format!(
            "vision_feature_layer {layer} is out of range for {num_layers} vision blocks"
        )));
    }
    Ok(index as usize)
}

fn initializer_range(field: &str, std: f64) -> Result<f64> {
    match std.is_finite() && std >= 0.0 {
        true => Ok(std),
        false => Err(ModelError::InvalidConfig(format!(
            "`{field}` {std} must be a finite non-negative std"
        ))),
    }
}

fn parse_activation(field: &'static str, name: &str) -> Result<Activation> {
    Activation::from_hf_name(name).ok_or_else(|| ModelError::Unsupported {
        field,
        found: name.to_owned(),
        supported: "quick_gelu, gelu, gelu_pytorch_tanh, gelu_new, silu, relu",
    })
}

#[cfg(test)]
mod tests;
