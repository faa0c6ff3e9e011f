"""Start-up cost of a data-stage job: wall time and peak memory of one ``dplm2 process parse``
on one small structure file (the cost every one of thousands of shard jobs pays), measured on
this checkout and, with ``--before REF``, on git commit REF (temporary worktree) in the same run.

Usage::

    python bench/data_stage_startup.py --repeats 5 --before 390bcff
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STRUCTURE = REPO / "tests" / "data" / "structures" / "1aki.cif.gz"

JOB = """
import json, sys
import polars as pl
from dplm2.cli import main
tmp = sys.argv[1]
pl.DataFrame({{"id": ["1aki"], "url": ["x"], "path": [{structure!r}], "bytes": [0],
              "sha256": [None], "status": ["ok"], "error": [None]}},
             schema_overrides={{"sha256": pl.Utf8, "error": pl.Utf8}}).write_parquet(tmp + "/m.parquet")
rc = main(["process", "parse", "--pdb-manifest", tmp + "/m.parquet", "--shard", "0",
           "--shards", "1", "--output", tmp + "/parsed.parquet", "--params", "{{}}"])
print(json.dumps({{"rc": rc, "torch": "torch" in sys.modules}}))
"""


def one_job(src: Path) -> dict:
    """Wall time and peak RSS (MB) of one fresh interpreter running the parse command."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=str(src))
        code = JOB.format(structure=str(STRUCTURE))
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # the child execs python so its rusage is its own; its output is not ours
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.execve(sys.executable, [sys.executable, "-c", code, tmp], env)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
        if status != 0:
            raise RuntimeError(f"parse job failed (status {status}) with sources {src}")
    return {"wall_s": wall, "peak_mb": usage.ru_maxrss / 1024}


def measure(src: Path, repeats: int) -> dict:
    one_job(src)  # warm the file cache
    runs = [one_job(src) for _ in range(repeats)]
    return {"wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
            "peak_mb": round(statistics.median(r["peak_mb"] for r in runs), 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--before", metavar="REF", help="also measure git commit REF")
    args = p.parse_args(argv)
    result = {"after": measure(REPO / "src", args.repeats)}
    if args.before:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "tree"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree),
                            args.before], check=True, capture_output=True)
            try:
                result["before"] = {"ref": args.before, **measure(tree / "src", args.repeats)}
            finally:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                                str(tree)], check=False, capture_output=True)
        result["ratio_wall_before_over_after"] = round(
            result["before"]["wall_s"] / result["after"]["wall_s"], 2)
        result["ratio_peak_before_over_after"] = round(
            result["before"]["peak_mb"] / result["after"]["peak_mb"], 2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
