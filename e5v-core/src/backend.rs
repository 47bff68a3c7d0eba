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

/// The wgpu GPU backend (Vulkan, Metal, DX12, WebGPU).
#[cfg(feature = "wgpu")]
pub type Wgpu = burn::backend::Wgpu;
/// An [`Embedder`](crate::Embedder) on the wgpu backend.
#[cfg(feature = "wgpu")]
pub type WgpuEmbedder = crate::Embedder<Wgpu>;

/// The CUDA backend (kernels compiled with NVRTC at run time).
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;
/// An [`Embedder`](crate::Embedder) on the CUDA backend.
#[cfg(feature = "cuda")]
pub type CudaEmbedder = crate::Embedder<Cuda>;
