//! Building blocks shared by both towers.

mod activation;
mod attention;
mod elementwise;
mod init;
mod linear;
mod matmul;
mod norm;
mod rope;

pub use activation::Activation;
pub use attention::AttentionBudget;
pub(crate) use attention::{AttentionMask, MultiHeadAttention};
pub(crate) use elementwise::{add, mul};
pub(crate) use init::{ParamSource, RandomInit, check_dtype, normal};
pub(crate) use linear::{adapted, adapted_act, linear, linear_act};
pub(crate) use matmul::matmul;
pub(crate) use norm::{LayerNorm, RmsNorm};
pub(crate) use rope::{RopeTables, RotaryEmbedding};
