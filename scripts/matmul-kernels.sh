#!/usr/bin/env bash
# The GPU matmul kernels that burn 0.21's autotune chooses between, each launched on shape
# sweeps against an f64 product (scripts/matmul-kernels/): the evidence for the kernel choice of
# e5v-model/src/nn/matmul.rs, recorded in docs/PERFORMANCE.md. Fails if cubek's default kernel,
# the one e5v uses, is wrong anywhere.
#
#   scripts/matmul-kernels.sh            # wgpu (on a machine without a GPU: Mesa's lavapipe)
#   scripts/matmul-kernels.sh cuda       # needs an NVIDIA GPU; builds with the cuda feature
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-wgpu}
# Shares the repository's build folder: burn is built once for both.
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target} cargo run \
    --manifest-path scripts/matmul-kernels/Cargo.toml --features "$backend" -- "$backend"
