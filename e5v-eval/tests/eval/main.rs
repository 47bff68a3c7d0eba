//! The integration tests of e5v-eval, in one test binary:
//!
//! - [`datasets`]: loaders against the hand-written fixtures of `tests/data/`;
//! - [`end_to_end`]: every runner subcommand on the tiny random checkpoint;
//! - [`mini_assets`]: the bundled mini set and font are complete and licence-documented;
//! - [`fixtures`]: fixture paths and the generator of the fixture images.

mod datasets;
mod end_to_end;
mod fixtures;
mod mini_assets;
