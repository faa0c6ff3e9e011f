"""Gather time and peak memory vs the number of chains (synthetic parse shards).

The parse shards are real parsed chains (the bundled structures of ``tests/data``, parsed once
by ``dplm2 process parse``) repeated under new ids and new random sequences (so dedup keeps
them all), dealt round-robin into ``--parse-shards`` files. Each size is gathered by a fresh
``dplm2 process gather`` process (``--n-shards`` chain shards); wall time and the child's peak
resident memory (``ru_maxrss`` from ``os.wait4``) are reported, for this checkout and, with
``--before REV``, for the sources of git revision ``REV`` (``git archive`` into a temporary
folder, run with the same interpreter), so both are measured in one run.

Usage: ``python bench/gather_memory.py [--chains 10000 40000 160000] [--before 78d625e
[--before-max-chains 40000]] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
LETTERS = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
PARAMS = {"filters": {"monomers_only": False, "max_loop_fraction": 1.0, "min_length": 20}}


def template(tmp: Path) -> pa.Table:
    """Parsed rows of every bundled structure that parses (kept or not, as parsed)."""
    import polars as pl

    files = sorted(p for p in (DATA / "eval").glob("*.pdb.gz")) + sorted(
        p for p in (DATA / "structures").iterdir() if p.name.endswith((".cif.gz", ".pdb.gz")))
    rows = [{"id": f"t{i:04d}", "url": "", "path": str(p), "bytes": p.stat().st_size,
             "sha256": None, "status": "ok", "error": None} for i, p in enumerate(files)]
    pl.DataFrame(rows).write_parquet(tmp / "manifest.parquet")
    out = tmp / "template.parquet"
    subprocess.run([sys.executable, "-m", "dplm2.cli", "process", "parse", "--pdb-manifest",
                    str(tmp / "manifest.parquet"), "--shard", "0", "--shards", "1", "--output",
                    str(out), "--params", json.dumps({**PARAMS, "parse_shards": 1})],
                   check=True, capture_output=True)
    t = pq.read_table(out)
    return t.filter(t.column("error").is_null())


def synthetic_shards(tpl: pa.Table, n_chains: int, n_files: int, folder: Path, seed: int = 0
                     ) -> list[Path]:
    """``n_chains`` rows cycling over ``tpl`` with new ids and sequences, in ``n_files`` files."""
    from dplm2.io import write_parquet

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in range(n_files):
        k = np.arange(f, n_chains, n_files)
        t = tpl.take(k % tpl.num_rows)
        lengths = t.column("length").to_numpy()
        seq = ["".join(LETTERS[rng.integers(0, 20, n)]) for n in lengths]
        ids = [f"syn{i:07d}_A" for i in k]
        t = t.set_column(t.schema.get_field_index("id"), "id", pa.array(ids, pa.string()))
        t = t.set_column(t.schema.get_field_index("entry_id"), "entry_id",
                         pa.array([i[:-2] for i in ids], pa.string()))
        t = t.set_column(t.schema.get_field_index("sequence"), "sequence", pa.array(seq, pa.string()))
        paths.append(write_parquet(t, folder / f"parsed-{f:05d}-of-{n_files:05d}.parquet",
                                   {"stage": "process.parse"}))
    return paths


# A fresh, small interpreter starts the measured command: a child forked straight from this
# (large) process would report this process's resident memory as its own peak (Linux keeps the
# pre-exec high-water mark in ru_maxrss).
LAUNCHER = """
import json, os, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"status": status, "wall_s": time.perf_counter() - t0,
                  "peak_rss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "stderr": proc.stderr.read().decode()[-2000:]}))
"""


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Wall time, CPU time and peak resident memory of ``cmd`` (a fresh process)."""
    out = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], env=env, check=True,
                         capture_output=True, text=True)
    r = json.loads(out.stdout)
    if r.pop("status") != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed: {r['stderr']}")
    r.pop("stderr")
    return {k: round(v, 2) for k, v in r.items()}


def sources_at(rev: str, folder: Path) -> Path:
    """The ``src/`` of git revision ``rev`` (``git archive``), extracted under ``folder``."""
    folder.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


def run_gather(src: Path, parsed: list[Path], outdir: Path, n_shards: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "dplm2.cli", "process", "gather", "--parsed", *map(str, parsed),
           "--outdir", str(outdir), "--params", json.dumps({**PARAMS, "n_shards": n_shards})]
    r = measure(cmd, env)
    kept = sum(pq.ParquetFile(p).metadata.num_rows for p in outdir.glob("chains-*.parquet"))
    return {**r, "kept": kept}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chains", type=int, nargs="+", default=[10_000, 40_000, 160_000])
    ap.add_argument("--parse-shards", type=int, default=8)
    ap.add_argument("--n-shards", type=int, default=2)
    ap.add_argument("--before", help="git revision to measure too (its src/, same interpreter)")
    ap.add_argument("--before-max-chains", type=int, default=40_000,
                    help="largest size run with --before (it holds every coordinate in memory)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="dplm2-bench-gather-") as tmp:
        tmp = Path(tmp)
        sources = {"now": REPO / "src"}
        if args.before:
            sources = {f"before ({args.before})": sources_at(args.before, tmp / "before"), **sources}
        tpl = template(tmp)
        print(f"template: {tpl.num_rows} real chains, mean length "
              f"{np.mean(tpl.column('length').to_numpy()):.0f}", flush=True)
        for n in args.chains:
            parsed = synthetic_shards(tpl, n, args.parse_shards, tmp / f"parsed-{n}")
            size = sum(p.stat().st_size for p in parsed) / 2**20
            for label, src in sources.items():
                if label.startswith("before") and n > args.before_max_chains:
                    continue
                out = tmp / f"chains-{n}-{len(rows)}"
                r = {"code": label, "chains": n, "parse_shards_mb": round(size, 1),
                     **run_gather(src, parsed, out, args.n_shards)}
                rows.append(r)
                print(json.dumps(r), flush=True)
                subprocess.run(["rm", "-rf", str(out)], check=True)
            subprocess.run(["rm", "-rf", str(tmp / f"parsed-{n}")], check=True)
    print("\n| code | chains | kept | wall (s) | CPU (s) | peak RSS (MB) |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['code']} | {r['chains']:,} | {r['kept']:,} | {r['wall_s']} | {r['cpu_s']} | "
              f"{r['peak_rss_mb']} |")
    for label in {r["code"] for r in rows}:
        mine = sorted((r for r in rows if r["code"] == label), key=lambda r: r["chains"])
        if len(mine) > 1:
            print(f"{label}: peak RSS at {mine[-1]['chains']:,} / at {mine[0]['chains']:,} chains = "
                  f"{mine[-1]['peak_rss_mb'] / mine[0]['peak_rss_mb']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
