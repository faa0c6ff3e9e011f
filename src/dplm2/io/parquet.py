"""Parquet shards: Hugging Face style names, zstd, provenance in the key-value metadata.

Every Parquet file the workflow writes carries ``dplm2.*`` metadata (package version, what made
it, upstream hashes) so that a stale or foreign shard is detected on load rather than silently
used.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
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
    at = at.replace_schema_metadata(_with_metadata(at.schema, metadata))
    with atomic_path(path) as tmp:
        pq.write_table(at, tmp, compression="zstd")
    return Path(path)


def _with_metadata(schema: pa.Schema, metadata: dict[str, Any] | None) -> dict[bytes, bytes]:
    """``schema``'s key-value metadata plus ``dplm2.version`` and ``metadata`` as
    ``dplm2.<key>`` (JSON unless a string)."""
    kv = dict(schema.metadata or {})
    for key, value in {"version": __version__, **(metadata or {})}.items():
        kv[(META_PREFIX + key).encode()] = (
            value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        ).encode()
    return kv


@contextlib.contextmanager
def parquet_writer(path: str | os.PathLike, schema: pa.Schema,
                   metadata: dict[str, Any] | None = None) -> Iterator[pq.ParquetWriter]:
    """A Parquet file written in pieces (``writer.write_table`` per row group), with the same
    metadata and compression as :func:`write_parquet`; it appears at ``path`` only when the
    block ends without an error (atomic)."""
    with atomic_path(path) as tmp:
        writer = pq.ParquetWriter(tmp, schema.with_metadata(_with_metadata(schema, metadata)),
                                  compression="zstd")
        try:
            yield writer
        finally:
            writer.close()


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
    columns: list[str] | tuple[str, ...] | None = None,
) -> pl.DataFrame:
    """Read a Parquet file (only ``columns``, if given) and check it is complete and what the
    caller expects.

    Raises ``ValueError`` naming the file when it is unreadable (e.g. truncated), lacks a
    required column, or its metadata disagrees with ``expect`` (e.g. a token shard made by
    other tokenizer weights).
    """
    path = Path(path)
    try:
        names = pq.read_schema(path).names
        missing = [c for c in required_columns if c not in names]
        if not missing:
            df = pl.read_parquet(path, columns=list(columns) if columns is not None else None)
            meta = read_parquet_metadata(path)
    except Exception as exc:  # pyarrow/polars raise several types for corrupt files
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; has {names}")
    for key, want in (expect or {}).items():
        if meta.get(key) != want:
            raise ValueError(
                f"{path}: metadata {key!r} is {meta.get(key)!r}, expected {want!r} "
                "(stale shard? rerun the rule that makes it)"
            )
    return df
