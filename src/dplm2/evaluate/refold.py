"""Refold the samples' sequences once with the folding backend and cache the predictions.

scTM / scRMSD / pLDDT / designability (cogen, scaffold) and the inverse-folding scTM all compare
against the same prediction, so it is computed once per task and stored as
``results/evaluate/{task}/refold.parquet`` (one row per sample: ``sample_id``, ``sequence``,
``coords`` (flattened ``L*4*3`` float32), ``plddt`` (list<float32> or null), ``mean_plddt``,
``folding_backend``) plus one PDB per sample in ``refold/`` with pLDDT in the B-factor column.
Identical sequences are folded once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from tqdm import tqdm

from dplm2.evaluate.config import FoldingConfig
from dplm2.evaluate.folding import (
    Dplm2FoldingBackend,
    EsmFoldBackend,
    FoldingBackend,
    FoldResult,
)
from dplm2.io import read_parquet_checked, write_parquet

log = logging.getLogger(__name__)

REFOLD_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("sequence", pa.string()),
        ("length", pa.int32()),
        ("coords", pa.list_(pa.float32())),
        ("plddt", pa.list_(pa.float32())),
        ("mean_plddt", pa.float32()),
        ("folding_backend", pa.string()),
    ]
)


def make_backend(
    cfg: FoldingConfig, *, lm: str | None = None, tokenizer: str | None = None
) -> FoldingBackend:
    """Build the configured folding backend (``esmfold`` or ``dplm2``)."""
    if cfg.backend == "esmfold":
        return EsmFoldBackend(
            cfg.esmfold_model,
            device=cfg.device,
            num_recycles=cfg.num_recycles,
            chunk_size=cfg.chunk_size,
            batch_size=cfg.batch_size,
        )
    if not lm or not tokenizer:
        raise ValueError("evaluate.folding.backend is 'dplm2' (the default: this project's LM and "
                         "tokenizer, offline): give --lm and --tokenizer, or set "
                         "'{\"backend\": \"esmfold\"}' in --params")
    return Dplm2FoldingBackend(
        lm, tokenizer, device=cfg.device, max_iter=cfg.dplm2_max_iter, seed=cfg.seed,
        batch_size=cfg.batch_size,
    )


def fold_unique(backend: FoldingBackend, sequences: list[str], batch: int = 8) -> dict[str, FoldResult]:
    """Fold each distinct sequence once (progress bar over sequences)."""
    unique = sorted(set(sequences), key=len)
    out: dict[str, FoldResult] = {}
    with tqdm(total=len(unique), desc=f"fold ({backend.name})", dynamic_ncols=True,
              mininterval=2.0) as bar:
        for start in range(0, len(unique), batch):
            chunk = unique[start : start + batch]
            for seq, res in zip(chunk, backend.fold(chunk), strict=True):
                out[seq] = res
            bar.update(len(chunk))
    return out


def refold_samples(
    samples: pl.DataFrame,
    backend: FoldingBackend,
    out_path: str | os.PathLike,
    pdb_dir: str | os.PathLike | None = None,
    metadata: dict | None = None,
) -> pl.DataFrame:
    """Fold every sample's sequence and write the refold table (see module docstring)."""
    from dplm2.io import atomic_path
    from dplm2.structure import write_backbone

    seqs = samples["sequence"].to_list()
    folded = fold_unique(backend, seqs)
    rows = []
    for sid, seq in zip(samples["sample_id"].to_list(), seqs, strict=True):
        r = folded[seq]
        rows.append(
            {
                "sample_id": sid,
                "sequence": seq,
                "length": len(seq),
                "coords": r.coords.reshape(-1).tolist(),
                "plddt": None if r.plddt is None else r.plddt.tolist(),
                "mean_plddt": r.mean_plddt,
                "folding_backend": r.backend,
            }
        )
    table = pa.Table.from_pylist(rows, schema=REFOLD_SCHEMA)
    if pdb_dir is not None:
        with atomic_path(pdb_dir, is_dir=True) as tmp:
            for sid, seq in zip(samples["sample_id"].to_list(), seqs, strict=True):
                r = folded[seq]
                write_backbone(Path(tmp) / f"{_safe(sid)}.pdb", r.coords, seq, bfactors=r.plddt)
    write_parquet(table, out_path, {"stage": "evaluate.refold", "backend": backend.name, **(metadata or {})})
    return pl.from_arrow(table)


def read_refold(path: str | os.PathLike) -> dict[str, FoldResult]:
    """``sample_id -> FoldResult`` from a refold table."""
    df = read_parquet_checked(path, [f.name for f in REFOLD_SCHEMA])
    out = {}
    for row in df.iter_rows(named=True):
        n = int(row["length"])
        plddt = row["plddt"]
        out[row["sample_id"]] = FoldResult(
            sequence=row["sequence"],
            coords=np.asarray(row["coords"], dtype=np.float32).reshape(n, 4, 3),
            plddt=None if plddt is None else np.asarray(plddt, dtype=np.float32),
            backend=row["folding_backend"],
        )
    return out


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))
