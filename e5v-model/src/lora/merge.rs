//! Merging an adapter into the base weights: `W' = W + scale · (A·B)ᵀ` for every adapted
//! projection, either in a loaded decoder or in a checkpoint's files.

use std::path::{Path, PathBuf};

use burn::tensor::{DType, Tensor, TensorData, backend::Backend};
use safetensors::tensor::TensorView;

use super::{LoraLinear, LoraTarget};
use crate::{
    Checkpoint, DecoderConfig, Lora, ModelError, Result,
    weights::{CheckpointFile, float_dtype},
};

/// `weight + scale · A·B` for a weight in burn's `[in, out]` layout, in the weight's dtype:
/// the update is computed in `f32` and rounded to the weight's dtype before the sum, as PEFT
/// merges.
pub(crate) fn merged_weight<B: Backend>(
    weight: Tensor<B, 2>,
    adapter: &LoraLinear<B>,
    scale: f64,
) -> Tensor<B, 2> {
    let dtype = weight.dtype();
    let delta = (adapter.a.val().matmul(adapter.b.val()) * scale).cast(dtype);
    // A loaded weight is the transposed view of PyTorch's `[out, in]`; keep that layout (the
    // fused CPU kernel reads it in place).
    (weight.transpose() + delta.transpose()).transpose()
}

/// What [`merge_checkpoint`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeReport {
    /// The weights files written (same names as the input's).
    pub weights_files: Vec<PathBuf>,
    /// The other files of the input folder, copied unchanged.
    pub copied_files: Vec<PathBuf>,
    /// Projection weights that received an update.
    pub merged_tensors: usize,
}

/// Writes the checkpoint in `src` to `dst` with `lora` merged into its decoder: the same files
/// (shards, index, config, tokenizer, processor), the same keys, dtypes and header metadata;
/// only the adapted projection weights change. The update is computed in `f32` on `lora`'s
/// device and added to the weight in `f32`, with one rounding to the file's dtype. `dst` must
/// not exist yet or be empty.
pub fn merge_checkpoint<B: Backend>(
    src: impl AsRef<Path>,
    lora: &Lora<B>,
    dst: impl AsRef<Path>,
) -> Result<MergeReport> {
    let (src, dst) = (src.as_ref(), dst.as_ref());
    let config = crate::LlavaNextConfig::from_file(src.join("config.json"))?;
    lora.check_fits(&config.text)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ModelError::Io { path, source }
    };
    if dst.exists() && std::fs::read_dir(dst).map_err(io(dst))?.next().is_some() {
        return Err(ModelError::InvalidInput(format!(
            "the merge's output folder {} is not empty",
            dst.display()
        )));
    }
    std::fs::create_dir_all(dst).map_err(io(dst))?;
    let checkpoint = Checkpoint::open(src)?;
    let mut report = MergeReport {
        weights_files: Vec::new(),
        copied_files: Vec::new(),
        merged_tensors: 0,
    };
    let files = checkpoint.files();
    for file in &files {
        let name = file.path.file_name().unwrap_or_default();
        let out = dst.join(name);
        report.merged_tensors += write_merged(&checkpoint, file, lora, &config.text, &out)?;
        report.weights_files.push(out);
    }
    let shards: Vec<&Path> = files.iter().map(|f| f.path).collect();
    for entry in std::fs::read_dir(src).map_err(io(src))? {
        let path = entry.map_err(io(src))?.path();
        if !path.is_file() || shards.iter().any(|s| *s == path) {
            continue;
        }
        let out = dst.join(path.file_name().unwrap_or_default());
        std::fs::copy(&path, &out).map_err(io(&path))?;
        report.copied_files.push(out);
    }
    report.copied_files.sort();
    Ok(report)
}

/// Writes one weights file with its adapted projections merged; returns how many were.
fn write_merged<B: Backend>(
    checkpoint: &Checkpoint,
    file: &CheckpointFile<'_>,
    lora: &Lora<B>,
    decoder: &DecoderConfig,
    out: &Path,
) -> Result<usize> {
    let scale = lora.config().scale();
    // The new bytes of each merged tensor, by position in the file.
    let mut merged: Vec<Option<Vec<u8>>> = vec![None; file.tensors.len()];
    for (index, (key, entry)) in file.tensors.iter().enumerate() {
        let Some((layer, target)) = projection(key) else {
            continue;
        };
        let Some(adapter) = lora.layer_adapter(layer, target) else {
            continue;
        };
        let [input, output] = target.shape(decoder);
        let Some(dtype) = float_dtype(entry.dtype) else {
            return Err(ModelError::UnsupportedDtype {
                key: entry.original_key.clone(),
                path: file.path.to_owned(),
                dtype: format!("{:?}", entry.dtype),
            });
        };
        if entry.shape != [output, input] {
            return Err(ModelError::ShapeMismatch {
                key: entry.original_key.clone(),
                path: file.path.to_owned(),
                expected: vec![output, input],
                found: entry.shape.clone(),
            });
        }
        // The update in PyTorch's [out, in] layout, as f32 values on the host.
        let delta = (adapter.a.val().matmul(adapter.b.val()) * scale)
            .transpose()
            .into_data()
            .convert::<f32>();
        let delta = delta
            .as_slice::<f32>()
            .map_err(|e| ModelError::InvalidInput(format!("{e:?}")))?;
        let weight =
            TensorData::from_bytes_vec(checkpoint.bytes(entry).to_vec(), [output, input], dtype)
                .convert_dtype(DType::F32);
        let weight = weight
            .as_slice::<f32>()
            .map_err(|e| ModelError::InvalidInput(format!("{e:?}")))?;
        let sum: Vec<f32> = weight.iter().zip(delta).map(|(w, d)| w + d).collect();
        let bytes = TensorData::new(sum, [output, input])
            .convert_dtype(dtype)
            .into_bytes();
        merged[index] = Some(bytes.to_vec());
        checkpoint.release(entry);
    }
    let count = merged.iter().flatten().count();
    let views = file
        .tensors
        .iter()
        .zip(&merged)
        .map(|((_, entry), merged)| {
            let bytes = merged.as_deref().unwrap_or_else(|| checkpoint.bytes(entry));
            TensorView::new(entry.dtype, entry.shape.clone(), bytes)
                .map(|view| (entry.original_key.clone(), view))
                .map_err(|e| ModelError::CorruptFile {
                    path: file.path.to_owned(),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, file.metadata.clone(), out).map_err(|e| {
        ModelError::CorruptFile {
            path: out.to_owned(),
            reason: format!("cannot write: {e}"),
        }
    })?;
    Ok(count)
}

/// `(layer, target)` of a canonical key such as `decoder.layers.3.mlp.up_proj.weight`.
fn projection(key: &str) -> Option<(usize, LoraTarget)> {
    let rest = key
        .strip_prefix("decoder.layers.")?
        .strip_suffix(".weight")?;
    let (layer, path) = rest.split_once('.')?;
    Some((layer.parse().ok()?, LoraTarget::from_path(path)?))
}
