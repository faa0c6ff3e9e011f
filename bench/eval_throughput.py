"""TM-align throughput: tmtools (in-process, what the evaluate stage uses) vs the TMalign binary.

Real chains are read from the downloaded structures (``resources/`` by default) and the test
fixtures, cropped to each requested length (first L residues of chains at least that long), and
paired. For every length the script times ``pairs`` TM-align runs through tmtools and, when the
Debian ``TMalign`` binary is on PATH, the same pairs through one subprocess per pair (how the
reference's scripts call it; includes process start and PDB parsing). It prints pairs/s, the
speed ratio and the largest TM-score difference between the two.

    .venv/bin/python bench/eval_throughput.py --lengths 100 200 300 --pairs 20
"""

from __future__ import annotations

import argparse
import glob
import itertools
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_GLOBS = (
    "resources/mirror/**/*.cif.gz", "resources/mirror/**/*.ent.gz", "resources/mirror/**/*.pdb.gz",
    "resources/scop_globins/*.pdb.gz", "tests/data/eval/*.pdb.gz",
)


def load_chains(patterns: list[str], max_files: int) -> list:
    from dplm2.structure import StructureError, read_chains

    files = sorted({f for p in patterns for f in glob.glob(str(REPO / p), recursive=True)})[:max_files]
    chains = []
    for f in files:
        try:
            chains += [c for c in read_chains(f) if c.complete_backbone().all()]
        except (StructureError, ValueError) as exc:
            print(f"skip {f}: {exc}", file=sys.stderr)
    return chains


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[100, 200, 300])
    ap.add_argument("--pairs", type=int, default=20, help="pairs timed per length")
    ap.add_argument("--glob", nargs="+", default=list(DEFAULT_GLOBS), help="structure files (repo-relative)")
    ap.add_argument("--max-files", type=int, default=200)
    args = ap.parse_args(argv)

    from dplm2.structure import write_backbone
    from dplm2.structure.compare import tm_align

    chains = load_chains(args.glob, args.max_files)
    binary = shutil.which("TMalign")
    print(f"{len(chains)} complete chains; TMalign binary: {binary or 'not installed'}")
    print(f"{'L':>5} {'pairs':>5} {'tmtools/s':>10} {'TMalign/s':>10} {'ratio':>7} {'max|dTM|':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for length in args.lengths:
            pool = [c for c in chains if len(c) >= length]
            # distinct proteins: keep one chain per sequence prefix
            seen, uniq = set(), []
            for c in pool:
                if c.sequence[:length] not in seen:
                    seen.add(c.sequence[:length])
                    uniq.append(c)
            pairs = list(itertools.islice(itertools.combinations(range(len(uniq)), 2), args.pairs))
            if not pairs:
                print(f"{length:>5} {'-':>5}  (fewer than two distinct chains this long)")
                continue
            xyz = [np.asarray(c.coords[:length], dtype=np.float64) for c in uniq]
            seqs = [c.sequence[:length] for c in uniq]
            t0 = time.perf_counter()
            ours = [tm_align(xyz[i], xyz[j], seqs[i], seqs[j]).tm_norm_a for i, j in pairs]
            rate_tmtools = len(pairs) / (time.perf_counter() - t0)
            rate_bin, diff = float("nan"), float("nan")
            if binary:
                paths = {}
                for k in {k for p in pairs for k in p}:
                    paths[k] = write_backbone(Path(tmp) / f"L{length}_{k}.pdb", xyz[k], seqs[k])
                t0 = time.perf_counter()
                theirs = []
                for i, j in pairs:
                    out = subprocess.run([binary, str(paths[i]), str(paths[j])], capture_output=True,
                                         text=True, check=True).stdout
                    theirs.append(float(re.search(r"TM-score= ([0-9.]+) \(if normalized by length of Chain_1",
                                                  out).group(1)))
                rate_bin = len(pairs) / (time.perf_counter() - t0)
                diff = float(np.max(np.abs(np.array(ours) - np.array(theirs))))
            ratio = rate_tmtools / rate_bin if binary else float("nan")
            print(f"{length:>5} {len(pairs):>5} {rate_tmtools:>10.1f} {rate_bin:>10.1f} {ratio:>7.2f} {diff:>9.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
