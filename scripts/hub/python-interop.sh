#!/usr/bin/env bash
# The cache e5v writes is the cache Python's huggingface_hub writes, both ways: Python's own
# client downloads the tiny checkpoint from the local test Hub (127.0.0.1) and e5v loads it
# offline; e5v downloads it and Python finds it offline, with `scan_cache_dir` reporting no
# problem. Needs a Python with huggingface_hub (`pip install huggingface_hub`):
#   PYTHON=/path/to/python scripts/hub/python-interop.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${PYTHON:?set PYTHON to a Python interpreter with huggingface_hub installed}"
"$PYTHON" -c 'import huggingface_hub; print("huggingface_hub", huggingface_hub.__version__)'
E5V_PYTHON="$PYTHON" cargo test -p e5v-core --test core hub::python_interop -- --ignored
