#!/usr/bin/env bash
# The official `openai` Python client (PyPI) against e5v-server on the tiny fixture model:
# installs the client into target/openai-venv (once), starts the server, runs
# scripts/server/openai_check.py, stops the server. Not for CI (it needs PyPI).
set -euo pipefail
cd "$(dirname "$0")/../.."
release=${CARGO_TARGET_DIR:-target}/release
. scripts/server/start.sh
PORT=${PORT:-18081}
venv=target/openai-venv
[ -x $venv/bin/python ] || { python3 -m venv $venv && $venv/bin/pip install -q openai; }
cargo build --release -p e5v-server --bin e5v-server
start_server target/e5v-server-openai.log --model fixtures/tiny-e5v
$venv/bin/python -c 'import openai; print("openai", openai.__version__)'
$venv/bin/python scripts/server/openai_check.py "http://127.0.0.1:$PORT"
