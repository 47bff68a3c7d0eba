//! Integration tests of e5v-model against the transformers reference fixtures
//! (`fixtures/`, made by `fixtures/generate.py`).

/// Runs each generic test on both CPU backends: `on_backends!(a_test, another)`.
macro_rules! on_backends {
    ($($name:ident),*) => {
        mod ndarray {
            $(#[test] fn $name() { super::$name::<burn::backend::NdArray<f32>>() })*
        }
        mod flex {
            $(#[test] fn $name() { super::$name::<burn::backend::Flex>() })*
        }
    };
}

mod fixtures;
mod init;
mod loader;
mod parity;
mod variants;
