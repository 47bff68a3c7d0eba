//! Linear layers, through the fused CPU kernel when the backend keeps tensors in host memory.
//! Elsewhere the product goes through [`matmul`] (the GPU backends' kernel choice).

use burn::{
    nn::Linear,
    tensor::{Tensor, backend::Backend},
};

use super::{Activation, matmul};
use crate::cpu;

/// `x · W + b`.
pub(crate) fn linear<B: Backend, const D: usize>(
    layer: &Linear<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    let bias = layer.bias.as_ref().map(|b| b.val());
    cpu::linear(&x, &layer.weight.val(), bias.as_ref(), None).unwrap_or_else(|| product(layer, x))
}

/// `act(x · W + b)`, the activation fused into the product on the CPU path.
pub(crate) fn linear_act<B: Backend, const D: usize>(
    layer: &Linear<B>,
    x: Tensor<B, D>,
    act: Activation,
) -> Tensor<B, D> {
    let bias = layer.bias.as_ref().map(|b| b.val());
    cpu::linear(&x, &layer.weight.val(), bias.as_ref(), Some(act))
        .unwrap_or_else(|| act.forward(product(layer, x)))
}

/// `x · W + b` with burn's operations, as `Linear::forward` computes it.
fn product<B: Backend, const D: usize>(layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    let y = matmul(x, layer.weight.val().unsqueeze());
    match &layer.bias {
        Some(bias) => y + bias.val().unsqueeze(),
        None => y,
    }
}
