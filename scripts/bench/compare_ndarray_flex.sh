#!/usr/bin/env bash
# flex vs ndarray (and optionally flex f16) on the same machine in the same run: runs the
# texts/images groups of benches/embed.rs on a random E5-V-shaped checkpoint and prints each
# backend's median time per batch with its ratio to ndarray (< 1: faster than ndarray).
#
#   scripts/bench/compare_ndarray_flex.sh                     # `small` checkpoint, batches 1,4,8
#   SCALE=mid E5V_BENCH_BATCHES=1 scripts/bench/compare_ndarray_flex.sh
#   E5V_BENCH_BACKENDS=ndarray,flex,flex-f16 scripts/bench/compare_ndarray_flex.sh
#   scripts/bench/compare_ndarray_flex.sh texts               # extra args go to criterion
#
# Needs numpy for the checkpoint generator (PYTHON=/path/to/python if python3 lacks it).
# Within a group the backends run back to back, so compare ratios, not absolute times, on a
# shared machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
SCALE=${SCALE:-small}
export E5V_BENCH_MODEL=${E5V_BENCH_MODEL:-target/bench-models/$SCALE}
export E5V_BENCH_BACKENDS=${E5V_BENCH_BACKENDS:-ndarray,flex}
export E5V_BENCH_BATCHES=${E5V_BENCH_BATCHES:-1,4,8}
if [ ! -f "$E5V_BENCH_MODEL/config.json" ]; then
    "$PYTHON" scripts/bench/make_checkpoint.py --scale "$SCALE" --out "$E5V_BENCH_MODEL"
fi
CRITERION_HOME=$(mktemp -d /tmp/e5v-criterion.XXXXXX)
export CRITERION_HOME
filter=${1:-'^(texts|images)/'}
shift || true
echo "== $(uname -m), $(nproc) cores, model $E5V_BENCH_MODEL, backends $E5V_BENCH_BACKENDS, batches $E5V_BENCH_BATCHES"
cargo bench --bench embed -- "$filter" "$@"
echo
python3 scripts/bench/criterion_table.py "$CRITERION_HOME" --baseline ndarray --json "$CRITERION_HOME/summary.json"
echo "(criterion data: $CRITERION_HOME)"
