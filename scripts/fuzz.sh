#!/usr/bin/env bash
# Coverage-guided fuzzing of e5v's parsers with libFuzzer (cargo fuzz; nightly toolchain).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Targets (fuzz/fuzz_targets/): image (bytes -> decode -> preprocess, every format), configs
# (config.json and processor configs), safetensors (checkpoint reader), prompt (template + text),
# jsonl (the embed example's input lines). Default: 60 s each, all targets. Corpora start from
# the fixtures and grow in target/fuzz-corpus/ (outside git); a crash is saved by libFuzzer in
# fuzz/artifacts/TARGET/ and fails the script. Turn each crash into a regression test next to the
# code it breaks (see docs/RELIABILITY.md). The first run builds burn with sanitizers: minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(image configs safetensors prompt jsonl)
fi

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked
fi

corpus_root=target/fuzz-corpus
seed() { # seed TARGET FILE...: copy seed files into the target's corpus
    local dir="$corpus_root/$1"
    shift
    mkdir -p "$dir"
    for file in "$@"; do
        [ -f "$file" ] && cp -n "$file" "$dir/$(basename "$(dirname "$file")")-$(basename "$file")"
    done
    return 0
}
seed image fixtures/pillow/inputs/*.{png,jpg,gif,bmp,tiff,webp} fixtures/pillow/inputs/real/*.jpg
seed configs fixtures/*/config.json fixtures/*/preprocessor_config.json \
    fixtures/*/processor_config.json fixtures/pillow/config/*.json
seed safetensors fixtures/*/model*.safetensors
mkdir -p "$corpus_root/jsonl"
if ls examples/data/*.jsonl >/dev/null 2>&1; then
    i=0
    while IFS= read -r line; do
        printf '%s' "$line" > "$corpus_root/jsonl/line-$i"
        i=$((i + 1))
    done < <(cat examples/data/*.jsonl)
fi
mkdir -p "$corpus_root/prompt"

status=0
for target in "${targets[@]}"; do
    echo "== fuzz $target for ${seconds}s"
    max_len=4096
    [ "$target" = image ] && max_len=262144
    [ "$target" = safetensors ] && max_len=2097152
    if ! cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$corpus_root/$target" -- \
        -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb=4096 -timeout=20 \
        -print_final_stats=1; then
        echo "!! $target: crash saved under fuzz/artifacts/$target/" >&2
        status=1
    fi
done
exit $status
