#!/usr/bin/env python3
"""Print criterion results (a CRITERION_HOME folder) as a table, with the time ratio of each
backend to a baseline backend within the same group. Standard library only.

    criterion_table.py CRITERION_HOME [--baseline ndarray] [--json OUT]

Groups are `<kind>/batch_<n>` with one function per backend (benches/embed.rs); other groups
(e.g. `preprocess`) are listed without ratios.
"""

import argparse
import json
import sys
from pathlib import Path


def load(home: Path):
    rows = []
    for bench in sorted(home.glob("*/*/new/benchmark.json")):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        rows.append(
            {
                "group": meta["group_id"],
                "function": meta.get("function_id") or meta.get("value_str") or "",
                "mean_s": est["mean"]["point_estimate"] / 1e9,
                "median_s": est["median"]["point_estimate"] / 1e9,
                "mean_lo_s": est["mean"]["confidence_interval"]["lower_bound"] / 1e9,
                "mean_hi_s": est["mean"]["confidence_interval"]["upper_bound"] / 1e9,
            }
        )
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("home", type=Path)
    parser.add_argument("--baseline", default="ndarray")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = load(args.home)
    if not rows:
        sys.exit(f"no criterion results under {args.home}")
    base = {r["group"]: r["median_s"] for r in rows if r["function"] == args.baseline}
    print(f"{'group':<18} {'backend':<10} {'median':>10} {'mean [95% CI]':>28} {'per input':>10} {'/' + args.baseline:>9}")
    for r in sorted(rows, key=lambda r: (r["group"].split("/")[0], _batch(r["group"]), r["function"])):
        n = _batch(r["group"]) or 1
        ratio = r["median_s"] / base[r["group"]] if r["group"] in base else None
        r["ratio_to_baseline"] = ratio
        print(
            f"{r['group']:<18} {r['function']:<10} {_t(r['median_s']):>10} "
            f"{_t(r['mean_s']):>9} [{_t(r['mean_lo_s'])}, {_t(r['mean_hi_s'])}] "
            f"{_t(r['median_s'] / n):>10} {'' if ratio is None else f'{ratio:.2f}x':>9}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


def _batch(group: str) -> int:
    tail = group.rsplit("/", 1)[-1]
    return int(tail[len("batch_"):]) if tail.startswith("batch_") else 0


def _t(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


if __name__ == "__main__":
    main()
