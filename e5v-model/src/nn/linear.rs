//! Linear layers, through the fused CPU kernel when the backend keeps tensors in host memory.
//! Elsewhere the product goes through [`matmul`] (the GPU backends' kernel choice).

use burn::{
    nn::Linear,
    tensor::{Tensor, backend::Backend},
};

use super::{Activation, matmul};
use crate::{LoraTarget, cpu, lora::LayerAdapters};

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

/// [`linear`] plus `target`'s LoRA update of `x`, when the layer has one.
pub(crate) fn adapted<B: Backend, const D: usize>(
    layer: &Linear<B>,
    x: Tensor<B, D>,
    lora: Option<&LayerAdapters<'_, B>>,
    target: LoraTarget,
) -> Tensor<B, D> {
    match lora.and_then(|lora| lora.delta(target, &x)) {
        Some(delta) => linear(layer, x) + delta,
        None => linear(layer, x),
    }
}

/// [`linear_act`] with `target`'s LoRA update added before the activation.
pub(crate) fn adapted_act<B: Backend, const D: usize>(
    layer: &Linear<B>,
    x: Tensor<B, D>,
    act: Activation,
    lora: Option<&LayerAdapters<'_, B>>,
    target: LoraTarget,
) -> Tensor<B, D> {
    match lora.and_then(|lora| lora.delta(target, &x)) {
        Some(delta) => act.forward(linear(layer, x) + delta),
        None => linear_act(layer, x, act),
    }
}

/// `x · W + b` with burn's operations, as `Linear::forward` computes it.
fn product<B: Backend, const D: usize>(layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    let y = matmul(x, layer.weight.val().unsqueeze());
    match &layer.bias {
        Some(bias) => y + bias.val().unsqueeze(),
        None => y,
    }
}
