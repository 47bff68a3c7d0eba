//! The language model (Llama / Mistral), returning final-normed hidden states.

use burn::{
    module::{Module, Param},
    nn::Linear,
    tensor::{Bool, Int, Tensor, backend::Backend},
};

use crate::{
    Result,
    config::DecoderConfig,
    nn::{
        Activation, AttentionBudget, AttentionMask, MultiHeadAttention, RmsNorm, RotaryEmbedding,
        add, linear, linear_act, mul,
    },
    weights::WeightLoader,
};

/// Token embeddings, pre-norm blocks with RoPE + grouped-query attention + SwiGLU, final
/// RMSNorm. There is no lm_head: E5-V pools hidden states.
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    embed_tokens: Param<Tensor<B, 2>>,
    layers: Vec<DecoderBlock<B>>,
    norm: RmsNorm<B>,
    #[module(skip)]
    rope: RotaryEmbedding,
    #[module(skip)]
    sliding_window: Option<usize>,
    #[module(skip)]
    attention_budget: AttentionBudget,
}

#[derive(Module, Debug)]
struct DecoderBlock<B: Backend> {
    input_layernorm: RmsNorm<B>,
    self_attn: MultiHeadAttention<B>,
    post_attention_layernorm: RmsNorm<B>,
    gate_proj: Linear<B>,
    up_proj: Linear<B>,
    down_proj: Linear<B>,
    #[module(skip)]
    activation: Activation,
}

impl<B: Backend> Decoder<B> {
    pub(crate) fn load(w: &mut WeightLoader<B>, config: &DecoderConfig) -> Result<Self> {
        let hidden = config.hidden_size;
        // The vocabulary is whatever the table holds (E5-V's config and table disagree).
        let vocab = w
            .shape("decoder.embed_tokens.weight")?
            .first()
            .copied()
            .unwrap_or(0);
        let layers = (0..config.num_layers)
            .map(|i| DecoderBlock::load(w, config, &format!("decoder.layers.{i}")))
            .collect::<Result<_>>()?;
        Ok(Self {
            embed_tokens: w.param("decoder.embed_tokens.weight", [vocab, hidden])?,
            layers,
            norm: rms_norm(w, "decoder.norm", hidden, config.rms_norm_eps)?,
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
        let rope = self.rope.tables(positions, embeddings.dtype());
        let mask = AttentionMask::causal(valid, self.sliding_window);
        let mut x = embeddings;
        for layer in &self.layers {
            x = layer.forward(x, &rope, &mask, self.attention_budget);
        }
        self.norm.forward(x)
    }
}

impl<B: Backend> DecoderBlock<B> {
    fn load(w: &mut WeightLoader<B>, c: &DecoderConfig, prefix: &str) -> Result<Self> {
        let (hidden, inter) = (c.hidden_size, c.intermediate_size);
        let (q_width, kv_width) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
        let attn = format!("{prefix}.self_attn");
        let mlp = format!("{prefix}.mlp");
        Ok(Self {
            input_layernorm: rms_norm(
                w,
                &format!("{prefix}.input_layernorm"),
                hidden,
                c.rms_norm_eps,
            )?,
            self_attn: MultiHeadAttention {
                q_proj: w.linear(&format!("{attn}.q_proj"), hidden, q_width, false)?,
                k_proj: w.linear(&format!("{attn}.k_proj"), hidden, kv_width, false)?,
                v_proj: w.linear(&format!("{attn}.v_proj"), hidden, kv_width, false)?,
                o_proj: w.linear(&format!("{attn}.o_proj"), q_width, hidden, false)?,
                num_heads: c.num_heads,
                num_kv_heads: c.num_kv_heads,
                head_dim: c.head_dim,
            },
            post_attention_layernorm: rms_norm(
                w,
                &format!("{prefix}.post_attention_layernorm"),
                hidden,
                c.rms_norm_eps,
            )?,
            gate_proj: w.linear(&format!("{mlp}.gate_proj"), hidden, inter, false)?,
            up_proj: w.linear(&format!("{mlp}.up_proj"), hidden, inter, false)?,
            down_proj: w.linear(&format!("{mlp}.down_proj"), inter, hidden, false)?,
            activation: c.activation,
        })
    }

    fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &crate::nn::RopeTables<B>,
        mask: &AttentionMask<B>,
        budget: AttentionBudget,
    ) -> Tensor<B, 3> {
        let normed = self.input_layernorm.forward(x.clone());
        let x = add(
            x,
            self.self_attn
                .forward(normed, Some(rope), Some(mask), budget),
        );
        let h = self.post_attention_layernorm.forward(x.clone());
        let gate = linear_act(&self.gate_proj, h.clone(), self.activation);
        let gated = mul(gate, linear(&self.up_proj, h));
        add(x, linear(&self.down_proj, gated))
    }
}

fn rms_norm<B: Backend>(
    w: &mut WeightLoader<B>,
    prefix: &str,
    size: usize,
    eps: f64,
) -> Result<RmsNorm<B>> {
    Ok(RmsNorm {
        weight: w.param(&format!("{prefix}.weight"), [size])?,
        eps,
    })
}
