//! The training loop: batches in a seeded order, GradCache gradients, AdamW with the warmup
//! schedule, checkpoints, and a JSON-lines log of the curve.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Instant,
};

use burn::{
    module::Module,
    optim::{AdamW, Optimizer, adaptor::OptimizerAdaptor},
    tensor::{DType, backend::AutodiffBackend},
};
use e5v_model::{Decoder, DecoderConfig, Lora};
use serde::Serialize;

use crate::{
    Result, TextEncoder, TrainConfig, TrainError, Triplet,
    checkpoint::{self, TrainerState},
    order,
    schedule::LinearWarmup,
    step::{EncodedTriplet, contrastive_gradients},
};

/// The log's name in the output folder: one JSON object per optimizer step.
pub const LOG_FILE: &str = "log.jsonl";
/// The final adapter's folder in the output folder (PEFT's format).
pub const ADAPTER_DIR: &str = "adapter";

/// What one optimizer step did (a line of the log).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    /// Optimizer steps done, this one included.
    pub step: usize,
    /// Steps of the whole run.
    pub total_steps: usize,
    /// The epoch this step belongs to (0-based).
    pub epoch: usize,
    /// The batch's loss before the update.
    pub loss: f64,
    /// The learning rate of the update.
    pub lr: f64,
    /// Rows (anchor, positive, negative) in the batch.
    pub rows: usize,
    /// The step's wall time.
    pub seconds: f64,
    /// Training rows per second over this step.
    pub pairs_per_s: f64,
}

/// A training run of a LoRA adapter on a frozen decoder.
pub struct Trainer<B: AutodiffBackend> {
    decoder: Decoder<B>,
    decoder_config: DecoderConfig,
    lora: Lora<B>,
    optimizer: OptimizerAdaptor<AdamW, Lora<B>, B>,
    rows: Vec<EncodedTriplet>,
    config: TrainConfig,
    schedule: LinearWarmup,
    step: usize,
    device: B::Device,
    model_dir: PathBuf,
    output: PathBuf,
}

