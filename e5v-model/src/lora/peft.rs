//! PEFT's adapter format: `adapter_config.json` + `adapter_model.safetensors`.
//!
//! Written as E5-V's training wrote it, for the decoder loaded as a causal LM: keys
//! `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight` (`[r, in]`) and
//! `...lora_B.weight` (`[out, r]`), `f32`. Read from any prefix that ends at the decoder's
//! `layers.` (a causal LM, a bare model, a LLaVA model's language model), with or without the
//! adapter name PEFT keeps in memory (`lora_A.default.weight`). Anything else in the file
//! (DoRA magnitudes, embedding adapters, vision-tower adapters) is refused, as are the config
//! options this implementation does not compute (DoRA, `fan_in_fan_out`, per-layer ranks,
//! trained biases), so an adapter is applied completely or not at all.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

use burn::tensor::{DType, Tensor, TensorData, backend::Backend};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde_json::{Value, json};

use super::{LayerLora, Lora, LoraConfig, LoraLinear, LoraTarget};
use crate::{DecoderConfig, ModelError, Result, weights::float_dtype};

/// The adapter's config file.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The adapter's weights file.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// The key prefix of the decoder's layers in the files this crate writes.
const WRITE_PREFIX: &str = "base_model.model.model.layers.";

/// Which factor a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Factor {
    A,
    B,
}

