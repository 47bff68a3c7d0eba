//! Activation functions named as in HF configs.

use burn::tensor::{Tensor, activation, backend::Backend};

/// An activation function, parsed from the HF name in a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Activation {
    /// `x * sigmoid(1.702 x)` (HF `quick_gelu`; CLIP).
    QuickGelu,
    /// Exact GELU with erf (HF `gelu`; the LLaVA projector).
    Gelu,
    /// GELU with the tanh approximation (HF `gelu_pytorch_tanh`, `gelu_new`).
    GeluTanh,
    /// `x * sigmoid(x)` (HF `silu`; the Llama MLP gate).
    Silu,
    /// `max(x, 0)`.
    Relu,
}

impl Activation {
    /// The activation for an HF `hidden_act` name, if supported.
    pub fn from_hf_name(name: &str) -> Option<Self> {
        Some(match name {
            "quick_gelu" => Self::QuickGelu,
            "gelu" => Self::Gelu,
            "gelu_pytorch_tanh" | "gelu_new" => Self::GeluTanh,
            "silu" | "swish" => Self::Silu,
            "relu" => Self::Relu,
            _ => return None,
        })
    }

    /// Applies the activation elementwise.
    pub fn forward<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Self::QuickGelu => x.clone() * activation::sigmoid(x * 1.702),
            Self::Gelu => activation::gelu(x),
            Self::GeluTanh => {
                // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
                let inner = (x.clone() + x.clone().powi_scalar(3) * 0.044715)
                    * (2.0 / std::f64::consts::PI).sqrt();
                x * (inner.tanh() + 1.0) * 0.5
            }
            Self::Silu => activation::silu(x),
            Self::Relu => activation::relu(x),
        }
    }
}
