//! The whole LLaVA-NeXT model, as E5-V uses it.

use std::path::Path;

use burn::{
    module::{Module, Param},
    tensor::{DType, Tensor, backend::Backend},
};

use crate::{
    AttentionBudget, Batch, Checkpoint, Decoder, ImagePipeline, LlavaNextConfig, Projector, Result,
    VisionTower, merge,
    nn::{ParamSource, RandomInit, check_dtype, normal},
    packing::{ImageLayout, pack_image},
    pooling,
    weights::WeightLoader,
};

/// Vision tower + projector + decoder, loaded from a HF checkpoint ([`Self::load`]) or built
/// with random weights ([`LlavaNextConfig::init`]).
#[derive(Module, Debug)]
pub struct LlavaNext<B: Backend> {
    vision: VisionTower<B>,
    projector: Projector<B>,
    image_newline: Param<Tensor<B, 1>>,
    decoder: Decoder<B>,
    #[module(skip)]
    config: LlavaNextConfig,
}

impl LlavaNextConfig {
    /// The model with random weights, for tests and training, in the backend's default float
    /// type (cast with [`Self::init_with_dtype`]).
    ///
    /// Weights follow HF's initialisation: normal with std `initializer_range` for linears,
    /// embeddings and the projector, zero biases, norms of ones (and zero LayerNorm biases);
    /// CLIP's class embedding has std `hidden^-0.5`, `image_newline` std `1/sqrt(hidden)`. The
    /// model's parameters have exactly the names and shapes of a loaded one (the decoder's
    /// table has the config's `vocab_size` rows), so a record of either loads into the other
    /// with burn's `Module::load_record`. Seed the backend (`B::seed`) for reproducible weights.
    ///
    /// ```
    /// use burn::backend::NdArray;
    /// use e5v_model::{Batch, LlavaNextConfig, Sequence};
    ///
    /// let config = LlavaNextConfig::from_json(
    ///     r#"{
    ///         "model_type": "llava_next",
    ///         "image_token_index": 100,
    ///         "text_config": {
    ///             "vocab_size": 100, "hidden_size": 32, "intermediate_size": 64,
    ///             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2
    ///         },
    ///         "vision_config": {
    ///             "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
    ///             "num_attention_heads": 2, "image_size": 28, "patch_size": 14
    ///         }
    ///     }"#,
    /// )?;
    /// let model = config.init::<NdArray>(&Default::default());
    /// let pooled = model.forward(Batch {
    ///     sequences: vec![Sequence::text(vec![1, 2, 3])],
    ///     image_pipeline: Default::default(),
    /// })?;
    /// assert_eq!(pooled.dims(), [1, 32]);
    /// # Ok::<(), e5v_model::ModelError>(())
    /// ```
    pub fn init<B: Backend>(&self, device: &B::Device) -> LlavaNext<B> {
        let Ok(model) = LlavaNext::build(&mut RandomInit::new(device), self.clone());
        model
    }

    /// [`Self::init`] with the weights in `dtype`; fails if the backend does not support it
    /// (the error [`LlavaNext::load`] gives).
    pub fn init_with_dtype<B: Backend>(
        &self,
        device: &B::Device,
        dtype: DType,
    ) -> Result<LlavaNext<B>> {
        let Ok(model) = LlavaNext::build(&mut RandomInit::with_dtype(device, dtype)?, self.clone());
        Ok(model)
    }
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
        check_dtype::<B>(device, dtype)?;
        let mut w = WeightLoader::new(checkpoint, device, dtype);
        let model = Self::build(&mut w, config)?;
        w.finish(|key| {
            key.starts_with("lm_head.")
                || VisionTower::<B>::is_unused_key(key, &model.config.vision)
        })?;
        Ok(model)
    }

    /// The one constructor, from a checkpoint or random weights.
    fn build<S: ParamSource<B>>(source: &mut S, config: LlavaNextConfig) -> Result<Self, S::Error> {
        let hidden = config.text.hidden_size;
        Ok(Self {
            vision: VisionTower::build(source, &config.vision)?,
            projector: Projector::build(source, &config.projector)?,
            // HF: normal with std 1/sqrt(hidden).
            image_newline: source.param(
                "image_newline",
                [hidden],
                &normal(1.0 / (hidden as f64).sqrt()),
            )?,
            decoder: Decoder::build(source, &config.text)?,
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

    /// Merges a LoRA adapter into the decoder's weights ([`Decoder::merge_lora`]).
    pub fn merge_lora(&mut self, lora: &crate::Lora<B>) -> Result<()> {
        self.decoder.merge_lora(lora)
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
    /// [`ModelError::InvalidInput`](crate::ModelError::InvalidInput) naming the sequence.
    ///
    /// # Shapes
    /// - output: `[batch.sequences.len(), text_hidden]`
    pub fn forward(&self, batch: Batch<B>) -> Result<Tensor<B, 2>> {
        batch.validate(&self.config, self.decoder.vocab_size())?;
        let device = self.image_newline.device();
        let Batch {
            sequences,
            image_pipeline,
        } = batch;
        let (ids, images): (Vec<_>, Vec<_>) = sequences
            .into_iter()
            .map(|sequence| (sequence.ids, sequence.image))
            .unzip();
        let mut packed = self.image_tokens(images, image_pipeline)?.into_iter();
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
        behaviour: ImagePipeline,
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
        image_pipeline: ImagePipeline,
    ) -> Result<Tensor<B, 2>> {
        let layout = ImageLayout {
            image_size,
            pinpoints: &self.config.grid_pinpoints,
            crop_size: self.config.vision.image_size as u32,
            patches_per_side: self.config.vision.patches_per_side(),
            image_pipeline,
        };
        pack_image(features, self.image_newline.val(), &layout)
    }
}
