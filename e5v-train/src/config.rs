//! The training options, with E5-V's values as defaults.

use burn::optim::AdamWConfig;
use e5v_model::LoraConfig;
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// Everything that decides a training run. [`Default`] is the paper's recipe: LoRA r=64,
/// alpha=16, dropout 0.05 on all seven projections; global batch 768 in micro-batches of 24
/// (the authors' per-GPU size); AdamW, lr 4e-4, 100 warmup steps then linear decay, weight
/// decay 0; 2 epochs; sentences cut at 32 tokens; temperature 0.05; seed 42.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// The adapter.
    pub lora: LoraConfig,
    /// Rows per optimizer step: the contrastive batch (every row is a negative of the others).
    pub batch_size: usize,
    /// Rows per forward pass (memory); the gradient is the whole batch's all the same.
    pub micro_batch_size: usize,
    /// The peak learning rate.
    pub learning_rate: f64,
    /// Optimizer steps of linear warmup.
    pub warmup_steps: usize,
    /// Passes over the data.
    pub epochs: usize,
    /// Stop after this many optimizer steps (the schedule then decays over them).
    pub max_steps: Option<usize>,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW's betas.
    pub betas: (f64, f64),
    /// AdamW's epsilon.
    pub epsilon: f64,
    /// The softmax temperature of the loss.
    pub temperature: f64,
    /// Tokens each sentence is cut to before it is put in the prompt.
    pub max_tokens: usize,
    /// Seeds the adapter's initialisation, the data order and the dropout.
    pub seed: u64,
    /// Write a resumable checkpoint every this many steps (0: only at the end).
    pub save_steps: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            lora: LoraConfig::default(),
            batch_size: 768,
            micro_batch_size: 24,
            learning_rate: 4e-4,
            warmup_steps: 100,
            epochs: 2,
            max_steps: None,
            weight_decay: 0.0,
            betas: (0.9, 0.999),
            epsilon: 1e-8,
            temperature: 0.05,
            max_tokens: 32,
            seed: 42,
            save_steps: 50,
        }
    }
}

impl TrainConfig {
    /// Fails on options that cannot train.
    pub fn validate(&self) -> Result<()> {
        self.lora.validate()?;
        let bad = |what: String| Err(TrainError::InvalidOption(what));
        if self.batch_size < 2 {
            return bad(
                "the batch size must be at least 2 (the other rows are the negatives)".into(),
            );
        }
        if self.micro_batch_size == 0 {
            return bad("the micro-batch size must be at least 1".into());
        }
        if self.epochs == 0 && self.max_steps.is_none() || self.max_steps == Some(0) {
            return bad("nothing to train: zero epochs or steps".into());
        }
        for (name, value) in [
            ("learning rate", self.learning_rate),
            ("temperature", self.temperature),
            ("epsilon", self.epsilon),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return bad(format!("the {name} must be positive, not {value}"));
            }
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!("weight decay {}", self.weight_decay));
        }
        if !(0.0..1.0).contains(&self.betas.0) || !(0.0..1.0).contains(&self.betas.1) {
            return bad(format!("betas {:?} must be in [0, 1)", self.betas));
        }
        if self.max_tokens == 0 {
            return bad("max_tokens must be at least 1".into());
        }
        Ok(())
    }

    /// The optimizer: AdamW with these betas, epsilon and weight decay (the learning rate is
    /// given at each step).
    pub fn adamw(&self) -> AdamWConfig {
        AdamWConfig::new()
            .with_beta_1(self.betas.0 as f32)
            .with_beta_2(self.betas.1 as f32)
            .with_epsilon(self.epsilon as f32)
            .with_weight_decay(self.weight_decay as f32)
    }

    /// What a resumed run must share with the run that wrote the checkpoint.
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            rank: self.lora.rank,
            alpha: self.lora.alpha,
            dropout: self.lora.dropout,
            targets: self
                .lora
                .targets
                .iter()
                .map(|t| t.name().to_owned())
                .collect(),
            rslora: self.lora.rslora,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            warmup_steps: self.warmup_steps,
            epochs: self.epochs,
            max_steps: self.max_steps,
            weight_decay: self.weight_decay,
            betas: self.betas,
            epsilon: self.epsilon,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            seed: self.seed,
        }
    }
}

/// The options a checkpoint records ([`TrainConfig::fingerprint`]); the micro-batch size and
/// the checkpoint interval may change between a run and its resumption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Fingerprint {
    rank: usize,
    alpha: f64,
    dropout: f64,
    targets: Vec<String>,
    rslora: bool,
    batch_size: usize,
    learning_rate: f64,
    warmup_steps: usize,
    epochs: usize,
    max_steps: Option<usize>,
    weight_decay: f64,
    betas: (f64, f64),
    epsilon: f64,
    temperature: f64,
    max_tokens: usize,
    seed: u64,
}
