#!/usr/bin/env python3
"""Print the e5v-vs-transformers table of a benchmark run (vs_transformers.sh, device-check.sh).

    table.py OUT_DIR    # reads OUT_DIR/header.txt and OUT_DIR/rows.jsonl

Rows are the JSON lines of benches/throughput.rs (side "e5v") and vs_transformers.py (side
"transformers"), each tagged with its "scale". The ratio is e5v / transformers (below 1: e5v is
faster). Peak memory is the process's RSS on the CPU, or GPU memory where rows carry
"peak_gpu_bytes".
"""

import json
import sys
from pathlib import Path


def gib(value):
    return f"{value / 2**30:.1f}" if value is not None else "?"


def main():
    out = Path(sys.argv[1])
    rows = [json.loads(l) for l in (out / "rows.jsonl").read_text().splitlines() if l.startswith("{")]
    key = lambda r: (r["scale"], r["kind"], r["batch"])
    theirs = {key(r): r for r in rows if r["side"] == "transformers"}
    gpu = any(r.get("peak_gpu_bytes") is not None for r in rows)
    memory = "peak GPU memory" if gpu else "peak RSS"
    print()
    print((out / "header.txt").read_text().strip())
    print()
    print(f"| shape | case | e5v | transformers | e5v / transformers | {memory} e5v / transformers |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if r["side"] != "e5v":
            continue
        ref = theirs.get(key(r))
        case = f"{r['batch']} {r['kind'][:-1] if r['batch'] == 1 else r['kind']}"
        ours = f"{r['median_s']:.3f} s ({r['backend']} {r['dtype']})"
        if ref is None:
            print(f"| {r['scale']} | {case} | {ours} | (not run) | | |")
            continue
        if gpu:
            mem = f"{gib(r.get('peak_gpu_bytes'))} / {gib(ref.get('peak_gpu_bytes'))} GiB"
        else:
            mem = f"{gib(r['peak_rss_kib'] * 1024)} / {gib(ref['peak_rss_kib'] * 1024)} GiB"
        ratio = r["median_s"] / ref["median_s"]
        print(f"| {r['scale']} | {case} | {ours} | {ref['median_s']:.3f} s ({ref['dtype']}) | **{ratio:.2f}** | {mem} |")
    print(f"\n(raw rows: {out}/rows.jsonl)")


if __name__ == "__main__":
    main()
