#!/usr/bin/env bash
# Peak resident memory while loading a checkpoint, against the loaded model's size.
# Requirement: peak RSS <= 1.25 x the bytes of the loaded parameters.
#
#   scripts/bench/load_memory.sh                  # the `mid` checkpoint (~1.4 GB fp16, made if absent)
#   scripts/bench/load_memory.sh DIR              # any checkpoint folder
#   CASES="f32:ndarray f16:flex" scripts/bench/load_memory.sh
#
# Each case is a fresh process (benches/load_memory.rs) run under GNU `/usr/bin/time -v`
# (installed with apt-get if missing). Prints one line per case and exits 1 if a case is over
# the limit. Needs numpy to generate the checkpoint (PYTHON=/path/to/python if python3 lacks it).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
MODEL=${1:-target/bench-models/mid}
CASES=${CASES:-"f32:ndarray f32:flex f16:flex"}
LIMIT=${LIMIT:-1.25}

if [ ! -f "$MODEL/config.json" ]; then
    "$PYTHON" scripts/bench/make_checkpoint.py --scale mid --out "$MODEL"
fi
if [ ! -x /usr/bin/time ]; then
    echo "installing GNU time (apt-get install -y time)"
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq time; else sudo apt-get update -qq && sudo apt-get install -y -qq time; fi
fi

bin=$(cargo bench --bench load_memory --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "load_memory" and m.get("executable"):
        print(m["executable"])
')
[ -x "$bin" ] || { echo "could not build benches/load_memory.rs"; exit 2; }

echo "== $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), checkpoint $MODEL ($(du -sh --apparent-size "$MODEL" | cut -f1) on disk)"
fail=0
for case in $CASES; do
    dtype=${case%%:*}
    backend=${case##*:}
    log=$(mktemp)
    if ! out=$(/usr/bin/time -v "$bin" "$MODEL" "$dtype" "$backend" 2>"$log"); then
        echo "$dtype on $backend: failed: $(grep -v -e '^\s' "$log" | head -3)"
        rm -f "$log"
        continue
    fi
    maxrss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")
    rm -f "$log"
    params=$(sed -n 's/.*param_bytes=\([0-9]*\).*/\1/p' <<<"$out")
    load_s=$(sed -n 's/.*load_s=\([0-9.]*\).*/\1/p' <<<"$out")
    after=$(sed -n 's/.*rss_after_kib=\([0-9]*\).*/\1/p' <<<"$out")
    before=$(sed -n 's/.*rss_before_kib=\([0-9]*\).*/\1/p' <<<"$out")
    python3 - "$dtype" "$backend" "$params" "$maxrss" "$after" "$before" "$load_s" "$wall" "$LIMIT" <<'PY' || fail=1
import sys
dtype, backend, params, peak, after, before, load_s, wall, limit = sys.argv[1:]
params, peak, after, before, limit = int(params), int(peak) * 1024, int(after) * 1024, int(before) * 1024, float(limit)
ratio = peak / params
ok = ratio <= limit
print(
    f"{dtype} on {backend:<7}: params {params / 2**30:.2f} GiB, peak RSS {peak / 2**30:.2f} GiB "
    f"(x{ratio:.3f}; x{(peak - before) / params:.3f} over the {before / 2**20:.0f} MiB before loading), "
    f"RSS after load {after / 2**30:.2f} GiB (x{after / params:.3f}), load {load_s} s, process {wall} "
    f"-> {'ok' if ok else 'OVER'} (limit x{limit})"
)
sys.exit(0 if ok else 1)
PY
done
exit $fail
