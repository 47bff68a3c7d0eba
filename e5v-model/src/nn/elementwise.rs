//! Residual sums and gating products, through the CPU kernel when the backend keeps tensors in
//! host memory (burn-flex converts half-precision values one at a time).

use burn::tensor::{Tensor, backend::Backend};

use crate::cpu;

/// `a + b`.
pub(crate) fn add<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> Tensor<B, D> {
    cpu::add(&a, &b).unwrap_or_else(|| a + b)
}

/// `a * b`.
pub(crate) fn mul<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> Tensor<B, D> {
    cpu::mul(&a, &b).unwrap_or_else(|| a * b)
}
