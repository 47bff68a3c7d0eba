#!/usr/bin/env bash
# Copies WordSim353 and SimLex-999 (gensim's test-data copies) into a mini-set folder, for
# `e5v-eval mini`. They are not bundled: their distribution pages ask for a citation but state
# no licence. Needs pip (PyPI) and unzip.
#
#   e5v-eval/scripts/fetch-word-similarity.sh [DIR]   (default: e5v-eval/assets/mini)
#
# Cite Finkelstein et al. 2002 (WordSim353) and Hill, Reichart & Korhonen 2015 (SimLex-999)
# when you report numbers on them.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$here/assets/mini}"
version="4.4.0"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
pip download --quiet --no-deps --dest "$tmp" "gensim==$version" >&2
files=(wordsim353.tsv simlex999.txt)
if wheel="$(ls "$tmp"/gensim-*.whl 2>/dev/null | head -n 1)" && [ -n "$wheel" ]; then
    unzip -q -o -j "$wheel" "${files[@]/#/gensim/test/test_data/}" -d "$dest"
else
    tar -xzf "$tmp"/gensim-*.tar.gz -C "$tmp"
    for f in "${files[@]}"; do cp "$tmp"/gensim-*/gensim/test/test_data/"$f" "$dest/"; done
fi
echo "wrote $dest/wordsim353.tsv and $dest/simlex999.txt (from gensim $version)" >&2
