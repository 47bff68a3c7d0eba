//! LLaVA-NeXT (CLIP vision tower + projector + Llama/Mistral decoder) in [burn], generic over
//! the backend, with loading of HF safetensors checkpoints, as used by E5-V.
//!
//! To embed texts and images, depend on [`e5v-core`](https://docs.rs/e5v-core) instead: its
//! `Embedder` adds the prompts, the tokenizer and the image preprocessing to this crate.
//!
//! The decoder returns final-normed hidden states (E5-V pools them; no lm_head is computed).
//! Image features are packed exactly as transformers does it, in either of two reference pipelines
//! ([`ImagePipeline`]).
//!
//! [`lora`] adds LoRA adapters to the decoder's projections: the unmerged forward pass that
//! e5v-train differentiates, PEFT's file format both ways, and merging into a loaded decoder or
//! into a checkpoint's files.
//!
//! ```no_run
//! use burn::backend::NdArray;
//! use burn::tensor::DType;
//! use e5v_model::LlavaNext;
//!
//! let device = Default::default();
//! let model = LlavaNext::<NdArray>::load("path/to/e5-v", &device, DType::F32)?;
//! println!("{} decoder layers", model.config().text.num_layers);
//! # Ok::<(), e5v_model::ModelError>(())
//! ```

pub mod anyres;
mod batch;
mod config;
mod cpu;
mod decoder;
#[cfg(any(feature = "flex", feature = "wgpu", feature = "cuda"))]
mod downcast;
mod error;
mod image_pipeline;
mod llava;
pub mod lora;
mod merge;
mod nn;
mod packing;
mod pooling;
mod projector;
mod vision;
mod weights;

pub use batch::{Batch, ImageCrops, Sequence};
pub use config::{
    DecoderConfig, DecoderFamily, Llama3RopeScaling, LlavaNextConfig, ProjectorConfig, RopeConfig,
    VisionConfig,
};
pub use decoder::Decoder;
pub use error::{ModelError, Result, UnknownName};
pub use image_pipeline::ImagePipeline;
pub use llava::LlavaNext;
pub use lora::{Lora, LoraConfig, LoraTarget};
pub use nn::{Activation, AttentionBudget};
pub use packing::{ImageLayout, pack_image};
pub use projector::Projector;
pub use vision::VisionTower;
pub use weights::Checkpoint;
