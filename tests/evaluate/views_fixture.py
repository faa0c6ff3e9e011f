"""Real evaluation folders for the 3D-view tests: fixture structures as designs, a lookup
"folding backend" that returns another real structure for each sequence, and the real metric
commands on top."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl

from dplm2.evaluate.folding import FoldResult
from dplm2.evaluate.refold import refold_samples
from dplm2.evaluate.samples import read_samples
from dplm2.io import write_parquet
from dplm2.structure import write_backbone

from .helpers import DATA, chain, random_rigid


class LookupBackend:
    """``fold(seq)``: the fixture backbone of that sequence, rigidly moved and perturbed, with a
    pLDDT ramp 30 -> 95 (so every colour band appears)."""

    name = "lookup:test"

    def __init__(self, names) -> None:
        self.by_seq = {chain(n).sequence: chain(n) for n in names}

    def fold(self, sequences):
        out = []
        for k, s in enumerate(sequences):
            c = self.by_seq[s]
            rot, shift = random_rigid(k)
            noise = np.random.default_rng(k).normal(scale=0.7, size=c.coords.shape)
            coords = (np.nan_to_num(c.coords) + noise) @ rot.T + shift
            out.append(FoldResult(sequence=s, coords=coords.astype(np.float32),
                                  plddt=np.linspace(30, 95, len(s)).astype(np.float32),
                                  backend=self.name))
        return out


def design_folder(root: Path, task: str, names, motif=None) -> dict:
    """``results/`` of one task: samples (designs with a pLDDT ramp in the B-factor column),
    refold, metric tables by the real commands. Returns the CLI arguments of ``views``."""
    from dplm2.cli import main

    gen = root / "generate" / task
    (gen / "pdb").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, name in enumerate(names):
        c = chain(name)
        plddt = np.linspace(95, 30, len(c)) if task != "folding" else np.full(len(c), 80.0)
        write_backbone(gen / "pdb" / f"{task}_{i}.pdb", np.nan_to_num(c.coords), c.sequence, plddt)
        row = {"sample_id": f"{task}_{i}", "task": task, "length": len(c), "sequence": c.sequence,
               "struct_tokens": [0] * len(c), "pdb_path": f"pdb/{task}_{i}.pdb"}
        if task == "folding":
            target = {"8tim_A": "1tim_A", "1tim_A": "8tim_A"}.get(name, name)
            shutil.copy(DATA / f"{target}.pdb.gz", gen / f"{target}.pdb.gz")
            row.update(target_id=target, reference_path=f"{target}.pdb.gz")
        if task == "scaffold":
            lo, hi = motif
            row.update(target_id=name, reference_path=f"pdb/{task}_{i}.pdb",
                       motif_positions=list(range(lo, hi)), reference_motif_positions=list(range(lo, hi)))
        if task == "inverse_folding":
            del row["pdb_path"]
            row.update(target_id=name, reference_path=f"pdb/{task}_{i}.pdb")
        rows.append(row)
    samples = write_parquet(pl.DataFrame(rows), gen / "samples.parquet", {"stage": "generate"})
    ev = root / "evaluate" / task
    ev.mkdir(parents=True, exist_ok=True)
    metrics = []
    refold = None
    if task == "folding":
        assert main(["evaluate", "fold-accuracy", "--task", task, "--samples", str(samples),
                     "--out", str(ev / "fold_accuracy.parquet")]) == 0
        metrics.append(ev / "fold_accuracy.parquet")
    else:
        refold = ev / "refold.parquet"
        refold_samples(read_samples(samples, task), LookupBackend(names), refold)
        assert main(["evaluate", "self-consistency", "--task", task, "--samples", str(samples),
                     "--refold", str(refold), "--out", str(ev / "self_consistency.parquet")]) == 0
        metrics.append(ev / "self_consistency.parquet")
        if task == "scaffold":
            assert main(["evaluate", "motif", "--task", task, "--samples", str(samples),
                         "--self-consistency", str(ev / "self_consistency.parquet"),
                         "--out", str(ev / "motif.parquet")]) == 0
            metrics.append(ev / "motif.parquet")
    return {"samples": samples, "metrics": metrics, "refold": refold}