impl<B: AutodiffBackend> Trainer<B> {
    /// Prepares a run: loads the decoder alone from `model_dir` (weights in `dtype`, frozen),
    /// encodes every row, and draws a fresh adapter. Checkpoints, the log and the final
    /// adapter go to `output`.
    pub fn new(
        model_dir: impl AsRef<Path>,
        data: &[Triplet],
        output: impl AsRef<Path>,
        config: TrainConfig,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self> {
        config.validate()?;
        let model_dir = model_dir.as_ref().to_owned();
        let (decoder, decoder_config) = Decoder::<B>::load(&model_dir, device, dtype)?;
        let encoder = TextEncoder::new(&model_dir, &decoder_config, config.max_tokens)?;
        let rows = encode_rows(&encoder, data)?;
        B::seed(device, config.seed);
        let mut lora = config.lora.init::<B>(&decoder_config, device)?;
        lora.set_dropout_active(config.lora.dropout > 0.0);
        let optimizer = config.adamw().init::<B, Lora<B>>();
        let per_epoch = order::steps_per_epoch(rows.len(), config.batch_size);
        let total = config.max_steps.unwrap_or(config.epochs * per_epoch);
        let output = output.as_ref().to_owned();
        std::fs::create_dir_all(&output).map_err(|source| TrainError::Io {
            path: output.clone(),
            source,
        })?;
        Ok(Self {
            decoder: decoder.no_grad(),
            decoder_config,
            lora,
            optimizer,
            rows,
            schedule: LinearWarmup {
                peak: config.learning_rate,
                warmup: config.warmup_steps,
                total,
            },
            config,
            step: 0,
            device: device.clone(),
            model_dir,
            output,
        })
    }

    /// Continues from a checkpoint folder written by [`Self::run`] (`checkpoint-{step}`): its
    /// adapter, optimizer state and step. The run must have the same options (other than the
    /// micro-batch size and the checkpoint interval) and the same data size; the steps that
    /// follow are then those the interrupted run would have made (with another micro-batch
    /// size, the same up to the dropout masks, which are drawn per micro-batch).
    pub fn resume_from(&mut self, checkpoint: &Path) -> Result<()> {
        let (state, mut lora, record) = checkpoint::load::<B, OptimizerAdaptor<AdamW, Lora<B>, B>>(
            checkpoint,
            &self.decoder_config,
            &self.device,
        )?;
        let fail = |reason: String| TrainError::Resume {
            path: checkpoint.to_owned(),
            reason,
        };
        if state.config != self.config.fingerprint() {
            return Err(fail(format!(
                "it was trained with other options: {:?}",
                state.config
            )));
        }
        if state.rows != self.rows.len() {
            return Err(fail(format!(
                "it was trained on {} rows, the data has {}",
                state.rows,
                self.rows.len()
            )));
        }
        lora.set_dropout_active(self.config.lora.dropout > 0.0);
        self.lora = lora;
        self.optimizer = self.optimizer.clone().load_record(record);
        self.step = state.step;
        truncate_log(&self.output.join(LOG_FILE), self.step)?;
        Ok(())
    }

    /// Optimizer steps of the whole run.
    pub fn total_steps(&self) -> usize {
        self.schedule.total
    }

    /// Optimizer steps done.
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// The adapter as trained so far.
    pub fn lora(&self) -> &Lora<B> {
        &self.lora
    }

    /// The frozen decoder.
    pub fn decoder(&self) -> &Decoder<B> {
        &self.decoder
    }

    /// Rows of training data.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// One optimizer step on the next batch.
    pub fn step(&mut self) -> Result<StepReport> {
        let started = Instant::now();
        let (step, seed) = (self.step, self.config.seed);
        let batch: Vec<EncodedTriplet> =
            order::batch_rows(self.rows.len(), self.config.batch_size, seed, step)
                .into_iter()
                .map(|i| self.rows[i].clone())
                .collect();
        let gradients = contrastive_gradients(
            &self.decoder,
            &self.lora,
            &batch,
            self.config.micro_batch_size,
            self.config.temperature,
            &self.device,
            |micro| order::dropout_seed(seed, step, micro),
        )?;
        if !gradients.loss.is_finite() {
            return Err(TrainError::Diverged { step: step + 1 });
        }
        let lr = self.schedule.lr(step);
        self.lora = self.optimizer.step(lr, self.lora.clone(), gradients.grads);
        self.step += 1;
        let seconds = started.elapsed().as_secs_f64();
        Ok(StepReport {
            step: self.step,
            total_steps: self.total_steps(),
            epoch: step / order::steps_per_epoch(self.rows.len(), self.config.batch_size),
            loss: gradients.loss,
            lr,
            rows: batch.len(),
            seconds,
            pairs_per_s: batch.len() as f64 / seconds.max(1e-9),
        })
    }

    /// Trains to the end: each step is appended to the log and passed to `on_step`, a
    /// checkpoint is written every `save_steps` steps and after the last one, and the final
    /// adapter goes to `output/adapter`.
    pub fn run(&mut self, mut on_step: impl FnMut(&StepReport)) -> Result<()> {
        let log_path = self.output.join(LOG_FILE);
        while self.step < self.total_steps() {
            let report = self.step()?;
            append_log(&log_path, &report)?;
            let every = self.config.save_steps;
            if (every > 0 && self.step.is_multiple_of(every)) || self.step == self.total_steps() {
                self.save_checkpoint()?;
            }
            on_step(&report);
        }
        self.lora.save_peft(
            self.output.join(ADAPTER_DIR),
            &self.model_dir.to_string_lossy(),
        )?;
        Ok(())
    }

    /// Writes `output/checkpoint-{steps done}`.
    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        let dir = checkpoint::folder(&self.output, self.step);
        let state = TrainerState {
            step: self.step,
            total_steps: self.total_steps(),
            rows: self.rows.len(),
            base_model: self.model_dir.to_string_lossy().into_owned(),
            config: self.config.fingerprint(),
        };
        checkpoint::save(&dir, &self.lora, &self.optimizer, &state)?;
        Ok(dir)
    }
}

/// Every row's three prompts as token ids; a sentence that cannot be encoded is an error
/// naming its row.
fn encode_rows(encoder: &TextEncoder, data: &[Triplet]) -> Result<Vec<EncodedTriplet>> {
    data.iter()
        .enumerate()
        .map(|(i, row)| {
            let encode = |text: &str| {
                encoder
                    .encode(text)
                    .map_err(|e| TrainError::InvalidOption(format!("row {}: {e}", i + 1)))
            };
            Ok(EncodedTriplet {
                anchor: encode(&row.anchor)?,
                positive: encode(&row.positive)?,
                negative: encode(&row.negative)?,
            })
        })
        .collect()
}

fn append_log(path: &Path, report: &StepReport) -> Result<()> {
    let io = |source| TrainError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    let line = serde_json::to_string(report).unwrap_or_else(|_| unreachable!("plain data"));
    writeln!(file, "{line}").map_err(io)
}

/// Drops the log's lines after step `step` (a resumed run writes them again).
fn truncate_log(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("step")?.as_u64())
                .is_some_and(|s| s as usize <= step)
        })
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(path, kept).map_err(|source| TrainError::Io {
        path: path.to_owned(),
        source,
    })
}
