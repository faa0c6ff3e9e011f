"""Motif scaffolding: is the motif kept, and does the scaffold refold (spec §6)?

Per sample: ``motif_rmsd`` — CA RMSD between the sample's motif residues and the motif in the
benchmark's ``_reference`` structure after superposition on the motif alone; ``success`` —
``motif_rmsd < motif_rmsd_max`` (1 Å) and ``sctm > sctm_min`` (0.8, the co-generation models'
rule; scTM comes from the task's self-consistency table). A problem (``target_id``) is solved
when at least one of its samples succeeds (see :func:`problems_solved`).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from dplm2.structure.compare import motif_rmsd


def scaffold_success(rmsd: float, sctm: float, motif_rmsd_max: float = 1.0, sctm_min: float = 0.8) -> bool:
    """The benchmark's success rule.

    Examples
    --------
    >>> scaffold_success(0.6, 0.85), scaffold_success(1.2, 0.95), scaffold_success(0.5, 0.8)
    (True, False, False)
    """
    return bool(rmsd < motif_rmsd_max and sctm > sctm_min)


def motif_table(
    samples: pl.DataFrame,
    structures: list[np.ndarray],
    references: list[np.ndarray],
    self_consistency: pl.DataFrame,
    *,
    motif_rmsd_max: float = 1.0,
    sctm_min: float = 0.8,
    atoms: str = "ca",
) -> pl.DataFrame:
    """One row per scaffold sample: ``motif_rmsd``, ``sctm``, ``success`` and the backend."""
    sc = {r["sample_id"]: r for r in self_consistency.iter_rows(named=True)}
    rows = []
    for row, xyz, ref in zip(samples.iter_rows(named=True), structures, references, strict=True):
        sid = row["sample_id"]
        if sid not in sc:
            raise ValueError(f"sample {sid!r} missing from the self-consistency table")
        r = motif_rmsd(xyz, ref, row["motif_positions"], row["reference_motif_positions"], atoms)
        sctm = float(sc[sid]["sctm"])
        rows.append({"sample_id": sid, "task": row["task"], "target_id": row["target_id"],
                     "length": int(row["length"]), "motif_length": len(row["motif_positions"]),
                     "motif_rmsd": r, "sctm": sctm,
                     "success": scaffold_success(r, sctm, motif_rmsd_max, sctm_min),
                     "folding_backend": sc[sid]["folding_backend"]})
    return pl.DataFrame(rows, infer_schema_length=None)


def problems_solved(table: pl.DataFrame) -> pl.DataFrame:
    """Per problem: samples, successes, success rate, solved (>= 1 success).

    Examples
    --------
    >>> t = pl.DataFrame({"target_id": ["a", "a", "b"], "success": [False, True, False]})
    >>> problems_solved(t).select("target_id", "n_success", "solved").rows()
    [('a', 1, True), ('b', 0, False)]
    """
    return (
        table.group_by("target_id")
        .agg(
            n=pl.len(),
            n_success=pl.col("success").sum().cast(pl.Int64),
            success_rate=pl.col("success").mean(),
        )
        .with_columns(solved=pl.col("n_success") > 0)
        .sort("target_id")
    )
