//! The CLIP vision tower, run up to the configured feature layer.

use burn::{
    module::{Module, Param},
    nn::Linear,
    tensor::{Tensor, backend::Backend},
};

use crate::{
    Result,
    config::VisionConfig,
    cpu,
    nn::{Activation, AttentionBudget, LayerNorm, MultiHeadAttention, add, linear, linear_act},
    weights::WeightLoader,
};

/// CLIP ViT: patch + class + position embeddings, `pre_layrnorm`, pre-LN blocks.
///
/// Only the blocks up to the feature layer exist in memory; the rest of the tower and
/// `post_layernorm` are never loaded.
#[derive(Module, Debug)]
pub struct VisionTower<B: Backend> {
    /// The patch convolution (kernel = stride = patch, no bias) as a matrix
    /// `[channels * patch * patch, hidden]`.
    patch_embedding: Param<Tensor<B, 2>>,
    class_embedding: Param<Tensor<B, 1>>,
    position_embedding: Param<Tensor<B, 2>>,
    pre_layrnorm: LayerNorm<B>,
    layers: Vec<VisionBlock<B>>,
    #[module(skip)]
    config: VisionConfig,
    #[module(skip)]
    attention_budget: AttentionBudget,
}

#[derive(Module, Debug)]
struct VisionBlock<B: Backend> {
    layer_norm1: LayerNorm<B>,
    self_attn: MultiHeadAttention<B>,
    layer_norm2: LayerNorm<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
    #[module(skip)]
    activation: Activation,
}

impl<B: Backend> VisionTower<B> {
    pub(crate) fn load(w: &mut WeightLoader<B>, config: &VisionConfig) -> Result<Self> {
        let (hidden, channels, patch) =
            (config.hidden_size, config.num_channels, config.patch_size);
        let positions = config.patches_per_crop() + 1;
        let conv = w.tensor::<4>(
            "vision.embeddings.patch_embedding.weight",
            [hidden, channels, patch, patch],
        )?;
        let layers = (0..config.feature_blocks)
            .map(|i| VisionBlock::load(w, config, &format!("vision.encoder.layers.{i}")))
            .collect::<Result<_>>()?;
        Ok(Self {
            patch_embedding: Param::from_tensor(
                conv.reshape([hidden, channels * patch * patch]).transpose(),
            ),
            class_embedding: w.param("vision.embeddings.class_embedding", [hidden])?,
            position_embedding: w.param(
                "vision.embeddings.position_embedding.weight",
                [positions, hidden],
            )?,
            pre_layrnorm: layer_norm(w, "vision.pre_layrnorm", hidden, config.layer_norm_eps)?,
            layers,
            config: config.clone(),
            attention_budget: AttentionBudget::DEFAULT,
        })
    }

    /// Whether a checkpoint tensor may stay unused: the blocks after the feature layer,
    /// `post_layernorm`, and the `position_ids` buffer older checkpoints carry.
    pub(crate) fn is_unused_key(key: &str, config: &VisionConfig) -> bool {
        if key.starts_with("vision.post_layernorm.") || key == "vision.embeddings.position_ids" {
            return true;
        }
        key.strip_prefix("vision.encoder.layers.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|index| index.parse::<usize>().ok())
            .is_some_and(|index| index >= config.feature_blocks && index < config.num_layers)
    }

    /// Bounds attention's score blocks (backends without the fused CPU kernel).
    pub fn set_attention_budget(&mut self, budget: AttentionBudget) {
        self.attention_budget = budget;
    }

    /// Patch features of the feature layer, CLS dropped.
    ///
    /// # Shapes
    /// - pixels: `[crops, channels, image_size, image_size]` -> `[crops, patches, hidden]`
    pub fn forward(&self, pixels: Tensor<B, 4>) -> Tensor<B, 3> {
        let [crops, channels, _, _] = pixels.dims();
        let (patch, side) = (self.config.patch_size, self.config.patches_per_side());
        let hidden = self.config.hidden_size;
        // A stride = kernel convolution is a matmul over flattened (channel, row, col) patches.
        let patches = pixels
            .reshape([crops, channels, side, patch, side, patch])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([crops, side * side, channels * patch * patch]);
        let weight = self.patch_embedding.val();
        let patches = cpu::linear(&patches, &weight, None, None)
            .unwrap_or_else(|| patches.matmul(weight.unsqueeze()));
        let class = self
            .class_embedding
            .val()
            .reshape([1, 1, hidden])
            .expand([crops, 1, hidden]);
        let mut x =
            Tensor::cat(vec![class, patches], 1) + self.position_embedding.val().unsqueeze();
        x = self.pre_layrnorm.forward(x);
        for layer in &self.layers {
            x = layer.forward(x, self.attention_budget);
        }
        let tokens = x.dims()[1];
        x.slice([0..crops, 1..tokens, 0..hidden])
    }
}

impl<B: Backend> VisionBlock<B> {
    fn load(w: &mut WeightLoader<B>, config: &VisionConfig, prefix: &str) -> Result<Self> {
        let (hidden, eps) = (config.hidden_size, config.layer_norm_eps);
        let attn = format!("{prefix}.self_attn");
        let proj = |w: &mut WeightLoader<B>, name: &str| {
            w.linear(&format!("{attn}.{name}"), hidden, hidden, true)
        };
        Ok(Self {
            layer_norm1: layer_norm(w, &format!("{prefix}.layer_norm1"), hidden, eps)?,
            self_attn: MultiHeadAttention {
                q_proj: proj(w, "q_proj")?,
                k_proj: proj(w, "k_proj")?,
                v_proj: proj(w, "v_proj")?,
                o_proj: proj(w, "out_proj")?,
                num_heads: config.num_heads,
                num_kv_heads: config.num_heads,
                head_dim: hidden / config.num_heads,
            },
            layer_norm2: layer_norm(w, &format!("{prefix}.layer_norm2"), hidden, eps)?,
            fc1: w.linear(
                &format!("{prefix}.mlp.fc1"),
                hidden,
                config.intermediate_size,
                true,
            )?,
            fc2: w.linear(
                &format!("{prefix}.mlp.fc2"),
                config.intermediate_size,
                hidden,
                true,
            )?,
            activation: config.activation,
        })
    }

    fn forward(&self, x: Tensor<B, 3>, budget: AttentionBudget) -> Tensor<B, 3> {
        let normed = self.layer_norm1.forward(x.clone());
        let x = add(x, self.self_attn.forward(normed, None, None, budget));
        let h = linear_act(
            &self.fc1,
            self.layer_norm2.forward(x.clone()),
            self.activation,
        );
        add(x, linear(&self.fc2, h))
    }
}

fn layer_norm<B: Backend>(
    w: &mut WeightLoader<B>,
    prefix: &str,
    size: usize,
    eps: f64,
) -> Result<LayerNorm<B>> {
    Ok(LayerNorm {
        weight: w.param(&format!("{prefix}.weight"), [size])?,
        bias: w.param(&format!("{prefix}.bias"), [size])?,
        eps,
    })
}
