//! Integration tests of e5v-model against the transformers reference fixtures
//! (`fixtures/`, made by `fixtures/generate.py`).

mod fixtures;
mod init;
mod loader;
mod parity;
mod variants;
