//! E5-V embeddings.
pub use e5v_core::*;
