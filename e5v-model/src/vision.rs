//! The CLIP vision tower, run up to the configured feature layer.

use burn::{
    module::{Module, Param},
    nn::Linear,
    tensor::{DType, Tensor, backend::Backend},
};

use crate::{
    Result,
    config::VisionConfig,
    cpu,
    nn::{
        Activation, AttentionBudget, LayerNorm, MultiHeadAttention, ParamSource, RandomInit, add,
        linear, linear_act, matmul, normal,
    },
};

/// CLIP ViT: patch + class + position embeddings, `pre_layrnorm`, pre-LN blocks.
///
/// Only the blocks up to the feature layer exist in memory; the rest of the tower and
/// `post_layernorm` are never loaded.
///
/// Loaded with the whole model, or built with random weights by [`VisionConfig::init`].
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

impl VisionConfig {
    /// A vision tower with random weights (for tests and training), in the backend's default
    /// float type: normal with std `initializer_range` for the patch and position embeddings
    /// and the linears, std `hidden_size^-0.5` for the class embedding (as CLIP), zero biases,
    /// LayerNorms of ones and zeros. Like a loaded tower it holds only the `feature_blocks`
    /// blocks that run, so burn records of the two are interchangeable.
    pub fn init<B: Backend>(&self, device: &B::Device) -> VisionTower<B> {
        let Ok(tower) = VisionTower::build(&mut RandomInit::new(device), self);
        tower
    }

    /// [`Self::init`] with the weights in `dtype`; fails if the backend does not support it.
    pub fn init_with_dtype<B: Backend>(
        &self,
        device: &B::Device,
        dtype: DType,
    ) -> Result<VisionTower<B>> {
        let Ok(tower) = VisionTower::build(&mut RandomInit::with_dtype(device, dtype)?, self);
        Ok(tower)
    }
}

impl<B: Backend> VisionTower<B> {
    /// The one constructor, from a checkpoint or random weights.
    pub(crate) fn build<S: ParamSource<B>>(
        source: &mut S,
        config: &VisionConfig,
    ) -> Result<Self, S::Error> {
        let (hidden, channels, patch) =
            (config.hidden_size, config.num_channels, config.patch_size);
        let std = config.initializer_range;
        let positions = config.patches_per_crop() + 1;
        let conv = source.tensor::<4>(
            "vision.embeddings.patch_embedding.weight",
            [hidden, channels, patch, patch],
            &normal(std),
        )?;
        let layers = (0..config.feature_blocks)
            .map(|i| VisionBlock::build(source, config, &format!("vision.encoder.layers.{i}")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            patch_embedding: Param::from_tensor(
                conv.reshape([hidden, channels * patch * patch]).transpose(),
            ),
            class_embedding: source.param(
                "vision.embeddings.class_embedding",
                [hidden],
                &normal((hidden as f64).powf(-0.5)),
            )?,
            position_embedding: source.param(
                "vision.embeddings.position_embedding.weight",
                [positions, hidden],
                &normal(std),
            )?,
            pre_layrnorm: LayerNorm::build(
                source,
                "vision.pre_layrnorm",
                hidden,
                config.layer_norm_eps,
            )?,
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
            .unwrap_or_else(|| matmul(patches, weight.unsqueeze()));
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
    fn build<S: ParamSource<B>>(
        source: &mut S,
        config: &VisionConfig,
        prefix: &str,
    ) -> Result<Self, S::Error> {
        let (hidden, inter) = (config.hidden_size, config.intermediate_size);
        let (eps, std) = (config.layer_norm_eps, config.initializer_range);
        let attn = format!("{prefix}.self_attn");
        let mut linear =
            |name: String, input, output| source.linear(&name, input, output, true, std);
        let (q_proj, k_proj, v_proj, o_proj) = (
            linear(format!("{attn}.q_proj"), hidden, hidden)?,
            linear(format!("{attn}.k_proj"), hidden, hidden)?,
            linear(format!("{attn}.v_proj"), hidden, hidden)?,
            linear(format!("{attn}.out_proj"), hidden, hidden)?,
        );
        let (fc1, fc2) = (
            linear(format!("{prefix}.mlp.fc1"), hidden, inter)?,
            linear(format!("{prefix}.mlp.fc2"), inter, hidden)?,
        );
        let mut norm =
            |name: &str| LayerNorm::build(source, &format!("{prefix}.{name}"), hidden, eps);
        Ok(Self {
            layer_norm1: norm("layer_norm1")?,
            self_attn: MultiHeadAttention {
                q_proj,
                k_proj,
                v_proj,
                o_proj,
                num_heads: config.num_heads,
                num_kv_heads: config.num_heads,
                head_dim: hidden / config.num_heads,
            },
            layer_norm2: norm("layer_norm2")?,
            fc1,
            fc2,
            activation: config.activation,
        })
    }

    fn forward(&self, x: Tensor<B, 3>, budget: AttentionBudget) -> Tensor<B, 3> {
        let normed = self.layer_norm1.forward(x.clone());
        let x = add(x, self.self_attn.forward(normed, None, None, budget, None));
        let h = linear_act(
            &self.fc1,
            self.layer_norm2.forward(x.clone()),
            self.activation,
        );
        add(x, linear(&self.fc2, h))
    }
}
