"""The download manifest: one row per requested entry, what happened to it, where it lies.

Columns (Parquet, zstd, ``dplm2.*`` provenance metadata):

``id``      PDB id (lower case) or UniProt accession
``url``     URL the file came from (the last one tried when it failed)
``path``    local file (gzipped), null when failed; the process stage reads this column
``format``  ``mmcif`` or ``pdb``
``origin``  ``files`` (fetched one by one) or ``swissprot_tar`` (extracted from the bulk tar)
``bytes``   size of the local file
``sha256``  SHA-256 of the local file
``status``  ``ok`` (fetched now), ``skipped`` (already complete on disk), ``failed``
``error``   reason of a failure, null otherwise
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from pathlib import Path

import polars as pl
import pyarrow as pa

from dplm2.io import read_parquet_checked, write_parquet

log = logging.getLogger(__name__)

STATUSES = ("ok", "skipped", "failed")
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("url", pa.string()),
        ("path", pa.string()),
        ("format", pa.string()),
        ("origin", pa.string()),
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
    ]
)
COLUMNS = tuple(SCHEMA.names)


@dataclasses.dataclass(frozen=True)
class Row:
    """One manifest row (see the module docstring for the columns)."""

    id: str
    url: str
    path: str | None
    format: str | None
    origin: str
    bytes: int | None
    sha256: str | None
    status: str
    error: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"manifest status {self.status!r} not in {STATUSES}")
        if (self.status == "failed") != (self.error is not None):
            raise ValueError(f"{self.id}: a failed row needs an error and only a failed row")


def to_frame(rows: Iterable[Row]) -> pl.DataFrame:
    """Rows -> DataFrame with the manifest schema (also for zero rows)."""
    data = [dataclasses.asdict(r) for r in rows]
    return pl.from_arrow(pa.Table.from_pylist(data, schema=SCHEMA))  # type: ignore[return-value]


def summary(df: pl.DataFrame) -> dict[str, int]:
    """Counts per status, e.g. ``{"ok": 3, "skipped": 1, "failed": 0}``."""
    counts = dict(df.group_by("status").len().iter_rows())
    return {s: int(counts.get(s, 0)) for s in STATUSES}


def write_manifest(df: pl.DataFrame, path: str | Path, metadata: dict | None = None) -> None:
    """Write a manifest atomically, with its status counts in the metadata."""
    meta = {"kind": "download_manifest", "counts": summary(df), **(metadata or {})}
    write_parquet(df, path, meta, schema=SCHEMA)


def read_manifest(path: str | Path) -> pl.DataFrame:
    """Read a manifest, checking it has every column (error names the file otherwise)."""
    return read_parquet_checked(path, COLUMNS)


def check_failures(df: pl.DataFrame, max_fraction: float, where: str) -> None:
    """Log every failure; raise ``RuntimeError`` when their fraction exceeds ``max_fraction``."""
    failed = df.filter(pl.col("status") == "failed")
    for rid, err in failed.select("id", "error").iter_rows():
        log.warning("%s: %s failed: %s", where, rid, err)
    if df.height and failed.height / df.height > max_fraction:
        raise RuntimeError(
            f"{where}: {failed.height} of {df.height} downloads failed "
            f"({failed.height / df.height:.1%} > max_failed_fraction {max_fraction:.1%}); "
            "the manifest lists each failure with its reason"
        )


def gather(paths: Iterable[str | Path]) -> pl.DataFrame:
    """Concatenate shard manifests; keep one row per id, a usable one when there is one.

    An id present twice (e.g. fetched one by one and also found in the SwissProt tar) keeps
    its first ``ok``/``skipped`` row in input order, else its first row.
    """
    frames = [read_manifest(p) for p in paths]
    if not frames:
        return to_frame([])
    df = pl.concat(frames, how="vertical").with_row_index("_order")
    df = (
        df.with_columns((pl.col("status") == "failed").alias("_failed"))
        .sort(["_failed", "_order"])
        .unique(subset="id", keep="first", maintain_order=True)
        .sort("_order")
        .drop("_order", "_failed")
    )
    return df
