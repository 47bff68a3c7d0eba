//! One line of the embed example's JSONL input -> an input or an error message.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../examples/embed/jsonl.rs"]
mod jsonl;

fuzz_target!(|line: &str| {
    let _ = jsonl::parse_line(line, std::path::Path::new("."));
});
