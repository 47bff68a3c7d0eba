//! Integration tests of the Embedder against the transformers reference fixtures.

mod errors;
mod fixtures;
mod parity;
