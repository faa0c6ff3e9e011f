"""Scaling of the TM-align evaluation metrics: processes, reference-set size, the prefilter.

Synthetic references are real chains (the bundled structures of ``tests/data``) cut into random
windows of 50-200 residues, rotated, moved and jittered (0.3 Å), written as chain shards of
1,000 chains. The samples are ``--samples`` real chains. All in one run:

1. **Parallel efficiency** - the same TM-align pairs (diversity's all-against-all of the samples
   and references) on 1 and on 2 processes (:func:`dplm2.evaluate.pool.pool_map`):
   pairs/s and efficiency = t1 / (2 * t2) from wall time, which needs 2 otherwise idle cores,
   and from CPU time (this process + its workers: CPU(1) / CPU(2), the work the processes add),
   which holds on a busy machine too; the load average is printed beside them.
2. **Novelty vs number of references** (100, 1,000, 10,000): every part job of the scatter
   (1,000 references each, read from the shards by range) timed; seconds per reference and per
   sample-reference pair, TM-align runs made by the exact length prefilter.
3. **Exactness** - at 1,000 references: parts + prefilter vs one exhaustive pass (equal
   ``pdb_tm`` and ``nearest_id``).

Usage: ``python bench/eval_scaling.py [--references 100 1000 10000] [--samples 4]
[--threads 2] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from dplm2.evaluate.diversity import pair_scores
from dplm2.evaluate.novelty import (
    count_references,
    load_reference_range,
    merge_parts,
    novelty_part,
    novelty_table,
    part_bounds,
)
from dplm2.io import write_parquet
from dplm2.structure import read_chains

REPO = Path(__file__).resolve().parents[1]
PER_PART = 1000


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def real_chains() -> list[np.ndarray]:
    out = []
    files = sorted((REPO / "tests/data/eval").glob("*.pdb.gz")) + sorted(
        p for p in (REPO / "tests/data/structures").iterdir() if p.name.endswith((".cif.gz", ".pdb.gz")))
    for path in files:
        try:
            chains = read_chains(path)
        except Exception:
            continue
        for c in chains:
            x = np.asarray(c.coords, dtype=np.float64)
            x = x[np.isfinite(x[:, 1]).all(-1)]
            if len(x) >= 60:
                out.append(x)
    return out


def synthetic_shards(chains: list[np.ndarray], n: int, folder: Path, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s, lo in enumerate(range(0, n, PER_PART)):
        rows = []
        for k in range(lo, min(lo + PER_PART, n)):
            x = chains[rng.integers(len(chains))]
            w = int(rng.integers(50, min(200, len(x)) + 1))
            start = int(rng.integers(0, len(x) - w + 1))
            q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
            y = x[start:start + w] @ q.T + rng.normal(size=3) * 30 + rng.normal(size=(w, 4, 3)) * 0.3
            rows.append({"id": f"ref{k:06d}", "split": "train", "length": w,
                         "coords": y.astype(np.float32).reshape(-1).tolist()})
        paths.append(write_parquet(pl.DataFrame(rows), folder / f"chains-{s:05d}.parquet",
                                   {"stage": "bench"}))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--references", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=300, help="pairs of the efficiency test")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    chains = real_chains()
    rng = np.random.default_rng(1)
    pick = rng.choice([i for i, c in enumerate(chains) if 100 <= len(c) <= 300], args.samples,
                      replace=False)
    structures = [chains[i] for i in pick]
    samples = pl.DataFrame({"sample_id": [f"s{i}" for i in range(len(structures))],
                            "task": "cogen", "length": [len(x) for x in structures]})
    print(f"{len(chains)} real chains; samples of {[len(x) for x in structures]} residues; "
          f"{os.cpu_count()} CPUs", flush=True)
    result: dict = {"samples": [len(x) for x in structures]}

    with tempfile.TemporaryDirectory(prefix="dplm2-bench-eval-") as tmp:
        tmp = Path(tmp)
        # 1. parallel efficiency on a fixed set of pairs
        pool = structures + [c[:150] for c in chains]
        pairs = [(i, j) for i in range(len(pool)) for j in range(i + 1, len(pool))][: args.pairs]
        times, cpu = {}, {}
        for t in sorted({1, args.threads}):
            c0 = time.process_time() + _children_cpu()
            t0 = time.perf_counter()
            scores = pair_scores(pool, pairs, threads=t)
            times[t] = time.perf_counter() - t0
            cpu[t] = time.process_time() + _children_cpu() - c0
            if t == 1:
                ref_scores = scores
            else:
                assert scores == ref_scores
        t1, tn = times[1], times[args.threads]
        result["efficiency"] = {"pairs": len(pairs), "threads": args.threads,
                                "pairs_per_s_1": len(pairs) / t1,
                                f"pairs_per_s_{args.threads}": len(pairs) / tn,
                                "efficiency": t1 / (args.threads * tn),
                                "cpu_s_1": cpu[1], f"cpu_s_{args.threads}": cpu[args.threads],
                                "cpu_efficiency": cpu[1] / cpu[args.threads],
                                "load_average": os.getloadavg()[0]}
        print(json.dumps(result["efficiency"]), flush=True)

        # 2. novelty: each 1,000-reference part timed
        rows = []
        for n in args.references:
            shards = synthetic_shards(chains, n, tmp / f"refs-{n}")
            parts = max(1, n // PER_PART)
            t_all = 0.0
            aligned = 0
            for k in range(parts):
                t0 = time.perf_counter()
                counts = count_references(shards)
                lo, hi = part_bounds(sum(counts), k, parts)
                ids, index, cas = load_reference_range(shards, "train", lo, hi, counts)
                part = novelty_part(samples, structures, ids, index, cas, threads=args.threads)
                dt = time.perf_counter() - t0
                t_all += dt
                aligned += int(part["n_aligned"].sum())
            pairs_n = n * len(structures)
            r = {"references": n, "parts": parts, "seconds": t_all,
                 "seconds_per_part": t_all / parts, "ms_per_reference": 1e3 * t_all / n,
                 "ms_per_pair": 1e3 * t_all / pairs_n, "tm_align_runs": aligned,
                 "runs_fraction": aligned / pairs_n}
            rows.append(r)
            print(json.dumps(r), flush=True)
            if n == 1000:
                # 3. exactness: four parts + prefilter vs one exhaustive pass
                counts = count_references(shards)
                ids, _, cas = load_reference_range(shards, "train", 0, n, counts)
                t0 = time.perf_counter()
                full = novelty_table(samples, structures, ids, cas, prefilter="none",
                                     threads=args.threads)
                t_full = time.perf_counter() - t0
                split = []
                for k in range(4):
                    lo, hi = part_bounds(n, k, 4)
                    pid, pidx, pcas = load_reference_range(shards, "train", lo, hi, counts)
                    split.append(novelty_part(samples, structures, pid, pidx, pcas,
                                              threads=args.threads))
                merged = merge_parts(samples, split)
                cols = ["sample_id", "pdb_tm", "nearest_id"]
                result["exact"] = {"equal": merged.select(cols).equals(full.select(cols)),
                                   "exhaustive_seconds": t_full,
                                   "pdb_tm": full["pdb_tm"].to_list()}
                print(json.dumps(result["exact"]), flush=True)
        result["novelty"] = rows

    print("\n| references | parts | total (s) | per part (s) | ms / reference | ms / pair | "
          "TM-align runs (fraction of pairs) |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['references']:,} | {r['parts']} | {r['seconds']:.1f} | "
              f"{r['seconds_per_part']:.1f} | {r['ms_per_reference']:.1f} | {r['ms_per_pair']:.2f} | "
              f"{r['tm_align_runs']:,} ({r['runs_fraction']:.0%}) |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
