//! The whole LLaVA-NeXT model, as E5-V uses it.

use std::path::Path;

use burn::{
    module::{Module, Param},
    tensor::{DType, Tensor, backend::Backend},
};

use crate::{
    AttentionBudget, Batch, Checkpoint, Decoder, LlavaNextConfig, ModelError, Projector, Result,
    VisionTower,
    anyres::AnyresBehaviour,
    merge,
    packing::{ImageLayout, pack_image},
    pooling,
    weights::WeightLoader,
};

/// Vision tower + projector + decoder, loaded from a HF checkpoint.
#[derive(Module, Debug)]
pub struct LlavaNext<B: Backend> {
    vision: VisionTower<B>,
    projector: Projector<B>,
    image_newline: Param<Tensor<B, 1>>,
    decoder: Decoder<B>,
    #[module(skip)]
    config: LlavaNextConfig,
}

impl<B: Backend> LlavaNext<B> {
    /// Loads `config.json` and the safetensors weights of a HF model directory, with the
    /// weights cast to `dtype` on `device`.
    pub fn load(dir: impl AsRef<Path>, device: &B::Device, dtype: DType) -> Result<Self> {
        let dir = dir.as_ref();
        let config = LlavaNextConfig::from_file(dir.join("config.json"))?;
        let checkpoint = Checkpoint::open(dir)?;
        Self::from_checkpoint(config, &checkpoint, device, dtype)
    }

    /// Builds the model from an open checkpoint. Fails on a missing tensor, a shape that
    /// disagrees with the config, or a tensor the model does not use (other than the
    /// lm_head, the vision blocks after the feature layer and `post_layernorm`).
    pub fn from_checkpoint(
        config: LlavaNextConfig,
        checkpoint: &Checkpoint,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self> {
        if !B::supports_dtype(device, dtype) {
            return Err(ModelError::Unsupported {
                field: "dtype",
                found: format!("{dtype:?} on {}", B::name(device)),
                supported: "the dtypes of the backend (ndarray: F32; flex, wgpu, cuda: F32, F16, BF16)",
            });
        }
        let mut w = WeightLoader::new(checkpoint, device, dtype);
        let vision = VisionTower::load(&mut w, &config.vision)?;
        let projector = Projector::load(&mut w, &config.projector)?;
        let image_newline = w.param("image_newline", [config.text.hidden_size])?;
        let decoder = Decoder::load(&mut w, &config.text)?;
        w.finish(|key| {
            key.starts_with("lm_head.") || VisionTower::<B>::is_unused_key(key, &config.vision)
        })?;
        Ok(Self {
            vision,
            projector,
            image_newline,
            decoder,
            config,
        })
    }

    /// Bounds the attention scores of both towers to blocks of at most `budget` (on backends
    /// without the fused CPU kernel, which never holds scores): the default suits any device
    /// but wgpu adapters with a small binding limit, which need at most half of it.
    pub fn set_attention_budget(&mut self, budget: AttentionBudget) {
        self.vision.set_attention_budget(budget);
        self.decoder.set_attention_budget(budget);
    }

    /// The resolved config.
    pub fn config(&self) -> &LlavaNextConfig {
        &self.config
    }

    /// The language model.
    pub fn decoder(&self) -> &Decoder<B> {
        &self.decoder
    }

    /// The vision tower alone (feature-layer output, CLS dropped).
    pub fn vision_tower(&self) -> &VisionTower<B> {
        &self.vision
    }

    /// The projector alone.
    pub fn projector(&self) -> &Projector<B> {
        &self.projector
    }

    /// E5-V's forward pass: every image's crops through the vision tower and projector (all
    /// images of the batch at once), packed and spliced in at their image token, the sequences
    /// right-padded through the decoder, and each one's last token pooled.
    ///
    /// The vectors are raw (not normalised), one per sequence in order, and do not depend on
    /// what else is in the batch. Inconsistent input (an image token without an image, an id
    /// outside the embedding table, pixels of the wrong shape, an empty batch) is
    /// [`ModelError::InvalidInput`] naming the sequence.
    ///
    /// # Shapes
    /// - output: `[batch.sequences.len(), text_hidden]`
    pub fn forward(&self, batch: Batch<B>) -> Result<Tensor<B, 2>> {
        batch.validate(&self.config, self.decoder.vocab_size())?;
        let device = self.image_newline.device();
        let Batch {
            sequences,
            behaviour,
        } = batch;
        let (ids, images): (Vec<_>, Vec<_>) = sequences
            .into_iter()
            .map(|sequence| (sequence.ids, sequence.image))
            .unzip();
        let mut packed = self.image_tokens(images, behaviour)?.into_iter();
        let merged = merge::pad(
            ids.iter()
                .map(|ids| {
                    let image = packed.next().flatten();
                    merge::splice(
                        &self.decoder,
                        ids,
                        self.config.image_token_id,
                        image,
                        &device,
                    )
                })
                .collect(),
            &device,
        );
        let states = self
            .decoder
            .forward(merged.embeddings, merged.valid, merged.positions);
        Ok(pooling::last_token(states, &merged.lengths))
    }

    /// The packed features of each image (`None` where a sequence has none), with all crops
    /// run through the vision tower together.
    fn image_tokens(
        &self,
        images: Vec<Option<crate::ImageCrops<B>>>,
        behaviour: AnyresBehaviour,
    ) -> Result<Vec<Option<Tensor<B, 2>>>> {
        let crops: Vec<Tensor<B, 4>> = images
            .iter()
            .flatten()
            .map(|image| image.pixels.clone())
            .collect();
        if crops.is_empty() {
            return Ok(images.iter().map(|_| None).collect());
        }
        let features = self.image_features(Tensor::cat(crops, 0));
        let [_, patches, hidden] = features.dims();
        let mut start = 0;
        images
            .into_iter()
            .map(|image| {
                let Some(image) = image else {
                    return Ok(None);
                };
                let count = image.pixels.dims()[0];
                let own = features
                    .clone()
                    .slice([start..start + count, 0..patches, 0..hidden]);
                start += count;
                self.pack_image(own, image.size, behaviour).map(Some)
            })
            .collect()
    }

    /// Projected patch features of a batch of crops (any number of images at once).
    ///
    /// # Shapes
    /// - pixels: `[crops, channels, image_size, image_size]` -> `[crops, patches, text_hidden]`
    pub fn image_features(&self, pixels: Tensor<B, 4>) -> Tensor<B, 3> {
        self.projector.forward(self.vision.forward(pixels))
    }

    /// Packs one image's projected crop features into the sequence of embeddings that
    /// replaces its `<image>` token.
    ///
    /// # Shapes
    /// - features: `[crops, patches, text_hidden]` -> `[image_tokens, text_hidden]`
    pub fn pack_image(
        &self,
        features: Tensor<B, 3>,
        image_size: (u32, u32),
        behaviour: AnyresBehaviour,
    ) -> Result<Tensor<B, 2>> {
        let layout = ImageLayout {
            image_size,
            pinpoints: &self.config.grid_pinpoints,
            crop_size: self.config.vision.image_size as u32,
            patches_per_side: self.config.vision.patches_per_side(),
            behaviour,
        };
        pack_image(features, self.image_newline.val(), &layout)
    }
}
