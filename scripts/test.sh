#!/usr/bin/env bash
# The project's test command: every test of the workspace, on both CPU backends
# (ndarray and flex), with the real Llama-3 tokenizer fetched for the tokenizer test.
set -euo pipefail
cd "$(dirname "$0")/.."
E5V_LLAMA3_TOKENIZER=$(scripts/fetch-llama3-tokenizer.sh)
export E5V_LLAMA3_TOKENIZER
cargo test --workspace --features e5v-core/flex "$@"
