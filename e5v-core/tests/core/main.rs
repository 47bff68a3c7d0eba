//! Integration tests of the Embedder against the transformers reference fixtures.

mod errors;
mod fixtures;
#[cfg(feature = "hub")]
mod hub;
#[cfg(feature = "hub")]
mod hub_server;
mod parity;
