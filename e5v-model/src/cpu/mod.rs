//! Fused CPU kernels for the operations that dominate a forward pass: linear layers (with
//! their bias and activation), attention (with RoPE, grouped-query heads and the mask), the
//! normalisations and the residual sums and gating products.
//!
//! burn's CPU backends run these as chains of generic tensor ops, each allocating and often
//! copying a strided layout, on single-threaded or AVX2-only kernels (see
//! `docs/PERFORMANCE.md`). Here each is one pass over host memory on every core, with
//! AVX-512 or AVX2 chosen at run time, reading the weights in the layout they were loaded in.
//!
//! Every function returns `None` when it does not apply (the backend does not keep tensors in
//! host memory, or a dtype or layout it does not cover), and the model then runs burn's
//! operations: the model stays generic over `B: Backend`, and both paths compute the same
//! function (see the tests in `tests/model/parity.rs`, run on both CPU backends).

mod activation;
mod attention;
mod elementwise;
mod gemm;
mod host;
mod norm;
mod simd;
#[cfg(test)]
mod test_util;

use burn::tensor::{DType, Tensor, backend::Backend, bf16, f16};

pub(crate) use attention::Visibility;
use attention::{Attention, HEAD_DIM_MULTIPLE, MAX_HEAD_DIM};
use elementwise::{Binary, BinaryOp};
use gemm::Linear;
use host::{Host, HostFloat};
use norm::{Norm, RowNorm};

use crate::nn::Activation;

/// Runs `$body` with `$T` the Rust type of `$dtype` (f32, f16 or bf16), else `None`.
macro_rules! with_float {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::F16 => {
                type $T = f16;
                $body
            }
            DType::BF16 => {
                type $T = bf16;
                $body
            }
            _ => None,
        }
    };
}

/// `act(x · weight + bias)`, for a burn `Linear` weight (`[in, out]`) that is the transposed
/// view of a PyTorch `[out, in]` matrix, as the loader builds them.
///
/// # Shapes
/// - x: `[..., in]` -> `[..., out]`
pub(crate) fn linear<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    weight: &Tensor<B, 2>,
    bias: Option<&Tensor<B, 1>>,
    act: Option<Activation>,
) -> Option<Tensor<B, D>> {
    let x_host = Host::of(x)?;
    let w_host = Host::of_transposed(weight)?;
    let b_host = bias.map(Host::of);
    let dims = x.dims();
    let k = dims[D - 1];
    let [n, wk] = w_host.shape()[..] else {
        return None;
    };
    if wk != k {
        return None;
    }
    let m = dims[..D - 1].iter().product();
    let mut shape = dims;
    shape[D - 1] = n;
    with_float!(x_host.dtype(), T => {
        let bias = match &b_host {
            Some(b) => Some(b.as_ref()?.values::<T>()?),
            None => None,
        };
        let job = Linear { a: x_host.values::<T>()?, w: w_host.values::<T>()?, bias, act, m, k, n };
        Host::into_tensor::<B, D, T>(job.run(), shape)
    })
}

/// Multi-head attention on projected queries, keys and values (heads side by side in the
/// last axis), with optional RoPE tables (`[batch, 1, seq, head_dim]`). `visibility` is
/// asked only once the fast path applies (it may read the padding flags to the host).
///
/// # Shapes
/// - q: `[batch, seq, heads * head_dim]`, k and v: `[batch, seq, kv_heads * head_dim]`
/// - output: `[batch, seq, heads * head_dim]`
pub(crate) fn attention<'m, B: Backend>(
    (q, k, v): (&Tensor<B, 3>, &Tensor<B, 3>, &Tensor<B, 3>),
    (heads, kv_heads, head_dim): (usize, usize, usize),
    rope: Option<(&Tensor<B, 4>, &Tensor<B, 4>)>,
    visibility: impl FnOnce() -> Option<Visibility<'m>>,
) -> Option<Tensor<B, 3>> {
    let shapes_fit = head_dim % HEAD_DIM_MULTIPLE == 0
        && head_dim <= MAX_HEAD_DIM
        && kv_heads > 0
        && heads % kv_heads == 0;
    let [batch, seq, width] = q.dims();
    let kv_dims = [batch, seq, kv_heads * head_dim];
    if !shapes_fit || width != heads * head_dim || k.dims() != kv_dims || v.dims() != kv_dims {
        return None;
    }
    let (q, k, v) = (Host::of(q)?, Host::of(k)?, Host::of(v)?);
    let rope = match rope {
        Some((cos, sin)) if cos.dims() == [batch, 1, seq, head_dim] && sin.dims() == cos.dims() => {
            Some((Host::of(cos)?, Host::of(sin)?))
        }
        Some(_) => return None,
        None => None,
    };
    let visibility = visibility()?;
    if visibility
        .valid
        .is_some_and(|valid| valid.len() != batch * seq)
    {
        return None;
    }
    with_float!(q.dtype(), T => {
        let rope = match &rope {
            Some((cos, sin)) => Some((cos.values::<T>()?, sin.values::<T>()?)),
            None => None,
        };
        let job = Attention {
            q: q.values::<T>()?,
            k: k.values::<T>()?,
            v: v.values::<T>()?,
            rope,
            visibility,
            batch,
            seq,
            heads,
            kv_heads,
            head_dim,
        };
        Host::into_tensor::<B, 3, T>(job.run(), [batch, seq, width])
    })
}

