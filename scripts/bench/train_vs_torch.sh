#!/usr/bin/env bash
# Training throughput of e5v-train against PyTorch + PEFT on this machine's CPU: the same
# checkpoint, data, batch, micro-batch, LoRA (r=64, alpha=16, dropout 0.05 on all seven
# projections) and loss (GradCache when the batch is larger than the micro-batch), both sides
# back to back in one run with the same thread count. Prints one row per scale: each side's
# training rows per second (steady state, after a warm-up step), the ratio of e5v's time per row
# to PyTorch's (below 1: e5v is faster) and each process's peak RSS. Not for CI.
#
#   PYTHON=/path/to/python scripts/bench/train_vs_torch.sh           # narrow (~10 min on 2 cores)
#   SCALES="narrow mid" BATCH=32 MICRO=8 STEPS=3 scripts/bench/train_vs_torch.sh
#
# Needs a Python with torch, transformers, peft and numpy (fixtures/train/README.md gives the
# versions). Checkpoints: target/bench-models/<scale> (scripts/bench/make_checkpoint.py, random
# weights with E5-V's structure). Environment: THREADS (default: all cores), BATCH (rows per
# optimizer step, default 32), MICRO (rows per forward pass, default 8), STEPS (timed steps,
# default 3), DTYPE (the base weights: f32 or bf16, default f32).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
SCALES=${SCALES:-narrow}
THREADS=${THREADS:-$(nproc)}
BATCH=${BATCH:-32}
MICRO=${MICRO:-8}
STEPS=${STEPS:-3}
DTYPE=${DTYPE:-f32}
out=$(mktemp -d /tmp/e5v-train-vs-torch.XXXXXX)
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

# NLI-like rows: sentences of 8 to 30 words (SimCSE's NLI data is mostly under 32 tokens).
"$PYTHON" - "$out/data.csv" <<'PY'
import csv, random, sys
random.seed(0)
words = ("a man woman child dog group people street park water ball car house city playing "
         "running sitting standing walking looking holding wearing near with on in at the "
         "red blue young old small large two three outside inside together while").split()
with open(sys.argv[1], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["sent0", "sent1", "hard_neg"])
    for _ in range(512):
        w.writerow([" ".join(random.choices(words, k=random.randint(8, 30))) + "." for _ in range(3)])
PY

cargo build --release -p e5v-train 2>/dev/null
{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
    echo "threads: $THREADS (both sides); batch $BATCH rows in micro-batches of $MICRO; base $DTYPE; LoRA r=64 on 7 projections"
} | tee "$out/header.txt"

peak_mb() { awk '/Maximum resident set size/ {printf "%.0f", $6 / 1024}' "$1"; }

printf "%-8s %14s %14s %8s %12s %12s\n" scale "e5v rows/s" "torch rows/s" ratio "e5v RSS MB" "torch RSS MB"
for scale in $SCALES; do
    model=target/bench-models/$scale
    if [ ! -f "$model/config.json" ]; then
        "$PYTHON" scripts/bench/make_checkpoint.py --scale "$scale" --out "$model" >&2
    fi
    run="$out/$scale"
    # One warm-up step, then STEPS timed ones; the rate is taken from the log over the timed steps.
    /usr/bin/time -v target/release/e5v-train --model "$model" --data "$out/data.csv" --output "$run" \
        --batch-size "$BATCH" --micro-batch-size "$MICRO" --max-steps $((STEPS + 1)) \
        --warmup-steps 0 --save-steps 0 --dtype "$DTYPE" 2>"$run.time" >/dev/null || { cat "$run.time"; exit 1; }
    ours=$("$PYTHON" -c 'import json,sys; s=[json.loads(l) for l in open(sys.argv[1])][1:]; print(sum(x["rows"] for x in s)/sum(x["seconds"] for x in s))' "$run/log.jsonl")
    /usr/bin/time -v "$PYTHON" scripts/bench/train_torch.py --model "$model" --data "$out/data.csv" \
        --micro-batch "$MICRO" --batch "$BATCH" --steps "$STEPS" --threads "$THREADS" --dtype "$DTYPE" \
        >"$run.torch.json" 2>"$run.torch.time" || { cat "$run.torch.time"; exit 1; }
    theirs=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pairs_per_s"])' "$run.torch.json")
    ratio=$("$PYTHON" -c "print(f'{$theirs / $ours:.2f}')")
    printf "%-8s %14.2f %14.2f %8s %12s %12s\n" "$scale" "$ours" "$theirs" "$ratio" \
        "$(peak_mb "$run.time")" "$(peak_mb "$run.torch.time")"
done
