//! E5-V's training method in Rust: contrastive LoRA fine-tuning of a LLaVA-NeXT model's
//! decoder on **text pairs only**, in [burn] with autodiff, generic over the backend.
//!
//! The vision tower and projector are never loaded; the trained adapter still improves image
//! and composed-query embeddings, because both are read from the same decoder. The recipe
//! ([`TrainConfig::default`]) is the paper's: SimCSE NLI triplets, each sentence cut to 32
//! tokens and put in the text prompt, last-token pooling, InfoNCE over cosine / 0.05 with
//! in-batch and hard negatives, LoRA r=64 alpha=16 dropout 0.05 on q, k, v, o, gate, up and
//! down, global batch 768 (GradCache micro-batches keep every row's negatives), AdamW lr 4e-4
//! with 100 warmup steps and linear decay, 2 epochs.
//!
//! ```no_run
//! use burn::backend::{Autodiff, Flex};
//! use burn::tensor::DType;
//! use e5v_train::{TrainConfig, Trainer, read_nli_csv};
//!
//! let data = read_nli_csv("nli_for_simcse.csv")?;
//! let mut trainer = Trainer::<Autodiff<Flex>>::new(
//!     "e5-v-base", &data, "out", TrainConfig::default(), &Default::default(), DType::F32,
//! )?;
//! trainer.run(|report| eprintln!("step {} loss {:.4}", report.step, report.loss))?;
//! // out/adapter: the adapter in PEFT's format. Merge it for e5v-core:
//! e5v_model::lora::merge_checkpoint("e5-v-base", trainer.lora(), "e5-v-merged")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checkpoint;
mod config;
mod data;
mod encode;
mod error;
mod loss;
mod order;
mod schedule;
mod step;
mod trainer;

pub use checkpoint::latest_checkpoint;
pub use config::TrainConfig;
pub use data::{Triplet, read_nli, read_nli_csv};
pub use encode::TextEncoder;
pub use error::{Result, TrainError};
pub use loss::info_nce;
pub use schedule::LinearWarmup;
pub use step::{EncodedTriplet, StepGradients, contrastive_gradients};
pub use trainer::{ADAPTER_DIR, LOG_FILE, StepReport, Trainer};
