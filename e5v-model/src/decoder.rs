//! The language model (Llama / Mistral), returning final-normed hidden states.

use std::path::Path;

use burn::{
    module::{Module, Param},
    nn::Linear,
    tensor::{Bool, DType, Int, Tensor, backend::Backend},
};

use crate::{
    Checkpoint, Lora, LoraTarget, ModelError, Result,
    config::{DecoderConfig, LlavaNextConfig},
    lora::{LayerAdapters, merged_weight},
    merge,
    nn::{
        Activation, AttentionBudget, AttentionMask, MultiHeadAttention, ParamSource, RandomInit,
        RmsNorm, RotaryEmbedding, adapted, adapted_act, add, check_dtype, mul, normal,
    },
    pooling,
    weights::WeightLoader,
};

/// Token embeddings, pre-norm blocks with RoPE + grouped-query attention + SwiGLU, final
/// RMSNorm. There is no lm_head: E5-V pools hidden states.
///
/// Loaded with the whole model, or built with random weights by [`DecoderConfig::init`].
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    embed_tokens: Param<Tensor<B, 2>>,
    pub(crate) layers: Vec<DecoderBlock<B>>,
    norm: RmsNorm<B>,
    #[module(skip)]
    rope: RotaryEmbedding,
    #[module(skip)]
    sliding_window: Option<usize>,
    #[module(skip)]
    attention_budget: AttentionBudget,
}

#[derive(Module, Debug)]
pub(crate) struct DecoderBlock<B: Backend> {
    input_layernorm: RmsNorm<B>,
    pub(crate) self_attn: MultiHeadAttention<B>,
    post_attention_layernorm: RmsNorm<B>,
    pub(crate) gate_proj: Linear<B>,
    pub(crate) up_proj: Linear<B>,
    pub(crate) down_proj: Linear<B>,
    #[module(skip)]
    activation: Activation,
}

impl DecoderConfig {
    /// A decoder with random weights (for tests and training), in the backend's default float
    /// type: HF's initialisation, normal with std `initializer_range` for the embedding table
    /// (`vocab_size` rows) and the linears, ones for the norms. Its parameters have the names
    /// and shapes of a loaded decoder, so burn records of the two are interchangeable.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Decoder<B> {
        let Ok(decoder) = Decoder::build(&mut RandomInit::new(device), self);
        decoder
    }

    /// [`Self::init`] with the weights in `dtype`; fails if the backend does not support it.
    pub fn init_with_dtype<B: Backend>(
        &self,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Decoder<B>> {
        let Ok(decoder) = Decoder::build(&mut RandomInit::with_dtype(device, dtype)?, self);
        Ok(decoder)
    }
}

impl<B: Backend> Decoder<B> {
    /// Loads the decoder alone from a LLaVA-NeXT checkpoint folder (`config.json` and the
    /// safetensors weights), cast to `dtype`: the vision tower, projector and lm_head are not
    /// read. Returns the decoder's config with it.
    pub fn load(
        dir: impl AsRef<Path>,
        device: &B::Device,
        dtype: DType,
    ) -> Result<(Self, DecoderConfig)> {
        let dir = dir.as_ref();
        let config = LlavaNextConfig::from_file(dir.join("config.json"))?.text;
        check_dtype::<B>(device, dtype)?;
        let checkpoint = Checkpoint::open(dir)?;
        let mut weights = WeightLoader::new(&checkpoint, device, dtype);
        let decoder = Self::build(&mut weights, &config)?;
        weights.finish(|key| !key.starts_with("decoder."))?;
        Ok((decoder, config))
    }

    /// The one constructor, from a checkpoint or random weights.
    pub(crate) fn build<S: ParamSource<B>>(
        source: &mut S,
        config: &DecoderConfig,
    ) -> Result<Self, S::Error> {
        let hidden = config.hidden_size;
        let std = config.initializer_range;
        // A checkpoint's vocabulary is whatever its table holds (E5-V's config and table
        // disagree).
        let table = "decoder.embed_tokens.weight";
        let vocab = source.rows(table, config.vocab_size)?;
        let layers = (0..config.num_layers)
            .map(|i| DecoderBlock::build(source, config, &format!("decoder.layers.{i}")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            embed_tokens: source.param(table, [vocab, hidden], &normal(std))?,
            layers,
            norm: RmsNorm::build(source, "decoder.norm", hidden, config.rms_norm_eps)?,
            rope: RotaryEmbedding::new(&config.rope, config.head_dim),
            sliding_window: config.sliding_window,
            attention_budget: AttentionBudget::DEFAULT,
        })
    }

