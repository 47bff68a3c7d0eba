//! Normalisation layers, computed as transformers computes them.

use burn::{
    module::{Initializer, Module, Param},
    tensor::{DType, Tensor, backend::Backend},
};

use super::ParamSource;
use crate::cpu;

/// RMSNorm as in HF Llama: normalise in f32, cast back, then scale.
///
/// burn's own `RmsNorm` scales before casting back, which differs in half precision.
#[derive(Module, Debug)]
pub(crate) struct RmsNorm<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// `{prefix}.weight` of `size` (random: ones).
    pub fn build<S: ParamSource<B>>(
        source: &mut S,
        prefix: &str,
        size: usize,
        eps: f64,
    ) -> Result<Self, S::Error> {
        Ok(Self {
            weight: source.param(&format!("{prefix}.weight"), [size], &Initializer::Ones)?,
            eps,
        })
    }

    /// # Shapes
    /// - x: `[..., d]` -> `[..., d]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        if let Some(out) = cpu::rms_norm(&x, &self.weight.val(), self.eps) {
            return out;
        }
        let dtype = x.dtype();
        let x = x.cast(DType::F32);
        // A division, not `recip()`: burn-ndarray's SIMD reciprocal is approximate (~1e-4).
        let rms = (x.clone().square().mean_dim(D - 1) + self.eps).sqrt();
        (x / rms).cast(dtype) * self.weight.val().unsqueeze()
    }
}

/// LayerNorm with weight and bias (CLIP), statistics in f32.
#[derive(Module, Debug)]
pub(crate) struct LayerNorm<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub bias: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// `{prefix}.weight` and `{prefix}.bias` of `size` (random: ones and zeros).
    pub fn build<S: ParamSource<B>>(
        source: &mut S,
        prefix: &str,
        size: usize,
        eps: f64,
    ) -> Result<Self, S::Error> {
        Ok(Self {
            weight: source.param(&format!("{prefix}.weight"), [size], &Initializer::Ones)?,
            bias: source.param(&format!("{prefix}.bias"), [size], &Initializer::Zeros)?,
            eps,
        })
    }

    /// # Shapes
    /// - x: `[..., d]` -> `[..., d]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let (weight, bias) = (self.weight.val(), self.bias.val());
        if let Some(out) = cpu::layer_norm(&x, &weight, &bias, self.eps) {
            return out;
        }
        let dtype = x.dtype();
        let x = x.cast(DType::F32);
        let (var, mean) = x.clone().var_mean_bias(D - 1);
        let normed = ((x - mean) / (var + self.eps).sqrt()).cast(dtype);
        normed * weight.unsqueeze() + bias.unsqueeze()
    }
}
