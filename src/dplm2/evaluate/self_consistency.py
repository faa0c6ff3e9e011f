"""Self-consistency: does the folding backend put the sample's sequence back into its structure?

For co-generation and scaffolding the *designed structure* is the sample's decoded structure; for
inverse folding it is the input (reference) structure the sequence was designed for. Per
sample (spec §6):

* ``sctm`` — TM-score(designed, refolded), TM-align on CA, normalised by the designed chain;
* ``scrmsd`` — RMSD over N, CA, C after optimal superposition; ``scrmsd_ca`` over CA;
* ``plddt`` — the backend's mean pLDDT (null when it has none);
* ``designable_sctm`` — ``sctm >= designable_sctm`` (0.5; the DPLM-2 reference's rule);
* ``designable_scrmsd`` — ``scrmsd_ca < designable_scrmsd`` (2 Å; the field's other convention,
  on CA as in FrameDiff / RFdiffusion / the DPLM-2 reference's RMSD).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import polars as pl
from tqdm import tqdm

from dplm2.evaluate.config import SelfConsistencyConfig
from dplm2.evaluate.folding import FoldResult
from dplm2.structure.compare import backbone_rmsd, ca_rmsd, tm_align

log = logging.getLogger(__name__)


def self_consistency(
    designed: np.ndarray,
    refolded: np.ndarray,
    *,
    sequence: str | None = None,
    plddt: np.ndarray | None = None,
    designable_sctm: float,
    designable_scrmsd: float,
) -> dict[str, float | bool | None]:
    """Self-consistency metrics of one sample.

    Parameters
    ----------
    designed : ndarray, shape (L, 4, 3)
        The structure the sequence should fold into.
    refolded : ndarray, shape (L, 4, 3)
        The folding backend's prediction for the sequence.
    sequence : str, optional
        Passed to TM-align for both chains (``None``: poly-alanine, the reference's choice).
    plddt : ndarray, shape (L,), optional
        Per-residue pLDDT of the prediction.
    designable_sctm, designable_scrmsd : float
        Thresholds of the two designability rules.

    Returns
    -------
    dict
        ``sctm, sctm_norm_refold, scrmsd, scrmsd_ca, plddt, designable_sctm, designable_scrmsd``.

    Examples
    --------
    >>> t = np.linspace(0, 8 * np.pi, 80)
    >>> ca = np.stack([2.3 * np.cos(t), 2.3 * np.sin(t), 1.5 * t], axis=1)
    >>> bb = np.stack([ca + [0.5, 0, 0], ca, ca + [0, 0.5, 0], ca + [0, 0, 0.5]], axis=1)
    >>> m = self_consistency(bb, bb + 10.0, designable_sctm=0.5, designable_scrmsd=2.0)
    >>> round(m["sctm"], 3), round(m["scrmsd"], 3), m["designable_sctm"], m["designable_scrmsd"]
    (1.0, 0.0, True, True)
    """
    if designed.shape != refolded.shape:
        raise ValueError(f"designed {designed.shape} and refolded {refolded.shape} differ in shape")
    tm = tm_align(designed, refolded, sequence, sequence)
    rmsd_bb = backbone_rmsd(designed, refolded)
    rmsd_ca = ca_rmsd(designed, refolded)
    mean_plddt = None if plddt is None else float(np.mean(plddt))
    return {
        "sctm": tm.tm_norm_a,
        "sctm_norm_refold": tm.tm_norm_b,
        "scrmsd": rmsd_bb,
        "scrmsd_ca": rmsd_ca,
        "plddt": mean_plddt,
        "designable_sctm": bool(tm.tm_norm_a >= designable_sctm),
        "designable_scrmsd": bool(rmsd_ca < designable_scrmsd),
    }


def designed_structure(task: str) -> Callable[[dict], np.ndarray]:
    """The designed backbone of a sample row of ``task``, which the refold is compared with.

    The decoded structure for co-generation and scaffolding, the reference backbone for inverse
    folding (its sequence was designed for that backbone). Folding has no self-consistency (its
    metric is fold accuracy).
    """
    from dplm2.evaluate.samples import reference_backbone, sample_structure

    if task == "inverse_folding":
        def designed(row: dict) -> np.ndarray:
            return np.asarray(reference_backbone(row, int(row["length"])), dtype=np.float64)
        return designed
    if task == "folding":
        raise ValueError("self-consistency is not a folding-task metric (use fold-accuracy)")
    return sample_structure


def self_consistency_table(
    samples: pl.DataFrame,
    refolds: dict[str, FoldResult],
    designed_of: Callable[[dict], np.ndarray],
    cfg: SelfConsistencyConfig,
) -> pl.DataFrame:
    """One row per sample: ids, length, the metrics above and ``folding_backend``.

    ``designed_of(row)`` returns the designed backbone of a sample row (decoded structure for
    cogen/scaffold, reference for inverse folding).
    """
    rows = []
    for row in tqdm(samples.iter_rows(named=True), total=samples.height, desc="self-consistency",
                    dynamic_ncols=True, mininterval=2.0):
        sid = row["sample_id"]
        if sid not in refolds:
            raise ValueError(f"sample {sid!r} has no refolded structure (stale refold.parquet?)")
        fold = refolds[sid]
        if fold.sequence != row["sequence"]:
            raise ValueError(f"sample {sid!r}: refold.parquet sequence differs (stale refold.parquet?)")
        designed = designed_of(row)
        seq = row["sequence"] if cfg.tm_sequences == "native" else None
        metrics = self_consistency(
            designed,
            np.asarray(fold.coords, dtype=np.float64),
            sequence=seq,
            plddt=fold.plddt,
            designable_sctm=cfg.designable_sctm,
            designable_scrmsd=cfg.designable_scrmsd,
        )
        rows.append(
            {
                "sample_id": sid,
                "task": row["task"],
                "target_id": row.get("target_id"),
                "length": int(row["length"]),
                **metrics,
                "folding_backend": fold.backend,
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)
