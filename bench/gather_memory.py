"""Gather at scale: wall time and peak memory of ``dplm2 process gather`` on synthetic parse
shards of 10k / 40k / 160k chains (real parsed chains from ``tests/data/structures`` repeated
under new ids with random sequences, so no dedup), each size in a fresh process; with
``--before REF`` the same sizes also on git commit REF (temporary worktree), in the same run.

Parse shards hold ``--chains-per-shard`` chains each (their count grows with the data, as the
workflow's ``process.parse_shards`` does at paper scale); chain shards: ``--n-shards``.

Usage::

    python bench/gather_memory.py --sizes 10000 40000 160000
    python bench/gather_memory.py --sizes 10000 40000 --before 390bcff
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "structures"
AA = "ACDEFGHIKLMNPQRSTVWY"


def template(tmp: Path) -> Path:
    """One real parse shard of the bundled structures (this checkout's parser)."""
    import polars as pl

    from dplm2.cli import main

    files = sorted(DATA.glob("*.cif.gz"))[:12]
    pl.DataFrame({"id": [f.name.split(".")[0] for f in files], "url": ["x"] * len(files),
                  "path": [str(f) for f in files], "bytes": [0] * len(files),
                  "sha256": [None] * len(files), "status": ["ok"] * len(files),
                  "error": [None] * len(files)},
                 schema_overrides={"sha256": pl.Utf8, "error": pl.Utf8}).write_parquet(tmp / "m.parquet")
    out = tmp / "template.parquet"
    assert main(["process", "parse", "--pdb-manifest", str(tmp / "m.parquet"), "--shard", "0",
                 "--shards", "1", "--output", str(out), "--params", "{}"]) == 0
    return out


def synthetic_shards(tpl: Path, n: int, per_shard: int, out: Path) -> list[Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    base = pq.read_table(tpl)
    base = base.filter(pc.is_null(base["error"]))
    rng = np.random.default_rng(0)
    paths, k = [], 0
    out.mkdir(parents=True, exist_ok=True)
    while k < n:
        m = min(per_shard, n - k)
        t = base.take(np.arange(k, k + m) % base.num_rows)
        ids = [f"S{j:07d}_A" for j in range(k, k + m)]
        seqs = ["".join(rng.choice(list(AA), size=len(s))) for s in t["sequence"].to_pylist()]
        t = t.set_column(t.schema.get_field_index("id"), "id", pa.array(ids))
        t = t.set_column(t.schema.get_field_index("sequence"), "sequence", pa.array(seqs))
        path = out / f"parsed-{len(paths):05d}.parquet"
        pq.write_table(t.replace_schema_metadata(base.schema.metadata), path, compression="zstd")
        paths.append(path)
        k += m
    return paths


def run_gather(src: Path, shards: list[Path], outdir: Path, n_shards: int) -> dict:
    params = json.dumps({"n_shards": n_shards, "filters": {"rg_quantile": None,
                                                           "max_loop_fraction": 1.0}})
    code = ("import sys\nfrom dplm2.cli import main\n"
            "sys.exit(main(['process', 'gather', '--parsed', *sys.argv[2:], '--outdir', "
            "sys.argv[1], '--params', " + repr(params) + "]))")
    env = dict(os.environ, PYTHONPATH=str(src))
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execve(sys.executable, [sys.executable, "-c", code, str(outdir),
                                   *map(str, shards)], env)
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        raise RuntimeError(f"gather failed with sources {src}")
    return {"wall_s": round(time.perf_counter() - t0, 1),
            "peak_mb": round(usage.ru_maxrss / 1024, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10000, 40000, 160000])
    p.add_argument("--chains-per-shard", type=int, default=5000)
    p.add_argument("--n-shards", type=int, default=8)
    p.add_argument("--before", metavar="REF")
    args = p.parse_args(argv)
    result: dict = {"chains_per_parse_shard": args.chains_per_shard, "n_shards": args.n_shards}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tpl = template(tmp)
        trees = {"after": REPO / "src"}
        if args.before:
            tree = tmp / "before"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree),
                            args.before], check=True, capture_output=True)
            trees["before"] = tree / "src"
        try:
            for n in args.sizes:
                shards = synthetic_shards(tpl, n, args.chains_per_shard, tmp / f"in{n}")
                size_mb = sum(s.stat().st_size for s in shards) / 2**20
                row = {"parse_shards_mb": round(size_mb, 1)}
                for name, src in trees.items():
                    row[name] = run_gather(src, shards, tmp / f"out{n}-{name}", args.n_shards)
                result[str(n)] = row
                for s in shards:
                    s.unlink()
                print(json.dumps({n: row}), flush=True)
        finally:
            if args.before:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                                str(tmp / "before")], check=False, capture_output=True)
    sizes = [str(n) for n in args.sizes]
    for name in trees:
        result[f"peak_ratio_{name}_{sizes[-1]}_over_{sizes[0]}"] = round(
            result[sizes[-1]][name]["peak_mb"] / result[sizes[0]][name]["peak_mb"], 2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