    /// Bounds attention's score blocks (backends without the fused CPU kernel).
    pub fn set_attention_budget(&mut self, budget: AttentionBudget) {
        self.attention_budget = budget;
    }

    /// Rows of the token-embedding table.
    pub fn vocab_size(&self) -> usize {
        self.embed_tokens.dims()[0]
    }

    /// Looks up token embeddings. Ids must be `< vocab_size()` (the caller splices image
    /// features in place of the out-of-table image token).
    ///
    /// # Shapes
    /// - ids: `[n]` -> `[n, hidden]`
    pub fn embed(&self, ids: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        self.embed_tokens.val().select(0, ids)
    }

    /// Runs the blocks and the final norm.
    ///
    /// # Shapes
    /// - embeddings: `[batch, seq, hidden]`
    /// - valid: `[batch, seq]`, `true` for real tokens (padding keys are never attended)
    /// - positions: `[batch, seq]`, the RoPE position of each token
    /// - output: `[batch, seq, hidden]`, final-normed hidden states
    pub fn forward(
        &self,
        embeddings: Tensor<B, 3>,
        valid: Tensor<B, 2, Bool>,
        positions: Tensor<B, 2, Int>,
    ) -> Tensor<B, 3> {
        self.run(embeddings, valid, positions, None)
    }

    /// [`Self::forward`] with a LoRA adapter's updates added to the adapted projections
    /// (unmerged: the base weights are untouched, and gradients reach the adapter).
    pub fn forward_with_lora(
        &self,
        embeddings: Tensor<B, 3>,
        valid: Tensor<B, 2, Bool>,
        positions: Tensor<B, 2, Int>,
        lora: &Lora<B>,
    ) -> Tensor<B, 3> {
        self.run(embeddings, valid, positions, Some(lora))
    }

    fn run(
        &self,
        embeddings: Tensor<B, 3>,
        valid: Tensor<B, 2, Bool>,
        positions: Tensor<B, 2, Int>,
        lora: Option<&Lora<B>>,
    ) -> Tensor<B, 3> {
        let rope = self.rope.tables(positions, embeddings.dtype());
        let mask = AttentionMask::causal(valid, self.sliding_window);
        let mut x = embeddings;
        for (i, layer) in self.layers.iter().enumerate() {
            let adapters = lora.and_then(|lora| lora.layer(i));
            x = layer.forward(x, &rope, &mask, self.attention_budget, adapters.as_ref());
        }
        self.norm.forward(x)
    }

    /// E5-V's text embedding: each sequence of token ids (a whole prompt, without image
    /// tokens) through the decoder, with `lora`'s updates if given, pooled at its last token.
    /// The vectors are raw (not normalised) and do not depend on the rest of the batch.
    ///
    /// # Shapes
    /// - output: `[sequences.len(), hidden]`
    pub fn embed_texts(
        &self,
        sequences: &[Vec<u32>],
        lora: Option<&Lora<B>>,
    ) -> Result<Tensor<B, 2>> {
        let vocab = self.vocab_size();
        if sequences.is_empty() {
            return Err(ModelError::InvalidInput("an empty batch".into()));
        }
        for (i, ids) in sequences.iter().enumerate() {
            if ids.is_empty() {
                return Err(ModelError::InvalidInput(format!("sequence {i} is empty")));
            }
            if let Some(id) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(ModelError::InvalidInput(format!(
                    "sequence {i}: token id {id} is outside the embedding table ({vocab} rows)"
                )));
            }
        }
        if let Some(lora) = lora {
            lora.check_fits_layers(self.layers.len())?;
        }
        let device = self.embed_tokens.device();
        let merged = merge::pad(
            sequences
                .iter()
                .map(|ids| merge::splice(self, ids, u32::MAX, None, &device))
                .collect(),
            &device,
        );
        let states = self.run(merged.embeddings, merged.valid, merged.positions, lora);
        Ok(pooling::last_token(states, &merged.lengths))
    }

    /// Adds `lora`'s updates into the adapted projection weights (in their dtype), so that
    /// [`Self::forward`] computes what [`Self::forward_with_lora`] does without dropout.
    pub fn merge_lora(&mut self, lora: &Lora<B>) -> Result<()> {
        lora.check_fits_layers(self.layers.len())?;
        let scale = lora.config().scale();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            for target in LoraTarget::ALL {
                let Some(adapter) = lora.layer_adapter(i, target) else {
                    continue;
                };
                let linear = layer.projection_mut(target);
                if linear.weight.dims() != [adapter.a.dims()[0], adapter.b.dims()[1]] {
                    return Err(ModelError::InvalidInput(format!(
                        "LoRA adapter: layer {i} {target} does not fit a weight of shape {:?}",
                        linear.weight.dims()
                    )));
                }
                let weight = merged_weight(linear.weight.val(), adapter, scale);
                linear.weight = Param::initialized(linear.weight.id, weight);
            }
        }
        Ok(())
    }
}

