#![doc = include_str!("../README.md")]

pub use e5v_core::*;
