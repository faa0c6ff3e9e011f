"""Compare two results folders of the workflow: same file set, same contents.

Used to show that a refactoring leaves the demo's outputs unchanged (docs/results.md)::

    python tools/compare_results.py OLD/results NEW/results

Logs, benchmarks and tensorboard event files (named by time and process) are left out; Parquet
tables are compared as tables (the columns that differ are named); everything else byte for
byte. Prints the files that differ and exits 1 when the file sets differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl

SKIPPED = ("logs", "benchmarks", "tensorboard", ".snakemake")


def files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")
            if p.is_file() and not set(SKIPPED) & set(p.relative_to(root).parts)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    args = ap.parse_args(argv)
    old, new = files(args.old), files(args.new)
    for rel in sorted(old ^ new):
        print(f"only in {args.old if rel in old else args.new}: {rel}")
    same = 0
    for rel in sorted(old & new):
        a, b = args.old / rel, args.new / rel
        if a.read_bytes() == b.read_bytes():
            same += 1
        elif a.suffix == ".parquet":
            x, y = pl.read_parquet(a), pl.read_parquet(b)
            if x.equals(y):
                same += 1
                continue
            cols = [c for c in x.columns if c not in y.columns or not x[c].equals(y[c])]
            print(f"differs: {rel} (columns: {', '.join(cols) or 'order/shape'})")
        else:
            print(f"differs: {rel}")
    print(f"{same} of {len(old & new)} common files identical")
    return 1 if old ^ new else 0


if __name__ == "__main__":
    sys.exit(main())