impl<B: Backend> DecoderBlock<B> {
    fn build<S: ParamSource<B>>(
        source: &mut S,
        c: &DecoderConfig,
        prefix: &str,
    ) -> Result<Self, S::Error> {
        let (hidden, inter, std) = (c.hidden_size, c.intermediate_size, c.initializer_range);
        let (q_width, kv_width) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
        let attn = format!("{prefix}.self_attn");
        let mlp = format!("{prefix}.mlp");
        let mut linear =
            |name: String, input, output| source.linear(&name, input, output, false, std);
        let (q_proj, k_proj, v_proj, o_proj) = (
            linear(format!("{attn}.q_proj"), hidden, q_width)?,
            linear(format!("{attn}.k_proj"), hidden, kv_width)?,
            linear(format!("{attn}.v_proj"), hidden, kv_width)?,
            linear(format!("{attn}.o_proj"), q_width, hidden)?,
        );
        let (gate_proj, up_proj, down_proj) = (
            linear(format!("{mlp}.gate_proj"), hidden, inter)?,
            linear(format!("{mlp}.up_proj"), hidden, inter)?,
            linear(format!("{mlp}.down_proj"), inter, hidden)?,
        );
        let mut norm = |name: &str| {
            RmsNorm::build(source, &format!("{prefix}.{name}"), hidden, c.rms_norm_eps)
        };
        Ok(Self {
            input_layernorm: norm("input_layernorm")?,
            self_attn: MultiHeadAttention {
                q_proj,
                k_proj,
                v_proj,
                o_proj,
                num_heads: c.num_heads,
                num_kv_heads: c.num_kv_heads,
                head_dim: c.head_dim,
            },
            post_attention_layernorm: norm("post_attention_layernorm")?,
            gate_proj,
            up_proj,
            down_proj,
            activation: c.activation,
        })
    }

    fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &crate::nn::RopeTables<B>,
        mask: &AttentionMask<B>,
        budget: AttentionBudget,
        lora: Option<&LayerAdapters<'_, B>>,
    ) -> Tensor<B, 3> {
        let normed = self.input_layernorm.forward(x.clone());
        let x = add(
            x,
            self.self_attn
                .forward(normed, Some(rope), Some(mask), budget, lora),
        );
        let h = self.post_attention_layernorm.forward(x.clone());
        let gate = adapted_act(
            &self.gate_proj,
            h.clone(),
            self.activation,
            lora,
            LoraTarget::GateProj,
        );
        let gated = mul(gate, adapted(&self.up_proj, h, lora, LoraTarget::UpProj));
        add(
            x,
            adapted(&self.down_proj, gated, lora, LoraTarget::DownProj),
        )
    }

    fn projection_mut(&mut self, target: LoraTarget) -> &mut Linear<B> {
        let attn = &mut self.self_attn;
        match target {
            LoraTarget::QProj => &mut attn.q_proj,
            LoraTarget::KProj => &mut attn.k_proj,
            LoraTarget::VProj => &mut attn.v_proj,
            LoraTarget::OProj => &mut attn.o_proj,
            LoraTarget::GateProj => &mut self.gate_proj,
            LoraTarget::UpProj => &mut self.up_proj,
            LoraTarget::DownProj => &mut self.down_proj,
        }
    }
}
