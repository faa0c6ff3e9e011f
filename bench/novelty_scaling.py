"""Novelty cost: TM-align pairs per second with 1 and N worker processes (parallel
efficiency), and the share of alignments the exact length prefilter skips, on real chains
(``tests/data/eval``: samples = a few chains, references = the rest repeated ``--repeat``
times), all measured in one run.

Usage::

    python bench/novelty_scaling.py --workers 2 --repeat 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    from dplm2.evaluate import novelty
    from tests.evaluate.helpers import backbone

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=4)
    args = p.parse_args(argv)
    names = ["1hml_A", "1qgi_A", "1tim_A", "2nwd_X", "3kcs_A", "3lzm_A", "6oa8_A", "8tim_A",
             "d1asha_", "d1ecaa_", "d1hlba_", "d1mbaa_"]
    xyz = {n: backbone(n) for n in names}
    samples = [xyz[n] for n in names[:4]] * 2
    refs = [xyz[n] for n in names[4:]] * args.repeat
    table = pl.DataFrame({"sample_id": [f"s{i}" for i in range(len(samples))],
                          "task": ["cogen"] * len(samples),
                          "length": [len(s) for s in samples]})
    pairs = len(samples) * len(refs)
    runs = sum(novelty.max_tm_counted(s, refs)[2] for s in samples)
    out = {"samples": len(samples), "references": len(refs), "pairs": pairs,
           "prefilter_skipped_share": round(1 - runs / pairs, 3)}
    orig = novelty.max_tm_counted
    novelty.max_tm_counted = lambda s, r, prefilter=False: orig(s, r, prefilter=False)
    try:
        for w in (1, args.workers):
            t0 = time.perf_counter()
            novelty.novelty_table(table, samples, [str(i) for i in range(len(refs))], refs,
                                  workers=w)
            out[f"pairs_per_s_{w}"] = round(pairs / (time.perf_counter() - t0), 1)
    finally:
        novelty.max_tm_counted = orig
    out["parallel_efficiency"] = round(
        out[f"pairs_per_s_{args.workers}"] / (args.workers * out["pairs_per_s_1"]), 3)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
