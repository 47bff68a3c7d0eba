//! Tensors whose values live in this process's memory, as slices for the kernels.
//!
//! A burn tensor is host memory when its backend's float primitive is burn-flex's
//! `FlexTensor` (checked by type, not by name: `Any`). Other backends (ndarray, the GPU
//! ones, autodiff wrappers) are not, and the model keeps burn's own operations for them.

use burn::tensor::{DType, Element, Tensor, backend::Backend};
#[cfg(feature = "flex")]
use {
    crate::downcast::downcast as cast,
    burn::{
        backend::flex::{FlexTensor, Layout},
        tensor::{TensorData, TensorPrimitive},
    },
};

use super::simd::Float;

/// A float type the kernels read from and write to host tensors.
pub(crate) trait HostFloat: Float + Element + bytemuck::Pod {}
impl<T: Float + Element + bytemuck::Pod> HostFloat for T {}

/// A tensor's values in host memory, row-major.
#[cfg(feature = "flex")]
pub(crate) struct Host(FlexTensor);

/// Without a host backend compiled in, no tensor is one.
#[cfg(not(feature = "flex"))]
pub(crate) enum Host {}

impl Host {
    /// The values of `tensor`, made contiguous if they are a strided view.
    pub fn of<B: Backend, const D: usize>(tensor: &Tensor<B, D>) -> Option<Self> {
        #[cfg(feature = "flex")]
        {
            let flex: FlexTensor = cast(tensor.clone().into_primitive().tensor())?;
            Some(Self(flex.to_contiguous()))
        }
        #[cfg(not(feature = "flex"))]
        {
            let _ = tensor;
            None
        }
    }

    /// A `[k, n]` matrix stored as the transpose of a row-major `[n, k]` one (a linear
    /// layer's weight as loaded from PyTorch): that `[n, k]` matrix, without copying.
    pub fn of_transposed<B: Backend>(matrix: &Tensor<B, 2>) -> Option<Self> {
        #[cfg(feature = "flex")]
        {
            let flex: FlexTensor = cast(matrix.clone().into_primitive().tensor())?;
            let layout = flex.layout();
            let [k, n] = [layout.shape()[0], layout.shape()[1]];
            if layout.strides() != [1, k as isize] {
                return None;
            }
            let rows = Layout::new([n, k].into(), vec![k as isize, 1], layout.start_offset());
            Some(Self(flex.with_layout(rows)))
        }
        #[cfg(not(feature = "flex"))]
        {
            let _ = matrix;
            None
        }
    }

    pub fn dtype(&self) -> DType {
        #[cfg(feature = "flex")]
        {
            self.0.dtype()
        }
        #[cfg(not(feature = "flex"))]
        match *self {}
    }

    pub fn shape(&self) -> Vec<usize> {
        #[cfg(feature = "flex")]
        {
            self.0.layout().shape().to_vec()
        }
        #[cfg(not(feature = "flex"))]
        match *self {}
    }

    /// The values as `T`, or `None` if they are another type.
    pub fn values<T: HostFloat>(&self) -> Option<&[T]> {
        #[cfg(feature = "flex")]
        {
            if self.0.dtype() != T::dtype() {
                return None;
            }
            let (start, end) = self.0.layout().contiguous_offsets()?;
            self.0.storage::<T>().get(start..end)
        }
        #[cfg(not(feature = "flex"))]
        match *self {}
    }

    /// A tensor of backend `B` holding `values` (`B`'s tensors are host tensors: this is
    /// only called after [`Host::of`] succeeded for `B`).
    pub fn into_tensor<B: Backend, const D: usize, T: HostFloat>(
        values: Vec<T>,
        shape: [usize; D],
    ) -> Option<Tensor<B, D>> {
        #[cfg(feature = "flex")]
        {
            let flex = FlexTensor::from_data(TensorData::new(values, shape));
            Some(Tensor::from_primitive(TensorPrimitive::Float(cast(flex)?)))
        }
        #[cfg(not(feature = "flex"))]
        {
            let _ = (values, shape);
            None
        }
    }
}
