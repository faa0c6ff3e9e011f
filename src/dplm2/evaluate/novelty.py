"""Novelty: how far is each generated structure from everything the model was trained on?

``pdb_tm`` = max over training structures of TM-score(sample, training chain), normalised by the
sample (spec §6; lower = more novel). The reference runs ``TMalign -fast`` against PDB; we run
the full TM-align (tmtools) against the project's own training split (the ``process`` stage's
chain shards), which is exact where ``-fast`` is approximate.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import polars as pl
from tqdm import tqdm

from dplm2.io import read_parquet_checked
from dplm2.structure.compare import tm_align


def max_tm(sample: np.ndarray, references: Sequence[np.ndarray]) -> tuple[float, int]:
    """Highest TM-score of ``sample`` against ``references`` (normalised by the sample).

    Returns
    -------
    (float, int)
        The score and the index of the closest reference.

    Examples
    --------
    >>> t = np.linspace(0, 6 * np.pi, 60)
    >>> helix = np.stack([2.3 * np.cos(t), 2.3 * np.sin(t), 1.5 * t], axis=1)
    >>> coil = np.cumsum(np.random.default_rng(0).normal(size=(60, 3)), 0) * 2.2
    >>> tm, idx = max_tm(helix, [coil, helix + 5])
    >>> round(tm, 3), idx
    (1.0, 1)
    """
    if not len(references):
        raise ValueError("novelty needs at least one reference structure")
    best, arg = -1.0, -1
    for k, ref in enumerate(references):
        s = tm_align(sample, ref).tm_norm_a
        if s > best:
            best, arg = s, k
    return best, arg


def load_references(
    shards: Sequence[str | os.PathLike], split: str = "train", limit: int | None = None
) -> tuple[list[str], list[np.ndarray]]:
    """CA traces of the chains of ``split`` in the process stage's chain shards.

    Residues without a CA are dropped (TM-align aligns what is there). ``limit`` keeps the first
    ``limit`` chains in shard order (for quick looks; ``None`` = all).
    """
    ids: list[str] = []
    cas: list[np.ndarray] = []
    for path in shards:
        df = read_parquet_checked(path, ["id", "split", "length", "coords"])
        df = df.filter(pl.col("split") == split)
        for row in df.select("id", "length", "coords").iter_rows(named=True):
            xyz = np.asarray(row["coords"], dtype=np.float64).reshape(int(row["length"]), 4, 3)[:, 1]
            xyz = xyz[np.isfinite(xyz).all(-1)]
            if len(xyz) >= 3:
                ids.append(row["id"])
                cas.append(np.ascontiguousarray(xyz))
            if limit is not None and len(ids) >= limit:
                return ids, cas
    if not ids:
        raise ValueError(f"no {split!r} chains in {list(map(str, shards))}")
    return ids, cas


def novelty_table(
    samples: pl.DataFrame,
    structures: Sequence[np.ndarray],
    ref_ids: Sequence[str],
    references: Sequence[np.ndarray],
    backend: str = "none",
) -> pl.DataFrame:
    """One row per sample: ``pdb_tm`` and the closest training chain ``nearest_id``."""
    rows = []
    it = zip(samples.iter_rows(named=True), structures, strict=True)
    for row, xyz in tqdm(it, total=samples.height, desc="novelty", dynamic_ncols=True,
                         mininterval=2.0):
        tm, k = max_tm(xyz, references)
        rows.append({"sample_id": row["sample_id"], "task": row["task"], "length": int(row["length"]),
                     "pdb_tm": tm, "nearest_id": ref_ids[k], "folding_backend": backend})
    return pl.DataFrame(rows, infer_schema_length=None)