impl<B: Backend> Lora<B> {
    /// Reads a PEFT LoRA adapter folder for a decoder of `decoder`'s shape. The factors are
    /// loaded as `f32` whatever their dtype in the file.
    pub fn load_peft(
        dir: impl AsRef<Path>,
        decoder: &DecoderConfig,
        device: &B::Device,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let config = read_config(&dir.join(CONFIG_FILE))?;
        let path = dir.join(WEIGHTS_FILE);
        let invalid = |reason: String| ModelError::InvalidAdapter {
            path: path.clone(),
            reason,
        };
        let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        let file = SafeTensors::deserialize(&bytes).map_err(|e| invalid(e.to_string()))?;
        let mut factors: BTreeMap<(usize, LoraTarget, Factor), TensorView<'_>> = BTreeMap::new();
        for (key, view) in file.tensors() {
            let (layer, target, factor) = parse_key(&key).ok_or_else(|| {
                invalid(format!(
                    "tensor `{key}` is not a LoRA factor of a decoder projection"
                ))
            })?;
            if layer >= decoder.num_layers {
                return Err(invalid(format!(
                    "tensor `{key}` is for layer {layer}, the decoder has {}",
                    decoder.num_layers
                )));
            }
            if factors.insert((layer, target, factor), view).is_some() {
                return Err(invalid(format!("two tensors for `{key}`")));
            }
        }
        let mut targets: Vec<LoraTarget> = factors.keys().map(|(_, t, _)| *t).collect();
        targets.sort();
        targets.dedup();
        let config = LoraConfig { targets, ..config };
        config.validate().map_err(|e| invalid(e.to_string()))?;
        let layers = (0..decoder.num_layers)
            .map(|layer| {
                LayerLora::build(&config, decoder, layer, |target, ids, [input, output]| {
                    let name = format!("layer {layer} {target}");
                    let (Some(a), Some(b)) = (
                        factors.get(&(layer, target, Factor::A)),
                        factors.get(&(layer, target, Factor::B)),
                    ) else {
                        return Err(invalid(format!("{name}: missing lora_A or lora_B")));
                    };
                    let rank = config.rank;
                    // PEFT's layouts: A is [r, in], B is [out, r].
                    let a = tensor::<B>(a, [rank, input], device)
                        .map_err(|e| invalid(format!("{name} lora_A: {e}")))?;
                    let b = tensor::<B>(b, [output, rank], device)
                        .map_err(|e| invalid(format!("{name} lora_B: {e}")))?;
                    Ok(LoraLinear::new(ids, a.transpose(), b.transpose()))
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            layers,
            config,
            dropout_active: false,
        })
    }

    /// Writes the adapter as a PEFT folder (`adapter_config.json`, `adapter_model.safetensors`)
    /// that Python's `peft` loads onto the decoder as a causal LM. `base_model` is recorded as
    /// `base_model_name_or_path`.
    pub fn save_peft(&self, dir: impl AsRef<Path>, base_model: &str) -> Result<()> {
        let dir = dir.as_ref();
        let io = |path: PathBuf| move |source| ModelError::Io { path, source };
        std::fs::create_dir_all(dir).map_err(io(dir.to_owned()))?;
        let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
        for (layer, target, adapter) in self.adapters() {
            let key = |factor: &str| {
                format!(
                    "{WRITE_PREFIX}{layer}.{}.lora_{factor}.weight",
                    target.path()
                )
            };
            for (name, value) in [("A", adapter.a.val()), ("B", adapter.b.val())] {
                let value = value.transpose().cast(DType::F32);
                let shape = value.dims().to_vec();
                let data = value.into_data().convert::<f32>();
                let values: Vec<f32> = data
                    .to_vec()
                    .map_err(|e| ModelError::InvalidInput(format!("{e:?}")))?;
                tensors.push((key(name), bytemuck::cast_slice(&values).to_vec(), shape));
            }
        }
        let views = tensors
            .iter()
            .map(|(key, bytes, shape)| {
                TensorView::new(Dtype::F32, shape.clone(), bytes)
                    .map(|view| (key.clone(), view))
                    .map_err(|e| ModelError::InvalidInput(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let path = dir.join(WEIGHTS_FILE);
        let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
        safetensors::serialize_to_file(views, Some(metadata), &path).map_err(|e| {
            ModelError::CorruptFile {
                path: path.clone(),
                reason: format!("cannot write: {e}"),
            }
        })?;
        let config = &self.config;
        let file = json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base_model,
            "r": config.rank,
            "lora_alpha": config.alpha,
            "lora_dropout": config.dropout,
            "target_modules": config.targets.iter().map(|t| t.name()).collect::<Vec<_>>(),
            "bias": "none",
            "fan_in_fan_out": false,
            "use_rslora": config.rslora,
            "use_dora": false,
            "init_lora_weights": true,
            "inference_mode": true,
            "modules_to_save": null,
            "layers_to_transform": null,
            "rank_pattern": {},
            "alpha_pattern": {},
        });
        let path = dir.join(CONFIG_FILE);
        let text =
            serde_json::to_string_pretty(&file).unwrap_or_else(|_| unreachable!("a json! value"));
        std::fs::write(&path, text + "\n").map_err(io(path))
    }
}

/// A factor's tensor, checked against its expected shape, as `f32`.
fn tensor<B: Backend>(
    view: &TensorView<'_>,
    shape: [usize; 2],
    device: &B::Device,
) -> Result<Tensor<B, 2>, String> {
    if view.shape() != shape {
        return Err(format!("shape {:?}, expected {shape:?}", view.shape()));
    }
    let dtype = float_dtype(view.dtype())
        .ok_or_else(|| format!("dtype {:?} (supported: F32, F16, BF16)", view.dtype()))?;
    let data =
        TensorData::from_bytes_vec(view.data().to_vec(), shape, dtype).convert_dtype(DType::F32);
    if data.iter::<f32>().any(|v| !v.is_finite()) {
        return Err("NaN or infinite values".into());
    }
    Ok(Tensor::from_data(data, (device, DType::F32)))
}

/// `(layer, target, factor)` of a key such as
/// `base_model.model.model.layers.3.mlp.up_proj.lora_B.weight`.
fn parse_key(key: &str) -> Option<(usize, LoraTarget, Factor)> {
    let rest = key.strip_suffix(".weight")?;
    let (rest, factor) = [(".lora_A", Factor::A), (".lora_B", Factor::B)]
        .into_iter()
        .find_map(|(suffix, factor)| {
            rest.strip_suffix(suffix)
                .or_else(|| rest.strip_suffix(&format!("{suffix}.default")))
                .map(|rest| (rest, factor))
        })?;
    let at = rest.rfind("layers.")?;
    let (prefix, rest) = rest.split_at(at);
    if prefix.contains("vision") {
        return None;
    }
    let (layer, path) = rest.strip_prefix("layers.")?.split_once('.')?;
    Some((layer.parse().ok()?, LoraTarget::from_path(path)?, factor))
}

/// The scale and dropout of `adapter_config.json`; refuses what is not computed here.
fn read_config(path: &Path) -> Result<LoraConfig> {
    let invalid = |reason: String| ModelError::InvalidAdapter {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_owned(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: path.to_owned(),
        source,
    })?;
    let field = |name: &str| value.get(name).filter(|v| !v.is_null());
    if let Some(kind) = field("peft_type").and_then(Value::as_str)
        && kind != "LORA"
    {
        return Err(invalid(format!("peft_type {kind}, only LORA is supported")));
    }
    for (name, off) in [("use_dora", json!(false)), ("fan_in_fan_out", json!(false))] {
        if field(name).is_some_and(|v| *v != off) {
            return Err(invalid(format!("{name} is not supported")));
        }
    }
    if field("bias").is_some_and(|v| v != "none") {
        return Err(invalid(
            "trained biases (`bias` other than \"none\") are not supported".into(),
        ));
    }
    for name in ["rank_pattern", "alpha_pattern"] {
        if field(name).is_some_and(|v| v.as_object().is_none_or(|m| !m.is_empty())) {
            return Err(invalid(format!(
                "per-module ranks or alphas (`{name}`) are not supported"
            )));
        }
    }
    for name in ["modules_to_save", "layers_to_transform"] {
        if field(name).is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty())) {
            return Err(invalid(format!("`{name}` is not supported")));
        }
    }
    let rank = field("r")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("`r` is missing or not a positive integer".into()))?;
    let alpha = field("lora_alpha")
        .and_then(Value::as_f64)
        .ok_or_else(|| invalid("`lora_alpha` is missing or not a number".into()))?;
    Ok(LoraConfig {
        rank: usize::try_from(rank).map_err(|_| invalid(format!("r = {rank}")))?,
        alpha,
        dropout: field("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0),
        targets: Vec::new(),
        rslora: field("use_rslora")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_every_prefix_parse_and_others_are_refused() {
        let ok = [
            (
                "base_model.model.model.layers.3.mlp.up_proj.lora_B.weight",
                (3, LoraTarget::UpProj, Factor::B),
            ),
            (
                "base_model.model.layers.0.self_attn.q_proj.lora_A.weight",
                (0, LoraTarget::QProj, Factor::A),
            ),
            (
                "base_model.model.language_model.model.layers.12.self_attn.o_proj.lora_A.default.weight",
                (12, LoraTarget::OProj, Factor::A),
            ),
        ];
        for (key, expected) in ok {
            assert_eq!(parse_key(key), Some(expected), "{key}");
        }
        for key in [
            "base_model.model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.lora_A.weight",
            "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector",
            "base_model.model.model.embed_tokens.lora_embedding_A",
            "base_model.model.model.layers.0.self_attn.q_proj.weight",
            "base_model.model.model.layers.x.self_attn.q_proj.lora_A.weight",
            "base_model.model.model.layers.0.mlp.fc1.lora_A.weight",
        ] {
            assert_eq!(parse_key(key), None, "{key}");
        }
    }
}