/// `a + b`, same shapes.
pub(crate) fn add<B: Backend, const D: usize>(
    a: &Tensor<B, D>,
    b: &Tensor<B, D>,
) -> Option<Tensor<B, D>> {
    binary(a, b, BinaryOp::Add)
}

/// `a * b`, same shapes.
pub(crate) fn mul<B: Backend, const D: usize>(
    a: &Tensor<B, D>,
    b: &Tensor<B, D>,
) -> Option<Tensor<B, D>> {
    binary(a, b, BinaryOp::Mul)
}

fn binary<B: Backend, const D: usize>(
    a: &Tensor<B, D>,
    b: &Tensor<B, D>,
    op: BinaryOp,
) -> Option<Tensor<B, D>> {
    if a.dims() != b.dims() {
        return None;
    }
    let (x, y) = (Host::of(a)?, Host::of(b)?);
    with_float!(x.dtype(), T => {
        let job = Binary { a: x.values::<T>()?, b: y.values::<T>()?, op };
        Host::into_tensor::<B, D, T>(job.run(), a.dims())
    })
}

/// HF Llama's RMSNorm over the last axis.
pub(crate) fn rms_norm<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    weight: &Tensor<B, 1>,
    eps: f64,
) -> Option<Tensor<B, D>> {
    let (host, weight) = (Host::of(x)?, Host::of(weight)?);
    with_float!(host.dtype(), T => {
        normalise::<B, D, T>(x.dims(), &host, Norm::Rms { weight: weight.values::<T>()? }, eps)
    })
}

/// LayerNorm (biased variance) over the last axis.
pub(crate) fn layer_norm<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    weight: &Tensor<B, 1>,
    bias: &Tensor<B, 1>,
    eps: f64,
) -> Option<Tensor<B, D>> {
    let (host, weight, bias) = (Host::of(x)?, Host::of(weight)?, Host::of(bias)?);
    with_float!(host.dtype(), T => {
        let norm = Norm::Layer { weight: weight.values::<T>()?, bias: bias.values::<T>()? };
        normalise::<B, D, T>(x.dims(), &host, norm, eps)
    })
}

fn normalise<B: Backend, const D: usize, T: HostFloat>(
    dims: [usize; D],
    x: &Host,
    norm: Norm<'_, T>,
    eps: f64,
) -> Option<Tensor<B, D>> {
    let dim = dims[D - 1];
    let (Norm::Rms { weight } | Norm::Layer { weight, .. }) = norm;
    let bias_len = match norm {
        Norm::Layer { bias, .. } => bias.len(),
        Norm::Rms { .. } => dim,
    };
    if dim == 0 || weight.len() != dim || bias_len != dim {
        return None;
    }
    let x = x.values::<T>()?;
    let job = RowNorm {
        x,
        norm,
        eps: eps as f32,
        dim,
    };
    Host::into_tensor::<B, D, T>(job.run(), dims)
}

/// The fast path is taken on flex (a regression that silently fell back to burn's ops would
/// pass every parity test, only slower) and agrees with burn's ops; other backends decline.
#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    type Flex = burn::backend::Flex;

    fn random<B: Backend, const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
    }

    #[test]
    fn linear_and_norms_run_fused_on_flex_and_agree_with_burn() {
        let x = random::<Flex, 3>([2, 5, 40]);
        // A PyTorch-layout [out, in] weight seen as burn's [in, out], as the loader does.
        let w = random::<Flex, 2>([24, 40]).transpose();
        let b = random::<Flex, 1>([24]);
        let fused = linear(&x, &w, Some(&b), Some(Activation::Silu)).expect("fused on flex");
        let plain = Activation::Silu.forward(x.clone().matmul(w.unsqueeze()) + b.unsqueeze());
        fused
            .into_data()
            .assert_approx_eq::<f32>(&plain.into_data(), Tolerance::absolute(1e-5));

        let (weight, bias) = (random::<Flex, 1>([40]), random::<Flex, 1>([40]));
        let fused = rms_norm(&x, &weight, 1e-5).expect("fused on flex");
        let plain =
            x.clone() / (x.clone().square().mean_dim(2) + 1e-5).sqrt() * weight.clone().unsqueeze();
        fused
            .into_data()
            .assert_approx_eq::<f32>(&plain.into_data(), Tolerance::absolute(1e-5));
        assert!(layer_norm(&x, &weight, &bias, 1e-5).is_some());
    }

    #[test]
    fn attention_runs_fused_on_flex() {
        let q = random::<Flex, 3>([1, 9, 64]);
        let kv = random::<Flex, 3>([1, 9, 32]);
        let out = attention((&q, &kv, &kv), (4, 2, 16), None, || Some(Visibility::ALL));
        assert_eq!(out.expect("fused on flex").dims(), [1, 9, 64]);
        // A head width the kernel does not take falls back.
        assert!(attention((&q, &kv, &kv), (8, 4, 8), None, || Some(Visibility::ALL)).is_none());
    }

    #[test]
    fn other_backends_decline() {
        type NdArray = burn::backend::NdArray<f32>;
        let x = random::<NdArray, 2>([3, 8]);
        let w = random::<NdArray, 2>([4, 8]).transpose();
        assert!(linear(&x, &w, None, None).is_none());
    }
}
