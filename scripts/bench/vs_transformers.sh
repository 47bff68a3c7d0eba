#!/usr/bin/env bash
# e5v against the transformers reference on this machine's CPU: every case of the table in
# docs/PERFORMANCE.md, both sides back to back in one run, same inputs, same thread count.
# Prints the CPU, then one row per case: each side's median time, the ratio e5v/transformers
# (below 1: e5v is faster) and each process's peak RSS. Not for CI.
#
#   scripts/bench/vs_transformers.sh                 # narrow + mid shapes (~15 min on 2 cores)
#   SCALES="narrow mid full" scripts/bench/vs_transformers.sh
#                                                    # + E5-V's full shape: generates a ~14.6 GB
#                                                    # checkpoint (once) and needs ~24 GB RAM
#                                                    # for transformers (~1 h on 2 cores)
#
# Needs a Python with torch, transformers, Pillow and numpy (PYTHON=/path/to/python; see
# docs/PERFORMANCE.md). Checkpoints go to target/bench-models/<scale> (scripts/bench/
# make_checkpoint.py: random weights, E5-V's structure). Environment: THREADS (default: all
# cores), REPEATS (timed runs per case after a warm-up; default 3, 1 at the full shape),
# BACKEND (e5v backend, default flex).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
SCALES=${SCALES:-"narrow mid"}
THREADS=${THREADS:-$(nproc)}
BACKEND=${BACKEND:-flex}
out=$(mktemp -d /tmp/e5v-vs-tf.XXXXXX)

# scale -> "e5v dtype:transformers dtype:cases"
declare -A PLAN=(
    [narrow]="f32:f32:texts:1,texts:16,images:1"
    [mid]="f32:f32:texts:1,texts:8,images:1"
    [full]="f16:bf16:texts:1,texts:8,images:1"
)

export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
cargo bench --bench throughput --no-run 2>/dev/null
{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
    echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|f16c|avx512f|avx512_bf16|avx512_fp16|amx_bf16|amx_tile)$' | tr '\n' ' ')"
    echo "threads: $THREADS (both sides)"
} | tee "$out/header.txt"

for scale in $SCALES; do
    model=target/bench-models/$scale
    if [ ! -f "$model/config.json" ]; then
        echo "== generating $model"
        "$PYTHON" scripts/bench/make_checkpoint.py --scale "$scale" --out "$model"
    fi
    IFS=: read -r ours theirs cases <<<"${PLAN[$scale]}"
    repeats=${REPEATS:-$([ "$scale" = full ] && echo 1 || echo 3)}
    echo "== $scale: transformers $theirs"
    "$PYTHON" scripts/bench/vs_transformers.py --model "$model" --dtype "$theirs" \
        --cases "$cases" --threads "$THREADS" --repeats "$repeats" 2>/dev/null \
        | sed "s/^{/{\"scale\": \"$scale\", /" | tee -a "$out/rows.jsonl" || echo "   (transformers failed)"
    echo "== $scale: e5v $BACKEND $ours"
    cargo bench --bench throughput -- --model "$model" --backend "$BACKEND" --dtype "$ours" \
        --cases "$cases" --repeats "$repeats" 2>/dev/null \
        | sed "s/^{/{\"scale\":\"$scale\",/" | tee -a "$out/rows.jsonl" || echo "   (e5v failed)"
done

"$PYTHON" scripts/bench/table.py "$out"
