//! The multimodal projector: vision features -> decoder embeddings.

use burn::{
    module::Module,
    nn::Linear,
    tensor::{Tensor, backend::Backend},
};

use crate::{
    Result,
    config::ProjectorConfig,
    nn::{Activation, linear, linear_act},
    weights::WeightLoader,
};

/// `linear_2(act(linear_1(x)))`.
#[derive(Module, Debug)]
pub struct Projector<B: Backend> {
    linear_1: Linear<B>,
    linear_2: Linear<B>,
    #[module(skip)]
    activation: Activation,
}

impl<B: Backend> Projector<B> {
    pub(crate) fn load(w: &mut WeightLoader<B>, config: &ProjectorConfig) -> Result<Self> {
        let (input, output) = (config.input_size, config.output_size);
        Ok(Self {
            linear_1: w.linear("projector.linear_1", input, output, config.bias)?,
            linear_2: w.linear("projector.linear_2", output, output, config.bias)?,
            activation: config.activation,
        })
    }

    /// # Shapes
    /// - features: `[..., vision_hidden]` -> `[..., text_hidden]`
    pub fn forward<const D: usize>(&self, features: Tensor<B, D>) -> Tensor<B, D> {
        linear(
            &self.linear_2,
            linear_act(&self.linear_1, features, self.activation),
        )
    }
}
