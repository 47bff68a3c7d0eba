#!/usr/bin/env bash
# A bounded load test of e5v-server on this machine: starts the server (release) on MODEL,
# waits until /health says ready, runs CLIENTS clients on 127.0.0.1 for DURATION seconds, then embeds
# the same inputs through the library directly (the server idle) and prints the server's
# overhead ratio. Stops the server with SIGTERM (graceful). Not for CI.
#
#   scripts/server/load.sh                      # the tiny fixture model, mixed requests
#   MODEL=target/bench-models/narrow KIND=text INPUTS=8 CLIENTS=16 DURATION=30 scripts/server/load.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
release=${CARGO_TARGET_DIR:-target}/release
. scripts/server/start.sh
MODEL=${MODEL:-fixtures/tiny-e5v}
KIND=${KIND:-mixed}
INPUTS=${INPUTS:-4}
CLIENTS=${CLIENTS:-8}
DURATION=${DURATION:-20}
PORT=${PORT:-18080}
BACKEND=${BACKEND:-flex}

cargo build --release -p e5v-server --bin e5v-server --example load
start_server target/e5v-server-load.log --model "$MODEL" --backend "$BACKEND" --queue 1024
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; model: $MODEL; backend: $BACKEND"
$release/examples/load --url "http://127.0.0.1:$PORT" --clients "$CLIENTS" \
    --seconds "$DURATION" --kind "$KIND" --inputs "$INPUTS" --model "$MODEL"
kill -TERM $server
wait $server
trap - EXIT
