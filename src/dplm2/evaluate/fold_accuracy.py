"""Folding task: how close is the predicted structure to the true one (spec §6, §7)?

Per sample: ``tm`` (TM-align on CA, normalised by the reference chain, the usual convention for
a prediction against its native), ``tm_norm_pred``, ``rmsd`` (N, CA, C after optimal
superposition, residue ``i`` against residue ``i``), ``rmsd_ca``, and ``tm_pass``
(``tm >= tm_threshold``, 0.8 in the paper's folding table). Residues whose reference atoms are
missing (NaN) are left out of the RMSD.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from tqdm import tqdm

from dplm2.evaluate.config import FoldAccuracyConfig
from dplm2.evaluate.samples import reference_backbone, reference_chain, sample_structure
from dplm2.structure.compare import backbone_rmsd, ca_rmsd, tm_align


def fold_accuracy(predicted: np.ndarray, reference: np.ndarray, tm_threshold: float) -> dict:
    """Accuracy of one predicted backbone against the true one.

    Parameters
    ----------
    predicted, reference : ndarray, shape (L, 4, 3)
        Same residues in the same order (NaN marks atoms missing from the reference).
    tm_threshold : float
        ``tm_pass`` is ``tm >= tm_threshold``.

    Returns
    -------
    dict with ``tm, tm_norm_pred, rmsd, rmsd_ca, tm_pass``.

    Examples
    --------
    >>> t = np.linspace(0, 8 * np.pi, 80)
    >>> ca = np.stack([2.3 * np.cos(t), 2.3 * np.sin(t), 1.5 * t], axis=1)
    >>> bb = np.stack([ca - 1, ca, ca + 1, ca + 2], axis=1)
    >>> r = fold_accuracy(bb, bb, tm_threshold=0.8)
    >>> round(r["tm"], 3), round(r["rmsd"], 3), r["tm_pass"]
    (1.0, 0.0, True)
    """
    if predicted.shape != reference.shape:
        raise ValueError(
            f"predicted structure has {len(predicted)} residues, reference {len(reference)}: "
            "the folding task must keep the reference's residues"
        )
    tm = tm_align(predicted, reference)
    return {
        "tm": tm.tm_norm_b,
        "tm_norm_pred": tm.tm_norm_a,
        "rmsd": backbone_rmsd(reference, predicted),
        "rmsd_ca": ca_rmsd(reference, predicted),
        "tm_pass": bool(tm.tm_norm_b >= tm_threshold),
    }


def fold_accuracy_table(samples: pl.DataFrame, cfg: FoldAccuracyConfig, backend: str) -> pl.DataFrame:
    """One row per folding sample; ``folding_backend`` names the model that made the prediction."""
    rows = []
    for row in tqdm(samples.iter_rows(named=True), total=samples.height, desc="fold accuracy",
                    dynamic_ncols=True, mininterval=2.0):
        ref = reference_chain(row)
        if ref.sequence != row["sequence"] and len(ref) == len(row["sequence"]):
            mismatch = sum(a != b for a, b in zip(ref.sequence, row["sequence"], strict=True))
            if mismatch > 0.1 * len(ref):
                raise ValueError(
                    f"sample {row['sample_id']}: sequence differs from {row['reference_path']} at "
                    f"{mismatch} of {len(ref)} positions; wrong reference?"
                )
        metrics = fold_accuracy(sample_structure(row), reference_backbone(row, int(row["length"])),
                                cfg.tm_threshold)
        rows.append({"sample_id": row["sample_id"], "task": row["task"],
                     "target_id": row["target_id"], "length": int(row["length"]), **metrics,
                     "folding_backend": backend})
    return pl.DataFrame(rows, infer_schema_length=None)
