//! Concrete backends, one per cargo feature, and embedder aliases for them.
//!
//! Library code is generic over [`burn::tensor::backend::Backend`]; these aliases only save
//! users from naming burn's types.

/// The ndarray CPU backend (f32).
#[cfg(feature = "ndarray")]
#[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
pub type NdArray = burn::backend::NdArray<f32>;
/// An [`Embedder`](crate::Embedder) on the ndarray CPU backend.
#[cfg(feature = "ndarray")]
#[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
pub type NdArrayEmbedder = crate::Embedder<NdArray>;

/// The flex CPU backend (f32, f16, bf16).
#[cfg(feature = "flex")]
#[cfg_attr(docsrs, doc(cfg(feature = "flex")))]
pub type Flex = burn::backend::Flex;
/// An [`Embedder`](crate::Embedder) on the flex CPU backend.
#[cfg(feature = "flex")]
#[cfg_attr(docsrs, doc(cfg(feature = "flex")))]
pub type FlexEmbedder = crate::Embedder<Flex>;

/// The wgpu GPU backend (Vulkan, Metal, DX12, WebGPU), without burn's operation fusion.
///
/// The model's matrix products skip burn's autotune here and take cubek's default kernel: one
/// of the autotune's candidates returns wrong products for some shapes, and which candidate
/// wins is decided by timing (`e5v-model/src/nn/matmul.rs` lists the shapes). Fusion
/// (`burn::backend::Wgpu`) stays off: it autotunes its fused matmuls among the same candidates,
/// and with it burn 0.21 computed the decoder wrong at 2360 tokens on Mesa's lavapipe (cosine
/// 0.9998 to the reference). The parity tests of `tests/core` catch both.
#[cfg(feature = "wgpu")]
#[cfg_attr(docsrs, doc(cfg(feature = "wgpu")))]
pub type Wgpu = burn_cubecl::CubeBackend<cubecl::wgpu::WgpuRuntime, f32, i32, u32>;
/// An [`Embedder`](crate::Embedder) on the wgpu backend.
#[cfg(feature = "wgpu")]
#[cfg_attr(docsrs, doc(cfg(feature = "wgpu")))]
pub type WgpuEmbedder = crate::Embedder<Wgpu>;

/// The CUDA backend (kernels compiled with NVRTC at run time), without burn's operation
/// fusion and with the same matmul kernel choice as wgpu (see the note on `Wgpu`).
#[cfg(feature = "cuda")]
#[cfg_attr(docsrs, doc(cfg(feature = "cuda")))]
pub type Cuda = burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>;
/// An [`Embedder`](crate::Embedder) on the CUDA backend.
#[cfg(feature = "cuda")]
#[cfg_attr(docsrs, doc(cfg(feature = "cuda")))]
pub type CudaEmbedder = crate::Embedder<Cuda>;

/// The name of a backend, for command lines and reports: `flex`, `ndarray`, `wgpu`, `cuda`.
/// Every name parses; [`BackendName::is_compiled`] tells whether this build has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendName {
    /// `Flex`: the CPU, with e5v's fused kernels.
    Flex,
    /// `NdArray`: the CPU, burn's generic operations.
    NdArray,
    /// `Wgpu`: a GPU through Vulkan, Metal, DX12 or WebGPU.
    Wgpu,
    /// `Cuda`: an NVIDIA GPU.
    Cuda,
}

impl BackendName {
    /// Every backend, in order of preference on a machine without a GPU.
    pub const ALL: [Self; 4] = [Self::Flex, Self::NdArray, Self::Wgpu, Self::Cuda];
    const NAMES: &[&str] = &["flex", "ndarray", "wgpu", "cuda"];

    /// The name, which is also the cargo feature that compiles the backend in.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::NdArray => "ndarray",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }

    /// Whether this build has the backend (its cargo feature is on).
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Flex => cfg!(feature = "flex"),
            Self::NdArray => cfg!(feature = "ndarray"),
            Self::Wgpu => cfg!(feature = "wgpu"),
            Self::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The first compiled backend of [`BackendName::ALL`], if any.
    pub fn default_compiled() -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.is_compiled())
    }

    /// The error for a backend this build does not have.
    pub fn not_compiled(self) -> crate::Error {
        crate::Error::InvalidArgument(format!(
            "the {self} backend is not compiled in (build with `--features {self}`)"
        ))
    }
}

impl std::fmt::Display for BackendName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackendName {
    type Err = e5v_model::UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        e5v_model::UnknownName::parse("backend", s, &Self::ALL, Self::name, Self::NAMES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Precision;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_valid_ones() {
        for backend in BackendName::ALL {
            assert_eq!(backend.to_string().parse(), Ok(backend));
        }
        for precision in Precision::ALL {
            assert_eq!(precision.to_string().parse(), Ok(precision));
        }
        let err = "tpu".parse::<BackendName>().expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown backend \"tpu\" (expected flex, ndarray, wgpu, cuda)"
        );
        assert!("F16".parse::<Precision>().is_err(), "names are exact");
        assert_eq!(
            BackendName::default_compiled().map(|b| b.is_compiled()),
            Some(true)
        );
    }
}
