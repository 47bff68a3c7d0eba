//! The [`Embedder`]: load once, embed many inputs.

use std::path::Path;

use burn::tensor::{Tensor, TensorData, backend::Backend};
use e5v_model::{
    Batch, Checkpoint, DecoderFamily, ImageCrops, LlavaNext, LlavaNextConfig, Lora, Sequence,
};
use e5v_prompt::ChatTemplate;

use crate::{
    EmbedIter, EmbedderOptions, Embeddings, Error, Input, Prompts, Result,
    batching::{BatchLimits, InputSize, batches},
    device::DeviceLimits,
    embeddings::{InputInfo, normalize},
    image::{self, ImageProcessorConfig},
    prepare::{EncodedImage, PrepareContext, PreparedInput},
    tokenize::PromptTokenizer,
};

/// E5-V embeddings from a LLaVA-NeXT checkpoint, on any burn backend.
///
/// `embed` takes `&self`: one embedder can serve many threads at once.
pub struct Embedder<B: Backend> {
    model: LlavaNext<B>,
    tokenizer: PromptTokenizer,
    image_config: ImageProcessorConfig,
    options: EmbedderOptions,
    chat: ChatTemplate,
    device: B::Device,
    limits: DeviceLimits,
    batch: BatchLimits,
}

impl<B: Backend> std::fmt::Debug for Embedder<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("config", self.model.config())
            .field("options", &self.options)
            .field("chat", &self.chat)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Embedder<B> {
    /// Loads a HF model directory (`config.json`, safetensors weights, `tokenizer.json`, and
    /// `preprocessor_config.json` or 5.x `processor_config.json`) onto `device`.
    pub fn new(
        model_dir: impl AsRef<Path>,
        options: EmbedderOptions,
        device: &B::Device,
    ) -> Result<Self> {
        let dir = model_dir.as_ref();
        for (name, value) in [
            ("batch_size", Some(options.batch_size)),
            ("max_batch_tokens", options.max_batch_tokens),
            ("max_batch_crops", options.max_batch_crops),
        ] {
            if value == Some(0) {
                return Err(Error::InvalidArgument(format!("{name} must be at least 1")));
            }
        }
        let dtype = options.precision.dtype();
        let config = LlavaNextConfig::from_file(dir.join("config.json"))?;
        let checkpoint = Checkpoint::open(dir)?;
        if options.check_finite_weights {
            checkpoint.check_finite()?;
        }
        let mut model = LlavaNext::from_checkpoint(config, &checkpoint, device, dtype)?;
        drop(checkpoint);
        if let Some(adapter) = &options.lora_adapter {
            let lora = Lora::<B>::load_peft(adapter, &model.config().text, device)?;
            model.merge_lora(&lora)?;
        }
        let limits = DeviceLimits::of::<B>(device);
        model.set_attention_budget(limits.attention_budget());
        let config = model.config();
        let elem = dtype.size();
        if let Some((bytes, limit)) =
            limits.oversized_weight(config, model.decoder().vocab_size(), elem)
        {
            return Err(Error::DeviceLimit {
                index: None,
                what: "the model's largest weight".into(),
                bytes,
                limit,
            });
        }
        let batch = BatchLimits {
            inputs: options.batch_size,
            tokens: options
                .max_batch_tokens
                .unwrap_or_else(|| limits.batch_tokens(config, elem)),
            crops: options
                .max_batch_crops
                .unwrap_or_else(|| limits.batch_crops(config, elem)),
        };
        let tokenizer = PromptTokenizer::from_file(
            &dir.join("tokenizer.json"),
            config.image_token_id,
            model.decoder().vocab_size(),
        )?;
        let image_config = ImageProcessorConfig::from_model_dir(dir, Some(&config.grid_pinpoints))
            .map_err(Error::ImageConfig)?;
        let crop = config.vision.image_size;
        if image_config.crop_size != (crop, crop) {
            return Err(Error::Mismatch(format!(
                "the image processor makes {:?} crops, the vision tower takes {crop}x{crop}",
                image_config.crop_size
            )));
        }
        let chat = options.chat_template.unwrap_or(match config.text.family {
            DecoderFamily::Mistral => ChatTemplate::Mistral,
            _ => ChatTemplate::Llama3,
        });
        Ok(Self {
            model,
            tokenizer,
            image_config,
            options,
            chat,
            device: device.clone(),
            limits,
            batch,
        })
    }

    /// Loads `model`: a local folder, or a Hugging Face Hub repo id (`org/name` or
    /// `org/name@revision`) fetched into (or found in) the cache Python's `huggingface_hub`
    /// shares, with the settings of [`Hub::from_env`](crate::hub::Hub::from_env)
    /// (`HF_HUB_CACHE`, `HF_ENDPOINT`, `HF_TOKEN`, `HF_HUB_OFFLINE`). A folder that exists wins.
    /// For a progress callback or other settings, resolve the folder with a
    /// [`Hub`](crate::hub::Hub) and call [`Embedder::new`].
    ///
    /// ```no_run
    /// use e5v_core::{EmbedderOptions, FlexEmbedder};
    ///
    /// // 16.7 GB on the first call; from the cache afterwards.
    /// let embedder = FlexEmbedder::from_pretrained("royokong/e5-v", EmbedderOptions::default(), &Default::default())?;
    /// # Ok::<(), e5v_core::Error>(())
    /// ```
    #[cfg(feature = "hub")]
    #[cfg_attr(docsrs, doc(cfg(feature = "hub")))]
    pub fn from_pretrained(
        model: &str,
        options: EmbedderOptions,
        device: &B::Device,
    ) -> Result<Self> {
        let dir = crate::hub::Hub::from_env().model_dir(model)?;
        Self::new(dir, options, device)
    }

    /// The options in use.
    pub fn options(&self) -> &EmbedderOptions {
        &self.options
    }

    /// The chat wrapper in use.
    pub fn chat_template(&self) -> ChatTemplate {
        self.chat
    }

    /// Width of the vectors.
    pub fn dim(&self) -> usize {
        self.model.config().text.hidden_size
    }

    /// The model's maximum sequence length (prompt tokens plus image features).
    pub fn max_positions(&self) -> usize {
        self.model.config().text.max_position_embeddings
    }

    /// Embeds inputs, one vector each, in input order, with the prompts of the options.
    /// Inputs of similar length are batched together, within
    /// [`EmbedderOptions::batch_size`], the token budget and the crop budget; the result does not
    /// depend on the batching.
    ///
    /// Every input is read and tokenised before the first batch runs, so a bad input fails the
    /// call before any work; an input whose batch would not fit the device (see
    /// [`Error::DeviceLimit`]) fails it before anything is computed wrong. For more inputs than
    /// fit in memory at once (a gallery of a million images), use [`Self::embed_iter`].
    pub fn embed(&self, inputs: &[Input]) -> Result<Embeddings> {
        self.embed_with(inputs, &self.options.prompts)
    }

    /// [`Self::embed`] with other prompts for this call (e.g. the STS prompt for a similarity
    /// task), on the same loaded model.
    ///
    /// ```no_run
    /// use e5v_core::{EmbedderOptions, FlexEmbedder, Input, Preset, Prompts};
    ///
    /// let embedder = FlexEmbedder::new("e5-v", EmbedderOptions::default(), &Default::default())?;
    /// let sts = Prompts::new().with(Preset::Sts);
    /// let pair = embedder.embed_with(&[Input::text("A man is playing a guitar."), Input::text("A man plays guitar.")], &sts)?;
    /// # Ok::<(), e5v_core::Error>(())
    /// ```
    pub fn embed_with(&self, inputs: &[Input], prompts: &Prompts) -> Result<Embeddings> {
        self.embed_numbered(0, inputs, prompts, &mut |_, _| {})
    }

    /// Embeds a stream of inputs a chunk at a time (images read and decoded only when their
    /// chunk comes), yielding each chunk's vectors in input order: memory stays bounded
    /// whatever the number of inputs. See [`EmbedIter`] for the prompts, the chunk size and a
    /// progress callback.
    ///
    /// ```no_run
    /// use e5v_core::{EmbedderOptions, FlexEmbedder, Input};
    ///
    /// let embedder = FlexEmbedder::new("e5-v", EmbedderOptions::default(), &Default::default())?;
    /// let paths = std::fs::read_dir("gallery")?.map(|entry| entry.map(|e| e.path()));
    /// let inputs = paths.filter_map(|path| path.ok()).map(Input::image);
    /// for chunk in embedder.embed_iter(inputs).with_progress(|p| eprintln!("{} done", p.done)) {
    ///     let chunk = chunk?;
    ///     // store chunk.rows() ...
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn embed_iter<I: IntoIterator<Item = Input>>(
        &self,
        inputs: I,
    ) -> EmbedIter<'_, B, I::IntoIter> {
        EmbedIter::new(self, inputs.into_iter())
    }

    /// Embeds `inputs`, numbered from `first` (errors name an input by that number), calling
    /// `on_batch(inputs, tokens)` after every batch.
    pub(crate) fn embed_numbered(
        &self,
        first: usize,
        inputs: &[Input],
        prompts: &Prompts,
        on_batch: &mut dyn FnMut(usize, usize),
    ) -> Result<Embeddings> {
        let context = self.prepare_context(prompts);
        let mut prepared = inputs
            .iter()
            .enumerate()
            .map(|(offset, input)| context.prepare(first + offset, input))
            .collect::<Result<Vec<_>>>()?;
        // Length-sorted batches waste little on padding (a text next to an image would be
        // padded to thousands of tokens).
        prepared.sort_by_key(|p| std::cmp::Reverse(p.seq_len()));
        let dim = self.dim();
        let mut rows = vec![0.0f32; inputs.len() * dim];
        let mut info = vec![InputInfo::new(0, None); inputs.len()];
        let sizes: Vec<InputSize> = prepared
            .iter()
            .map(|p| InputSize {
                tokens: p.seq_len(),
                crops: p.crops,
            })
            .collect();
        for range in batches(&sizes, self.batch) {
            let batch = &prepared[range];
            let vectors = self.run(batch)?;
            for (item, vector) in batch.iter().zip(vectors.chunks_exact(dim)) {
                let row = item.index - first;
                rows[row * dim..(row + 1) * dim].copy_from_slice(vector);
                info[row] = InputInfo::new(item.seq_len(), item.image_tokens);
            }
            on_batch(batch.len(), batch.iter().map(PreparedInput::seq_len).sum());
        }
        if self.options.normalize {
            rows.chunks_exact_mut(dim.max(1)).for_each(normalize);
        }
        Ok(Embeddings::new(dim, rows, info))
    }

    /// Embeds texts with the text template.
    pub fn embed_texts<S: AsRef<str>>(&self, texts: &[S]) -> Result<Embeddings> {
        let inputs: Vec<Input> = texts.iter().map(|t| Input::text(t.as_ref())).collect();
        self.embed(&inputs)
    }

    /// Embeds images with the image template.
    pub fn embed_images<I: Into<crate::ImageSource> + Clone>(
        &self,
        images: &[I],
    ) -> Result<Embeddings> {
        let inputs: Vec<Input> = images.iter().cloned().map(Input::image).collect();
        self.embed(&inputs)
    }

    /// The token ids the model will see for an input, with the image slot as one image
    /// token (which the image features replace), as the transformers processor produces them.
    pub fn token_ids(&self, input: &Input) -> Result<Vec<u32>> {
        Ok(self
            .prepare_context(&self.options.prompts)
            .prepare(0, input)?
            .ids)
    }

    fn prepare_context<'a>(&'a self, prompts: &'a Prompts) -> PrepareContext<'a> {
        let config = self.model.config();
        PrepareContext {
            tokenizer: &self.tokenizer,
            chat: self.chat,
            prompts,
            truncation: self.options.truncation,
            max_positions: config.text.max_position_embeddings,
            vocab_size: self.model.decoder().vocab_size(),
            pinpoints: &config.grid_pinpoints,
            crop_size: config.vision.image_size as u32,
            patches_per_side: config.vision.patches_per_side(),
            image_pipeline: self.options.image_pipeline,
        }
    }

    /// Runs one batch: checks it fits the device, decodes and preprocesses its images, and
    /// runs the model's forward pass (which batches all crops through the vision tower, pads
    /// the sequences and pools each last token). Returns the raw vectors, row-major.
    fn run(&self, batch: &[PreparedInput]) -> Result<Vec<f32>> {
        let config = self.model.config();
        let elem = self.options.precision.dtype().size();
        let longest = batch.iter().map(PreparedInput::seq_len).max().unwrap_or(0);
        if let Some((bytes, limit)) =
            self.limits
                .decoder_overflow(config, batch.len(), longest, elem)
        {
            return Err(Error::DeviceLimit {
                index: batch.first().map(|item| item.index),
                what: format!("a batch of {} sequences of {longest} tokens", batch.len()),
                bytes,
                limit,
            });
        }
        let crops: usize = batch.iter().map(|item| item.crops).sum();
        if let Some((bytes, limit)) = self.limits.vision_overflow(config, crops, elem) {
            return Err(Error::DeviceLimit {
                index: batch
                    .iter()
                    .find(|item| item.image.is_some())
                    .map(|item| item.index),
                what: format!("{crops} image crops"),
                bytes,
                limit,
            });
        }
        let sequences = batch
            .iter()
            .map(|item| {
                let image = match &item.image {
                    Some(image) => Some(self.image_crops(item.index, image)?),
                    None => None,
                };
                Ok(Sequence {
                    ids: item.ids.clone(),
                    image,
                })
            })
            .collect::<Result<_>>()?;
        let pooled = self.model.forward(Batch {
            sequences,
            image_pipeline: self.options.image_pipeline,
        })?;
        pooled
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| Error::Device(format!("{e:?}")))
    }

    /// Decodes and preprocesses one input's image into the crops the vision tower takes.
    fn image_crops(&self, index: usize, encoded: &EncodedImage) -> Result<ImageCrops<B>> {
        let image_error = |source| Error::Image {
            index,
            path: encoded.path.clone(),
            source,
        };
        let decoded =
            image::decode(&encoded.bytes, &self.options.decode_limits).map_err(image_error)?;
        let pre = image::preprocess(&decoded, &self.image_config, self.options.image_pipeline)
            .map_err(image_error)?;
        let side = self.model.config().vision.image_size;
        let pixels = Tensor::<B, 4>::from_data(
            TensorData::new(pre.pixel_values, [pre.num_crops, 3, side, side]),
            (&self.device, self.options.precision.dtype()),
        );
        Ok(ImageCrops {
            pixels,
            size: pre.image_size,
        })
    }
}
