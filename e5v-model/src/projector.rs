//! The multimodal projector: vision features -> decoder embeddings.

use burn::{
    module::Module,
    nn::Linear,
    tensor::{DType, Tensor, backend::Backend},
};

use crate::{
    Result,
    config::ProjectorConfig,
    nn::{Activation, ParamSource, RandomInit, linear, linear_act},
};

/// `linear_2(act(linear_1(x)))`.
///
/// Loaded with the whole model, or built with random weights by [`ProjectorConfig::init`].
#[derive(Module, Debug)]
pub struct Projector<B: Backend> {
    linear_1: Linear<B>,
    linear_2: Linear<B>,
    #[module(skip)]
    activation: Activation,
}

impl ProjectorConfig {
    /// A projector with random weights (for tests and training), in the backend's default
    /// float type: normal with std `initializer_range`, zero biases, as HF initialises it.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Projector<B> {
        let Ok(projector) = Projector::build(&mut RandomInit::new(device), self);
        projector
    }

    /// [`Self::init`] with the weights in `dtype`; fails if the backend does not support it.
    pub fn init_with_dtype<B: Backend>(
        &self,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Projector<B>> {
        let Ok(projector) = Projector::build(&mut RandomInit::with_dtype(device, dtype)?, self);
        Ok(projector)
    }
}

impl<B: Backend> Projector<B> {
    /// The one constructor, from a checkpoint or random weights.
    pub(crate) fn build<S: ParamSource<B>>(
        source: &mut S,
        config: &ProjectorConfig,
    ) -> Result<Self, S::Error> {
        let (input, output, std) = (
            config.input_size,
            config.output_size,
            config.initializer_range,
        );
        Ok(Self {
            linear_1: source.linear("projector.linear_1", input, output, config.bias, std)?,
            linear_2: source.linear("projector.linear_2", output, output, config.bias, std)?,
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
