#!/usr/bin/env bash
# Our CPU backends against the transformers reference, same machine, same run, same inputs:
# one batch of N texts and one batch of N images (the fixture photo, 3 crops), f32, 2 threads,
# on the `small` random checkpoint. Prints each side's median and the ratio ours/transformers
# (< 1: faster than transformers). Not for CI: needs a Python with torch, transformers and
# Pillow (PYTHON, default /work/py/V/bin/python).
#
#   scripts/bench/vs_transformers.sh            # N = 8
#   N=1 scripts/bench/vs_transformers.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/work/py/V/bin/python}
N=${N:-8}
THREADS=${THREADS:-2}
SCALE=${SCALE:-small}
REPEATS=${REPEATS:-5}
export E5V_BENCH_MODEL=${E5V_BENCH_MODEL:-target/bench-models/$SCALE}
export E5V_BENCH_BACKENDS=${E5V_BENCH_BACKENDS:-ndarray,flex}
export E5V_BENCH_BATCHES=$N
if [ ! -f "$E5V_BENCH_MODEL/config.json" ]; then
    "$PYTHON" scripts/bench/make_checkpoint.py --scale "$SCALE" --out "$E5V_BENCH_MODEL"
fi
out=$(mktemp -d /tmp/e5v-vs-tf.XXXXXX)
export CRITERION_HOME=$out/criterion
# Both sides get the same threads (torch.set_num_threads; rayon's pool for burn's CPU backends).
export RAYON_NUM_THREADS=$THREADS
echo "== $(nproc) cores, model $E5V_BENCH_MODEL, N=$N, threads=$THREADS"
cargo bench --bench embed --no-run 2>/dev/null
OMP_NUM_THREADS=$THREADS "$PYTHON" scripts/bench/vs_transformers.py --model "$E5V_BENCH_MODEL" --batch "$N" \
    --threads "$THREADS" --repeats "$REPEATS" --json "$out/transformers.json"
cargo bench --bench embed -- "^(texts|images)/batch_$N/" 2>&1 | grep -E '^(texts|images)/|time:' || true
python3 scripts/bench/criterion_table.py "$CRITERION_HOME" --json "$out/rust.json" >/dev/null
python3 - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
tf = {r["kind"]: r for r in json.loads((out / "transformers.json").read_text())}
rust = json.loads((out / "rust.json").read_text())
print(f"\n{'kind':<7} {'N':>2} {'side':<13} {'median':>9} {'per input':>10} {'/transformers':>14}")
for kind in ("texts", "images"):
    if kind not in tf:
        continue
    ref = tf[kind]
    n = ref["batch"]
    print(f"{kind:<7} {n:>2} {'transformers':<13} {ref['median_s']:>8.3f}s {ref['median_s'] / n:>9.3f}s {'1.00x':>14}")
    for r in sorted((r for r in rust if r["group"] == f"{kind}/batch_{n}"), key=lambda r: r["function"]):
        print(f"{kind:<7} {n:>2} {r['function']:<13} {r['median_s']:>8.3f}s {r['median_s'] / n:>9.3f}s {r['median_s'] / ref['median_s']:>13.2f}x")
print(f"(data: {out})")
PY
