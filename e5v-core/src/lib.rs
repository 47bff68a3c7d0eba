//! E5-V universal multimodal embeddings: texts, images and image + text queries mapped into
//! one vector space by a LLaVA-NeXT model, in [burn].
//!
//! An [`Embedder`] loads a HF checkpoint directory (e.g. `royokong/e5-v`: `config.json`,
//! safetensors shards, `tokenizer.json`, the image processor config) and turns [`Input`]s into
//! normalised vectors whose dot product is their similarity. Prompts, tokenisation and image
//! preprocessing reproduce the transformers reference exactly, including Pillow's bicubic
//! resize.
//!
//! ```no_run
//! use e5v_core::{EmbedderOptions, FlexEmbedder, Input};
//!
//! let embedder = FlexEmbedder::new("e5-v", EmbedderOptions::default(), &Default::default())?;
//! let embeddings = embedder.embed(&[
//!     Input::text("A dog running on the beach"),
//!     Input::image(std::path::Path::new("dog.jpg")),
//! ])?;
//! let scores = embeddings.similarity(&embeddings)?;
//! println!("text-image similarity: {}", scores[1]);
//! # Ok::<(), e5v_core::Error>(())
//! ```
//!
//! [`Embedder::embed_iter`] streams any number of inputs a chunk at a time (bounded memory, a
//! progress callback), and [`Embedder::embed_with`] takes other [`Prompts`] for one call (the
//! paper's STS, CIRR or FashionIQ prompts, or your own [`Template`]s).
//!
//! With the `hub` feature (on by default), [`Embedder::from_pretrained`] also takes a Hugging
//! Face repo id (`royokong/e5-v`) and downloads it into the cache Python's `huggingface_hub`
//! shares; [`hub::Hub`] gives the settings and a progress callback.
//!
//! # Backends
//! Enable one or more cargo features: `flex` (default: the CPU backend with e5v's fused
//! AVX-512/AVX2 kernels) or `ndarray` for the CPU, `wgpu`, `cuda`. [`Embedder`] is generic over
//! the backend; the aliases ([`FlexEmbedder`], ...) name the concrete ones.
//!
//! # Image pipeline
//! transformers changed its LLaVA-NeXT image handling in 4.44 (and Pillow its resize pass order
//! in 12.2); the paper's numbers were made with transformers 4.41.2. [`ImagePipeline`] picks the
//! stack to reproduce bit for bit: [`ImagePipeline::Transformers`] (default) is current
//! transformers, [`ImagePipeline::Transformers441`] the paper's. JPEG is decoded as Pillow
//! decodes it, bit for bit, with the `exact-jpeg` feature (on by default: libjpeg-turbo's
//! decoder, compiled from source by cargo; it needs `panic = "unwind"`).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod batching;
mod device;
mod embedder;
mod embeddings;
mod error;
#[cfg(feature = "hub")]
#[cfg_attr(docsrs, doc(cfg(feature = "hub")))]
pub mod hub;
pub mod image;
mod input;
mod options;
mod prepare;
mod prompts;
mod stream;
mod tokenize;

#[allow(unused_imports)]
pub use backend::*;
pub use e5v_model::{ImagePipeline, ModelError, UnknownName};
// Template's methods return Modality, Prompt and Segment: users name them through this crate.
pub use e5v_prompt::{
    ChatTemplate, FashionCategory, Modality, Preset, Prompt, PromptError, Segment, Template,
};
pub use embedder::Embedder;
pub use embeddings::{Embeddings, InputInfo};
pub use error::{Error, Result};
pub use image::{DecodeLimits, ImageError};
pub use input::{ImageSource, Input};
pub use options::{EmbedderOptions, Precision, Truncation};
pub use prompts::Prompts;
pub use stream::{EmbedIter, EmbedProgress};
