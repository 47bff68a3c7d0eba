//! What [`LlavaNext::forward`](crate::LlavaNext::forward) takes: token ids, and the crops of
//! the image each sequence holds.

use burn::tensor::{Tensor, backend::Backend};

use crate::{ImagePipeline, LlavaNextConfig, ModelError, Result, anyres};

/// A batch of sequences of any lengths, run together.
#[derive(Debug, Clone)]
pub struct Batch<B: Backend> {
    /// The sequences; each becomes one pooled vector, in order.
    pub sequences: Vec<Sequence<B>>,
    /// How the images' crops were cut (the behaviour the preprocessing reproduced); it decides
    /// how their features are packed.
    pub image_pipeline: ImagePipeline,
}

/// One sequence: a prompt's token ids and, if the prompt has an image slot, its image.
#[derive(Debug, Clone)]
pub struct Sequence<B: Backend> {
    /// Token ids. A sequence with an image holds exactly one `config.image_token_id`, which
    /// the image's features replace; every other id indexes the embedding table.
    pub ids: Vec<u32>,
    /// The image of the image slot.
    pub image: Option<ImageCrops<B>>,
}

/// One preprocessed image: the base crop, then the anyres grid row-major.
#[derive(Debug, Clone)]
pub struct ImageCrops<B: Backend> {
    /// `[1 + rows * cols, channels, image_size, image_size]`, normalised pixels.
    pub pixels: Tensor<B, 4>,
    /// The original image's (height, width), which decides the grid and the unpadding.
    pub size: (u32, u32),
}

impl<B: Backend> Sequence<B> {
    /// A sequence without an image.
    pub fn text(ids: Vec<u32>) -> Self {
        Self { ids, image: None }
    }

    /// A sequence whose image slot (one image token in `ids`) holds `image`.
    pub fn with_image(ids: Vec<u32>, image: ImageCrops<B>) -> Self {
        Self {
            ids,
            image: Some(image),
        }
    }
}

impl<B: Backend> Batch<B> {
    /// Checks every sequence against the model before any tensor work, so that a bad input is
    /// an error naming the sequence, never an out-of-bounds read or a wrong vector.
    pub(crate) fn validate(&self, config: &LlavaNextConfig, vocab: usize) -> Result<()> {
        if self.sequences.is_empty() {
            return Err(invalid("an empty batch"));
        }
        let side = config.vision.image_size;
        for (i, sequence) in self.sequences.iter().enumerate() {
            let slots = sequence
                .ids
                .iter()
                .filter(|&&id| id == config.image_token_id)
                .count();
            let images = usize::from(sequence.image.is_some());
            if slots != images {
                return Err(invalid(format!(
                    "sequence {i} has {slots} image token(s) and {images} image(s)"
                )));
            }
            if sequence.ids.is_empty() {
                return Err(invalid(format!("sequence {i} has no tokens")));
            }
            if let Some(&id) = sequence
                .ids
                .iter()
                .find(|&&id| id != config.image_token_id && id as usize >= vocab)
            {
                return Err(invalid(format!(
                    "sequence {i}: token id {id} has no embedding (the table has {vocab} rows)"
                )));
            }
            let Some(image) = &sequence.image else {
                continue;
            };
            let (height, width) = image.size;
            if height == 0 || width == 0 {
                return Err(invalid(format!(
                    "sequence {i}: an empty image {:?}",
                    image.size
                )));
            }
            let (rows, cols) = anyres::grid_shape(
                image.size,
                &config.grid_pinpoints,
                side as u32,
                self.image_pipeline,
            );
            let expected = [1 + rows * cols, config.vision.num_channels, side, side];
            if image.pixels.dims() != expected {
                return Err(invalid(format!(
                    "sequence {i}: an image of {:?} needs pixels of shape {expected:?}, got {:?}",
                    image.size,
                    image.pixels.dims()
                )));
            }
        }
        Ok(())
    }
}

fn invalid(what: impl Into<String>) -> ModelError {
    ModelError::InvalidInput(what.into())
}
