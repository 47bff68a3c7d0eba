#!/usr/bin/env bash
# The long run of the concurrency test (e5v-core/tests/core/concurrency.rs): THREADS threads x
# CALLS rounds of mixed calls on one Embedder, every result bit-identical to the call alone, on
# flex and ndarray. CI runs the short flex one.
#   THREADS=8 CALLS=25 scripts/stress-concurrency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
E5V_STRESS_THREADS="${THREADS:-8}" E5V_STRESS_CALLS="${CALLS:-10}" \
    cargo test --release -p e5v-core --features flex --test core -- concurrency --include-ignored
