//! Concrete backends, one per cargo feature, and embedder aliases for them.
//!
//! Library code is generic over [`burn::tensor::backend::Backend`]; these aliases only save
//! users from naming burn's types.

/// The ndarray CPU backend (f32).
#[cfg(feature = "ndarray")]
pub type NdArray = burn::backend::NdArray<f32>;
/// An [`Embedder`](crate::Embedder) on the ndarray CPU backend.
#[cfg(feature = "ndarray")]
pub type NdArrayEmbedder = crate::Embedder<NdArray>;

/// The flex CPU backend (f32, f16, bf16).
#[cfg(feature = "flex")]
pub type Flex = burn::backend::Flex;
/// An [`Embedder`](crate::Embedder) on the flex CPU backend.
#[cfg(feature = "flex")]
pub type FlexEmbedder = crate::Embedder<Flex>;

/// The wgpu GPU backend (Vulkan, Metal, DX12, WebGPU), without burn's operation fusion.
///
/// burn 0.21's fusion (`burn::backend::Wgpu`) computes the decoder wrong at some sequence
/// lengths (2360 tokens on Mesa's lavapipe: 0.9998 cosine to the reference, rows off by up to
/// 0.7), while every operation alone and the unfused backend are exact; the parity tests of
/// `tests/core` catch it.
#[cfg(feature = "wgpu")]
pub type Wgpu = burn_cubecl::CubeBackend<cubecl::wgpu::WgpuRuntime, f32, i32, u32>;
/// An [`Embedder`](crate::Embedder) on the wgpu backend.
#[cfg(feature = "wgpu")]
pub type WgpuEmbedder = crate::Embedder<Wgpu>;

/// The CUDA backend (kernels compiled with NVRTC at run time), without burn's operation
/// fusion, whose code generation it shares with wgpu (see the note on `Wgpu`).
#[cfg(feature = "cuda")]
pub type Cuda = burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>;
/// An [`Embedder`](crate::Embedder) on the CUDA backend.
#[cfg(feature = "cuda")]
pub type CudaEmbedder = crate::Embedder<Cuda>;
