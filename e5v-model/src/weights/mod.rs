//! Loading weights from HF safetensors checkpoints into the model.
//!
//! Modules are built directly from the checkpoint's tensors (never randomly initialised and
//! then overwritten), one tensor at a time, so peak memory stays close to the model's size.
//! Every tensor of the checkpoint must be used, except an explicit allow-list.

mod checkpoint;
mod layout;

pub use checkpoint::Checkpoint;
pub(crate) use checkpoint::CheckpointFile;

use std::collections::BTreeSet;

use burn::tensor::{DType, Tensor, TensorData, backend::Backend};
use safetensors::Dtype;

use crate::{ModelError, Result};

/// The burn dtype of a safetensors float dtype the loaders read (F32, F16, BF16).
pub(crate) fn float_dtype(dtype: Dtype) -> Option<DType> {
    match dtype {
        Dtype::F32 => Some(DType::F32),
        Dtype::F16 => Some(DType::F16),
        Dtype::BF16 => Some(DType::BF16),
        _ => None,
    }
}

/// Builds tensors on a device from a checkpoint and remembers which ones were used.
pub(crate) struct WeightLoader<'a, B: Backend> {
    checkpoint: &'a Checkpoint,
    device: B::Device,
    dtype: DType,
    used: BTreeSet<String>,
}

impl<'a, B: Backend> WeightLoader<'a, B> {
    pub fn new(checkpoint: &'a Checkpoint, device: &B::Device, dtype: DType) -> Self {
        Self {
            checkpoint,
            device: device.clone(),
            dtype,
            used: BTreeSet::new(),
        }
    }

    /// The shape of a tensor, without loading it.
    pub fn shape(&self, key: &str) -> Result<Vec<usize>> {
        self.checkpoint
            .entry(key)
            .map(|e| e.shape.clone())
            .ok_or_else(|| ModelError::MissingTensor(key.to_owned()))
    }

    /// Loads a tensor of the expected shape, cast to the loader's dtype.
    pub fn tensor<const D: usize>(&mut self, key: &str, shape: [usize; D]) -> Result<Tensor<B, D>> {
        let entry = self
            .checkpoint
            .entry(key)
            .ok_or_else(|| ModelError::MissingTensor(key.to_owned()))?;
        if entry.shape != shape {
            return Err(ModelError::ShapeMismatch {
                key: entry.original_key.clone(),
                path: self.checkpoint.path_of(entry).to_owned(),
                expected: shape.to_vec(),
                found: entry.shape.clone(),
            });
        }
        let Some(dtype) = float_dtype(entry.dtype) else {
            return Err(ModelError::UnsupportedDtype {
                key: entry.original_key.clone(),
                path: self.checkpoint.path_of(entry).to_owned(),
                dtype: format!("{:?}", entry.dtype),
            });
        };
        let bytes = self.checkpoint.bytes(entry).to_vec();
        let data = TensorData::from_bytes_vec(bytes, shape, dtype).convert_dtype(self.dtype);
        let tensor = Tensor::from_data(data, (&self.device, self.dtype));
        self.checkpoint.release(entry);
        self.used.insert(key.to_owned());
        Ok(tensor)
    }

    /// Fails if the checkpoint holds tensors that were not loaded and are not allowed to be
    /// left out.
    pub fn finish(self, allowed_unused: impl Fn(&str) -> bool) -> Result<()> {
        let unexpected: Vec<String> = self
            .checkpoint
            .keys()
            .filter(|key| !self.used.contains(*key) && !allowed_unused(key))
            .map(|key| {
                self.checkpoint
                    .entry(key)
                    .map_or_else(|| key.to_owned(), |e| e.original_key.clone())
            })
            .collect();
        match unexpected.is_empty() {
            true => Ok(()),
            false => Err(ModelError::UnexpectedTensors(unexpected)),
        }
    }
}
