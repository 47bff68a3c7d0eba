//! Resumable checkpoints: `checkpoint-{step}/` holds the adapter in PEFT's format, the
//! optimizer's state (burn record, full precision) and `trainer_state.json` (the step, the
//! options it was trained with, the data size).

use std::path::{Path, PathBuf};

use burn::{
    optim::Optimizer,
    record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder},
    tensor::backend::AutodiffBackend,
};
use e5v_model::{DecoderConfig, Lora};
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError, config::Fingerprint};

const STATE_FILE: &str = "trainer_state.json";
const OPTIMIZER_FILE: &str = "optimizer";

/// `trainer_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TrainerState {
    /// Optimizer steps done.
    pub step: usize,
    /// Steps of the whole run.
    pub total_steps: usize,
    /// Rows of the training data.
    pub rows: usize,
    /// The base model's folder, as given.
    pub base_model: String,
    pub config: Fingerprint,
}

/// The folder of the checkpoint after `step` steps.
pub(crate) fn folder(output: &Path, step: usize) -> PathBuf {
    output.join(format!("checkpoint-{step}"))
}

/// The checkpoint with the most steps in `output`, if any.
pub fn latest_checkpoint(output: &Path) -> Option<PathBuf> {
    std::fs::read_dir(output)
        .ok()?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let step: usize = path
                .file_name()?
                .to_str()?
                .strip_prefix("checkpoint-")?
                .parse()
                .ok()?;
            path.join(STATE_FILE).is_file().then_some((step, path))
        })
        .max_by_key(|(step, _)| *step)
        .map(|(_, path)| path)
}

pub(crate) fn save<B: AutodiffBackend, O: Optimizer<Lora<B>, B>>(
    dir: &Path,
    lora: &Lora<B>,
    optimizer: &O,
    state: &TrainerState,
) -> Result<()> {
    lora.save_peft(dir, &state.base_model)?;
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
        .record(optimizer.to_record(), dir.join(OPTIMIZER_FILE))
        .map_err(|e| TrainError::Resume {
            path: dir.to_owned(),
            reason: format!("cannot write the optimizer state: {e}"),
        })?;
    let path = dir.join(STATE_FILE);
    let text = serde_json::to_string_pretty(state).unwrap_or_else(|_| unreachable!("plain data"));
    std::fs::write(&path, text + "\n").map_err(|source| TrainError::Io { path, source })
}

/// The state, the adapter and the optimizer's record of a checkpoint.
pub(crate) fn load<B: AutodiffBackend, O: Optimizer<Lora<B>, B>>(
    dir: &Path,
    decoder: &DecoderConfig,
    device: &B::Device,
) -> Result<(TrainerState, Lora<B>, O::Record)> {
    let fail = |reason: String| TrainError::Resume {
        path: dir.to_owned(),
        reason,
    };
    let path = dir.join(STATE_FILE);
    let text =
        std::fs::read_to_string(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    let state: TrainerState =
        serde_json::from_str(&text).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    let lora = Lora::load_peft(dir, decoder, device)?;
    let record = NamedMpkFileRecorder::<FullPrecisionSettings>::new()
        .load(dir.join(OPTIMIZER_FILE), device)
        .map_err(|e| fail(format!("cannot read the optimizer state: {e}")))?;
    Ok((state, lora, record))
}
