#!/usr/bin/env bash
# Every crate of the workspace packs as crates.io would take it, holding only what its users
# need: each .crate must stay under a size limit (crates.io takes 10 MiB; the test fixtures
# alone are 17 MiB and must never ride along). `--verify` also builds each packed crate on its
# own (several minutes): run it before a release.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$((2 * 1024 * 1024))
verify=--no-verify
[ "${1:-}" = "--verify" ] && verify=
dir="${CARGO_TARGET_DIR:-target}/package"
rm -f "$dir"/*.crate
cargo package --workspace --locked $verify
status=0
for crate in "$dir"/*.crate; do
    size=$(stat -c %s "$crate")
    echo "$(basename "$crate"): $size bytes"
    if [ "$size" -gt "$limit" ]; then
        echo "  over $limit bytes; its largest files:"
        tar tzvf "$crate" | sort -k3 -n | tail -5
        status=1
    fi
done
exit $status
