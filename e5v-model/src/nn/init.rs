//! Where a module's parameters come from: a checkpoint ([`WeightLoader`]) or random draws
//! ([`RandomInit`]). Each module has one constructor generic over the source, so a module
//! built by `init` has exactly the parameters (names, shapes, memory layout) of a loaded one.

use std::convert::Infallible;

use burn::{
    module::{Initializer, Param},
    nn::Linear,
    tensor::{DType, Tensor, backend::Backend},
};

use crate::{ModelError, Result, weights::WeightLoader};

/// The parameters of a module under construction, by checkpoint key.
pub(crate) trait ParamSource<B: Backend> {
    /// Why a parameter could not be had (never, for random weights).
    type Error;

    /// The tensor `key` of `shape`: the checkpoint's, or drawn from `init`.
    fn tensor<const D: usize>(
        &mut self,
        key: &str,
        shape: [usize; D],
        init: &Initializer,
    ) -> Result<Tensor<B, D>, Self::Error>;

    /// [`Self::tensor`] as a parameter.
    fn param<const D: usize>(
        &mut self,
        key: &str,
        shape: [usize; D],
        init: &Initializer,
    ) -> Result<Param<Tensor<B, D>>, Self::Error> {
        self.tensor(key, shape, init).map(Param::from_tensor)
    }

    /// A PyTorch `nn.Linear` at `prefix` as a burn `Linear` (weight `[input, output]`, the
    /// transposed view of PyTorch's row-major `[output, input]`, which the fused CPU kernel
    /// reads in place). Random weights are normal with `std`, biases zero.
    fn linear(
        &mut self,
        prefix: &str,
        input: usize,
        output: usize,
        bias: bool,
        std: f64,
    ) -> Result<Linear<B>, Self::Error> {
        let weight = self.tensor(&format!("{prefix}.weight"), [output, input], &normal(std))?;
        let bias = match bias {
            true => Some(self.param(&format!("{prefix}.bias"), [output], &Initializer::Zeros)?),
            false => None,
        };
        Ok(Linear {
            weight: Param::from_tensor(weight.transpose()),
            bias,
        })
    }

    /// Rows of the tensor `key`: the checkpoint's (a table may disagree with its config), or
    /// `configured` for random weights.
    fn rows(&self, key: &str, configured: usize) -> Result<usize, Self::Error>;
}

/// Normal weights with mean 0, as HF's `_init_weights` draws them.
pub(crate) fn normal(std: f64) -> Initializer {
    Initializer::Normal { mean: 0.0, std }
}

impl<B: Backend> ParamSource<B> for WeightLoader<'_, B> {
    type Error = ModelError;

    fn tensor<const D: usize>(
        &mut self,
        key: &str,
        shape: [usize; D],
        _init: &Initializer,
    ) -> Result<Tensor<B, D>> {
        WeightLoader::tensor(self, key, shape)
    }

    fn rows(&self, key: &str, _configured: usize) -> Result<usize> {
        Ok(self.shape(key)?.first().copied().unwrap_or(0))
    }
}

/// Random weights on a device, drawn eagerly (burn's lazy `Param` initialisation would not
/// give the transposed layout of a loaded linear).
pub(crate) struct RandomInit<B: Backend> {
    device: B::Device,
    /// `None`: the backend's default float type.
    dtype: Option<DType>,
}

impl<B: Backend> RandomInit<B> {
    /// Weights in the backend's default float type.
    pub fn new(device: &B::Device) -> Self {
        Self {
            device: device.clone(),
            dtype: None,
        }
    }

    /// Weights in `dtype`, if the backend supports it on `device`.
    pub fn with_dtype(device: &B::Device, dtype: DType) -> Result<Self> {
        check_dtype::<B>(device, dtype)?;
        Ok(Self {
            device: device.clone(),
            dtype: Some(dtype),
        })
    }
}

impl<B: Backend> ParamSource<B> for RandomInit<B> {
    type Error = Infallible;

    fn tensor<const D: usize>(
        &mut self,
        _key: &str,
        shape: [usize; D],
        init: &Initializer,
    ) -> Result<Tensor<B, D>, Infallible> {
        let tensor = init.init::<B, D, _>(shape, &self.device).into_value();
        Ok(match self.dtype {
            Some(dtype) if dtype != tensor.dtype() => tensor.cast(dtype),
            _ => tensor,
        })
    }

    fn rows(&self, _key: &str, configured: usize) -> Result<usize, Infallible> {
        Ok(configured)
    }
}

/// Fails unless the backend supports `dtype` on `device`.
pub(crate) fn check_dtype<B: Backend>(device: &B::Device, dtype: DType) -> Result<()> {
    match B::supports_dtype(device, dtype) {
        true => Ok(()),
        false => Err(ModelError::Unsupported {
            field: "dtype",
            found: format!("{dtype:?} on {}", B::name(device)),
            supported: "the dtypes of the backend (ndarray: F32; flex, wgpu, cuda: F32, F16, BF16)",
        }),
    }
}
