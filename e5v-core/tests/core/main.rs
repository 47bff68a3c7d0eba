//! Integration tests of the Embedder against the transformers reference fixtures.

mod alloc_peak;
mod concurrency;
mod errors;
mod fixtures;
// The Hub tests check symlinks, as Python writes them on Unix.
#[cfg(all(feature = "hub", unix))]
mod hub;
#[cfg(all(feature = "hub", unix))]
mod hub_server;
mod parity;
mod properties;
mod stream;
