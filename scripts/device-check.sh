#!/usr/bin/env bash
# The GPU check: parity of the cuda and wgpu backends against the transformers fixtures, and
# throughput against transformers (torch CUDA f16, sdpa attention) on the same GPU, as a table
# of ratios for docs/PERFORMANCE.md. Two halves, because the GPU host has no Rust toolchain
# and no network:
#
#   scripts/device-check.sh build   # on a build machine: test + bench binaries with the cuda
#                                   # and wgpu backends, stripped into target/device-bundle
#   scripts/device-check.sh run     # on the GPU host, from the repository root, with
#                                   # target/device-bundle copied along (about 10 minutes)
#
# `run` needs python3 with torch (CUDA), transformers, Pillow and numpy on the host. It
# generates the random-weight checkpoints it times (mid ~1.4 GB, full ~14.6 GB) under
# $E5V_DEVICE_MODELS (default target/bench-models). SCALES (default "mid full") and CASES
# (default texts:1,texts:8,images:1,images:4) narrow it down.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=target/device-bundle

build() {
    mkdir -p "$bundle"
    # The parity tests of e5v-core (tests/core) and the throughput bench, release, no debuginfo.
    export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true
    local tests bench kernels
    tests=$(cargo test --release -p e5v-core --features cuda,wgpu --test core --no-run \
        --message-format=json | jq -r 'select(.executable != null and .target.name == "core") | .executable')
    bench=$(cargo bench --bench throughput --features cuda,wgpu --no-run \
        --message-format=json | jq -r 'select(.executable != null and .target.name == "throughput") | .executable')
    # Each binary is ~45 MB stripped (both GPU backends), ~8 MB in xz: the bundle must travel
    # under 64 MiB.
    # The matmul kernels of burn's autotune against an f64 product (scripts/matmul-kernels.sh):
    # whether the kernel e5v avoids is wrong on a real GPU too, and the one it uses is exact.
    kernels=$(CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target} cargo build --release \
        --manifest-path scripts/matmul-kernels/Cargo.toml --features cuda,wgpu \
        --message-format=json | jq -r 'select(.executable != null) | .executable')
    xz -T0 -6 -c "$tests" >"$bundle/parity.xz"
    xz -T0 -6 -c "$bench" >"$bundle/throughput.xz"
    xz -T0 -6 -c "$kernels" >"$bundle/matmul-kernels.xz"
    du -sh "$bundle"/*
}

# Polls the GPU's used memory while "$@" runs; prints the peak in bytes on fd 3.
with_gpu_peak() {
    local log
    log=$(mktemp)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$log" 2>/dev/null &
    local poller=$!
    local status=0
    "$@" || status=$?
    kill "$poller" 2>/dev/null || true
    sort -n "$log" | tail -1 | awk '{print $1 * 1048576}' >&3
    rm -f "$log"
    return "$status"
}

run() {
    local python=${PYTHON:-python3} models=${E5V_DEVICE_MODELS:-target/bench-models}
    local out
    out=$(mktemp -d /tmp/e5v-device.XXXXXX)
    for packed in "$bundle"/*.xz; do
        xz -dc "$packed" >"${packed%.xz}" && chmod +x "${packed%.xz}"
    done
    export E5V_FIXTURES=$PWD/fixtures CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-balanced}
    {
        echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
        echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
        echo "cuda: $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo 'nvcc not found')"
        echo "torch: $("$python" -c 'import torch, transformers; print(torch.__version__, "cuda", torch.version.cuda, "/ transformers", transformers.__version__)' 2>&1 | tail -1)"
    } | tee "$out/header.txt"

    echo "== parity (fixtures: tiny checkpoints vs transformers f32)"
    for backend in cuda wgpu; do
        if timeout 240 "$bundle/parity" --test-threads 1 "$backend::" >"$out/parity-$backend.log" 2>&1; then
            echo "$backend: $(grep -o '[0-9]* passed' "$out/parity-$backend.log" | tail -1)"
        else
            echo "$backend: FAILED (exit $?), first errors:"
            grep -m 8 -E "panicked|Error|error|cannot|failed" "$out/parity-$backend.log" | sed 's/^/    /'
        fi
        grep -E "cosine" "$out/parity-$backend.log" | sed 's/^/    /' || true
    done | tee -a "$out/header.txt"

    echo "== matmul kernels against an f64 product (the last row is the kernel e5v uses)"
    for backend in cuda wgpu; do
        echo "$backend:"
        timeout 180 "$bundle/matmul-kernels" "$backend" >"$out/matmul-kernels-$backend.log" 2>&1 \
            || echo "    exit $? (non-zero: the kernel e5v uses was wrong, or the run failed)"
        sed -n '/^| kernel/,$p' "$out/matmul-kernels-$backend.log" | sed 's/^/    /'
    done | tee -a "$out/header.txt"

    local cases=${CASES:-texts:1,texts:8,images:1,images:4}
    for scale in ${SCALES:-mid full}; do
        local model=$models/$scale
        if [ ! -f "$model/config.json" ]; then
            echo "== generating $model"
            "$python" scripts/bench/make_checkpoint.py --scale "$scale" --out "$model"
        fi
        echo "== $scale: transformers cuda f16 sdpa"
        timeout 300 "$python" scripts/bench/vs_transformers.py --model "$model" --device cuda \
            --dtype f16 --cases "$cases" --repeats 3 2>"$out/tf-$scale.log" \
            | sed "s/^{/{\"scale\": \"$scale\", /" | tee -a "$out/rows.jsonl" \
            || echo "   (transformers failed: $(tail -1 "$out/tf-$scale.log"))"
        for case in ${cases//,/ }; do
            echo "== $scale: e5v cuda f16 $case"
            local peak row
            if row=$(with_gpu_peak timeout 300 "$bundle/throughput" --model "$model" --backend cuda \
                --dtype f16 --cases "$case" --repeats 3 2>"$out/e5v-$scale.log" 3>"$out/peak"); then
                peak=$(cat "$out/peak")
                echo "$row" | sed "s/^{/{\"scale\":\"$scale\",\"peak_gpu_bytes\":${peak:-null},/" \
                    | tee -a "$out/rows.jsonl"
            else
                echo "   (e5v failed: $(tail -1 "$out/e5v-$scale.log"))"
            fi
        done
    done
    "$python" scripts/bench/table.py "$out" | tee "$out/table.md"
    if [ -n "${OUT:-}" ]; then cp -r "$out" "$OUT/device-check"; fi
}

case "${1:-}" in
build) build ;;
run) run ;;
*)
    echo "usage: $0 build|run" >&2
    exit 2
    ;;
esac
