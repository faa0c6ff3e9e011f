"""Embedding files: Parquet (one row per protein and layer) or ``.npy`` (per-protein matrix).

Parquet columns: ``id`` (str), ``layer`` (int16), ``length`` (int32), ``truncated`` (bool),
``embedding`` (list<float32>, the per-protein mean) and, when asked for, ``residues``
(list<list<float32>>, L x D). The key-value metadata (``dplm2.*``) records the LM hash, the
tokenizer hash, the mode and the whole embed config.

``.npy``: the (rows x D) float32 matrix in row order, plus ``<name>.ids.tsv`` beside it
(``id``, ``layer`` per row, same order) and ``<name>.meta.json``. Per-residue vectors need
Parquet (ragged).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from dplm2.embed.embed import Embedding
from dplm2.io import atomic_path, atomic_write_text, read_parquet_checked, write_parquet

COLUMNS = ("id", "layer", "length", "truncated", "embedding")


def output_format(path: str | os.PathLike, default: str) -> str:
    """``parquet`` / ``npy`` from the suffix, else ``default``."""
    suffix = Path(path).suffix.lower()
    return {".parquet": "parquet", ".npy": "npy"}.get(suffix, default)


def write_embeddings(rows: Sequence[Embedding], path: str | os.PathLike, metadata: dict,
                     fmt: str = "parquet") -> Path:
    """Write ``rows`` atomically in the format of ``path``'s suffix (else ``fmt``)."""
    path = Path(path)
    if not rows:
        raise ValueError(f"{path}: no embeddings to write")
    fmt = output_format(path, fmt)
    per_residue = rows[0].residues is not None
    if fmt == "npy":
        if per_residue:
            raise ValueError(f"{path}: per-residue vectors are ragged; write them to .parquet")
        matrix = np.stack([r.vector for r in rows]).astype(np.float32)  # (rows, D)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, matrix)
        ids = "id\tlayer\n" + "".join(f"{r.id}\t{r.layer}\n" for r in rows)
        atomic_write_text(path.with_suffix(".ids.tsv"), ids)
        atomic_write_text(path.with_suffix(".meta.json"),
                          json.dumps(metadata, indent=2, default=str) + "\n")
        return path
    fields = [("id", pa.string()), ("layer", pa.int16()), ("length", pa.int32()),
              ("truncated", pa.bool_()), ("embedding", pa.list_(pa.float32()))]
    data = {
        "id": [r.id for r in rows],
        "layer": [r.layer for r in rows],
        "length": [r.length for r in rows],
        "truncated": [r.truncated for r in rows],
        "embedding": [r.vector.tolist() for r in rows],
    }
    if per_residue:
        fields.append(("residues", pa.list_(pa.list_(pa.float32()))))
        data["residues"] = [r.residues.tolist() for r in rows]
    table = pa.Table.from_pydict(data, schema=pa.schema(fields))
    return write_parquet(table, path, metadata)


def read_embeddings(path: str | os.PathLike, layer: int | None = None) -> tuple[list[str], np.ndarray]:
    """``(ids, matrix)`` of an embeddings file (Parquet or ``.npy``), rows of ``layer`` only
    when given (required when the file holds several layers)."""
    path = Path(path)
    if output_format(path, "parquet") == "npy":
        ids_path = path.with_suffix(".ids.tsv")
        if not ids_path.is_file():
            raise FileNotFoundError(f"{ids_path}: missing (written beside {path.name})")
        table = pl.read_csv(ids_path, separator="\t", schema_overrides={"id": pl.String})
        with open(path, "rb") as fh:
            matrix = np.load(fh, allow_pickle=False)
        if len(table) != len(matrix):
            raise ValueError(f"{path}: {len(matrix)} rows but {ids_path.name} lists {len(table)}")
        df = table.with_columns(pl.Series("row", np.arange(len(table))))
    else:
        df = read_parquet_checked(path, COLUMNS).with_row_index("row")
        matrix = None
    layers = sorted(set(df["layer"].to_list()))
    if layer is None and len(layers) > 1:
        raise ValueError(f"{path}: holds layers {layers}; choose one")
    if layer is not None:
        df = df.filter(pl.col("layer") == layer)
        if df.is_empty():
            raise ValueError(f"{path}: no rows for layer {layer} (has {layers})")
    rows = df["row"].to_numpy()
    if matrix is None:
        matrix = np.asarray(df["embedding"].to_list(), dtype=np.float32)
    else:
        matrix = matrix[rows]
    return df["id"].to_list(), matrix
