"""Parquet shards: Hugging Face style names, zstd, provenance in the key-value metadata.

Every Parquet file the workflow writes carries ``dplm2.*`` metadata (package version, what made
it, upstream hashes) so that a stale or foreign shard is detected on load rather than silently
used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from collections.abc import Iterable
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dplm2 import __version__
from dplm2.io.atomic import atomic_path

META_PREFIX = "dplm2."


def shard_name(prefix: str, index: int, count: int, suffix: str = ".parquet") -> str:
    """``shard_name("train", 3, 8) == "train-00003-of-00008.parquet"`` (Hugging Face style).

    >>> shard_name("chains", 0, 2)
    'chains-00000-of-00002.parquet'
    """
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} out of range for {count} shards")
    return f"{prefix}-{index:05d}-of-{count:05d}{suffix}"


def write_parquet(
    table: pl.DataFrame | pa.Table,
    path: str | os.PathLike,
    metadata: dict[str, Any] | None = None,
    *,
    schema: pa.Schema | None = None,
) -> Path:
    """Write ``table`` to ``path`` atomically (zstd), with ``metadata`` stored as ``dplm2.<key>``.

    Values that are not strings are stored as JSON. ``schema`` casts the table first (use it to
    pin list element types such as ``list<int16>``).
    """
    at = table.to_arrow() if isinstance(table, pl.DataFrame) else table
    if schema is not None:
        at = at.select(schema.names).cast(schema)
    at = at.replace_schema_metadata(_key_values(at.schema, metadata))
    with atomic_path(path) as tmp:
        pq.write_table(at, tmp, compression="zstd")
    return Path(path)


def _key_values(schema: pa.Schema, metadata: dict[str, Any] | None) -> dict[bytes, bytes]:
    kv = dict(schema.metadata or {})
    meta = {"version": __version__, **(metadata or {})}
    for key, value in meta.items():
        kv[(META_PREFIX + key).encode()] = (
            value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        ).encode()
    return kv


def write_parquet_stream(
    tables: Iterable[pa.Table],
    path: str | os.PathLike,
    schema: pa.Schema,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``tables`` one after the other (each one or more row groups) to ``path``:
    :func:`write_parquet` for data that should never be in memory at once.

    Every table is cast to ``schema``; the file is written atomically (a reader sees the old
    file or the complete new one) with ``metadata`` stored as ``dplm2.<key>``.
    """
    schema = schema.remove_metadata()
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema.with_metadata(_key_values(schema, metadata)),
                              compression="zstd") as writer:
            for table in tables:
                writer.write_table(table.select(schema.names).cast(schema))
    return Path(path)


def read_parquet_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Return the ``dplm2.*`` key-value metadata of a Parquet file (JSON values decoded)."""
    raw = pq.read_schema(path).metadata or {}
    out: dict[str, Any] = {}
    for k, v in raw.items():
        key = k.decode()
        if not key.startswith(META_PREFIX):
            continue
        text = v.decode()
        try:
            out[key[len(META_PREFIX) :]] = json.loads(text)
        except json.JSONDecodeError:
            out[key[len(META_PREFIX) :]] = text
    return out


def read_parquet_checked(
    path: str | os.PathLike,
    required_columns: list[str] | tuple[str, ...] = (),
    expect: dict[str, Any] | None = None,
) -> pl.DataFrame:
    """Read a Parquet file and check it is complete and what the caller expects.

    Raises ``ValueError`` naming the file when it is unreadable (e.g. truncated), lacks a
    required column, or its metadata disagrees with ``expect`` (e.g. a token shard made by
    other tokenizer weights).
    """
    path = Path(path)
    try:
        df = pl.read_parquet(path)
        meta = read_parquet_metadata(path)
    except Exception as exc:  # pyarrow/polars raise several types for corrupt files
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
    missing = [c for c in required_columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; has {df.columns}")
    for key, want in (expect or {}).items():
        if meta.get(key) != want:
            raise ValueError(
                f"{path}: metadata {key!r} is {meta.get(key)!r}, expected {want!r} "
                "(stale shard? rerun the rule that makes it)"
            )
    return df
