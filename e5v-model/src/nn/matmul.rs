//! Matrix products; on the GPU backends, with one fixed kernel choice instead of burn's autotune.
//!
//! burn 0.21 autotunes every GPU matmul: it times candidate kernels and keeps the fastest. One
//! candidate family, cubek 0.2's double-buffered unit matmul (`matmul_double_unit_*`), returns
//! wrong products for some shapes, while every other candidate is exact on them. Measured on
//! Mesa's lavapipe: `[4, 296, 296] · [4, 296, 16]` has 14,201 of 18,944 outputs wrong (also at
//! 312), `[2, 37, k] · [2, k, 100]` about half of them for k = 1, 8, 24, 40, 56, 72. Which kernel
//! wins is decided by timing, so the same model gave exact vectors on one run and cosines of
//! 0.9998 to the reference on another (attention's `p · v` at some sequence lengths).
//!
//! So on burn's cubecl backends (wgpu, cuda) the model takes cubek's default matmul: a
//! tensor-core kernel where the device has one, the single-buffered unit kernel otherwise,
//! exact on every shape above (`scripts/matmul-kernels.sh` launches each kernel on these shapes).
//! Other backends keep burn's `matmul`, including a cubecl backend wrapped in burn's autodiff,
//! which is not recognised here; the CPU path (burn-flex) uses the fused kernels of `crate::cpu`
//! before it gets here.

use burn::tensor::{Tensor, backend::Backend};

/// `lhs · rhs` over the last two dimensions, batched over the others (as `Tensor::matmul`).
pub(crate) fn matmul<B: Backend, const D: usize>(
    lhs: Tensor<B, D>,
    rhs: Tensor<B, D>,
) -> Tensor<B, D> {
    #[cfg(feature = "wgpu")]
    let (lhs, rhs) = match cube::matmul::<B, D, cubecl::wgpu::WgpuRuntime>(lhs, rhs) {
        Ok(out) => return out,
        Err(operands) => operands,
    };
    #[cfg(feature = "cuda")]
    let (lhs, rhs) = match cube::matmul::<B, D, cubecl::cuda::CudaRuntime>(lhs, rhs) {
        Ok(out) => return out,
        Err(operands) => operands,
    };
    lhs.matmul(rhs)
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod cube {
    use std::any::TypeId;

    use burn::tensor::{Tensor, TensorPrimitive, backend::Backend};
    use burn_cubecl::{
        CubeRuntime,
        kernel::matmul::{MatmulStrategy, matmul as launch},
        tensor::CubeTensor,
    };

    use crate::downcast::downcast;

    /// The product through cubek's default kernel when `B`'s tensors are cubecl tensors of
    /// runtime `R`; otherwise the operands back, untouched.
    #[allow(clippy::type_complexity)]
    pub(super) fn matmul<B: Backend, const D: usize, R: CubeRuntime>(
        lhs: Tensor<B, D>,
        rhs: Tensor<B, D>,
    ) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, D>)> {
        if TypeId::of::<B::FloatTensorPrimitive>() != TypeId::of::<CubeTensor<R>>() {
            return Err((lhs, rhs));
        }
        let operands = (
            downcast::<_, CubeTensor<R>>(lhs.into_primitive().tensor()),
            downcast::<_, CubeTensor<R>>(rhs.into_primitive().tensor()),
        );
        let (Some(lhs), Some(rhs)) = operands else {
            unreachable!("the primitive type was checked above");
        };
        let dtype = lhs.dtype;
        // `Cube` is cubek's automatic choice, which falls back to its unit kernel (valid for
        // every shape) when the device has no tensor cores: it does not return an error.
        let out = launch(lhs, rhs, None, MatmulStrategy::Cube, dtype)
            .unwrap_or_else(|err| panic!("cubek's default matmul failed to launch: {err:?}"));
        let out = downcast::<_, B::FloatTensorPrimitive>(out)
            .unwrap_or_else(|| unreachable!("the primitive type was checked above"));
        Ok(Tensor::from_primitive(TensorPrimitive::Float(out)))
    }
}
