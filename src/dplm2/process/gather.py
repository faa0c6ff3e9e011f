"""Gather step: parse shards -> Rg filter -> dedup -> split -> chain shards, metadata, report.

Chain shards (``chains-{i:05d}-of-{n:05d}.parquet``) hold the kept chains only, sorted by id
and dealt in contiguous blocks; their columns are :data:`CHAIN_SCHEMA` (the architecture's
chain shard schema plus ``chain_id``, ``res_ids``, ``ins_codes`` so that
:meth:`dplm2.structure.Chain.from_row` round-trips), followed by any column of the parse shards
that this module does not know (passed through unchanged, also into ``metadata.parquet``).
``metadata.parquet`` has one row per parsed chain and per failed file
(:data:`~dplm2.process.records.METADATA_SCHEMA`).

Memory does not grow with the coordinates: filtering, dedup and splitting read only the
metadata columns; the chain columns then stream from the parse shards into the chain shards in
two passes over bounded pieces (:func:`write_chain_shards`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from dplm2.io import atomic_write_text, shard_name, write_parquet_stream
from dplm2.process.config import ProcessConfig
from dplm2.process.filters import RgFilter, RgThreshold
from dplm2.process.parse import CHAIN_COLUMNS, PARSED_SCHEMA
from dplm2.process.records import METADATA_SCHEMA, ChainRecord, records_to_table
from dplm2.process.report import filter_report
from dplm2.process.split import assign_splits, deduplicate

log = logging.getLogger(__name__)

CHAIN_SCHEMA = pa.schema(
    [
        ("id", pa.string()), ("source", pa.string()), ("split", pa.string()),
        ("sequence", pa.string()), ("length", pa.int32()),
        *list(CHAIN_COLUMNS),
        ("chain_id", pa.string()),
        ("mean_plddt", pa.float32()), ("plddt_sd", pa.float32()),
        ("resolution", pa.float32()), ("method", pa.string()), ("release_date", pa.date32()),
        ("oligomeric_count", pa.int32()), ("loop_fraction", pa.float32()),
        ("helix_fraction", pa.float32()), ("strand_fraction", pa.float32()),
        ("radius_of_gyration", pa.float32()), ("chain_breaks", pa.int32()),
    ]
)  # fmt: skip

#: Kept chains per piece of the two-pass shard writer: a piece (and one parse-shard batch) is
#: all the coordinates in memory at once, whatever the number of chains.
PIECE_ROWS = 2048
#: Rows read from a parse shard at a time.
BATCH_ROWS = 512
#: Rows waiting in memory before they are spilled to the pieces' files.
SPILL_ROWS = 4096
#: Records per write of metadata.parquet.
META_ROWS = 20_000


def apply_dataset_filters(records: list[ChainRecord], cfg: ProcessConfig
                          ) -> tuple[list[ChainRecord], RgThreshold]:
    """Rg filter (fitted on chains passing every parse filter), dedup and splits.

    ``records`` is updated in place where it can (one record at a time: the old and the new
    list are never both in memory) and returned with the Rg bound.
    """
    base = [r for r in records if r.kept]
    rg = RgThreshold.fit(np.array([r.length for r in base]),
                         np.array([r.radius_of_gyration for r in base]), cfg.filters)
    del base
    rg_filter = RgFilter(rg)
    for k, r in enumerate(records):
        if r.error is None:
            records[k] = r.with_verdict(rg_filter.verdict(r))
    records = deduplicate(records)
    splits = assign_splits(records, cfg.split)
    for k, r in enumerate(records):
        if r.id in splits:
            records[k] = dataclasses.replace(r, split=splits[r.id])
    return records, rg


def extra_columns(paths: list[str | os.PathLike]) -> pa.Schema:
    """Columns of the parse shards that this module does not know (passed through as they are);
    every shard must have the same ones."""
    known = set(PARSED_SCHEMA.names)
    extras = None
    for path in paths:
        schema = _schema(path)
        missing = [c for c in PARSED_SCHEMA.names if c not in schema.names]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; not a parse shard (stale?)")
        mine = pa.schema([f for f in schema if f.name not in known])
        if extras is None:
            extras = mine
        elif not mine.equals(extras):
            raise ValueError(f"{path}: extra columns {mine.names} differ from the other parse "
                             f"shards' {extras.names}")
    return extras if extras is not None else pa.schema([])


def read_records(paths: list[str | os.PathLike], extras: pa.Schema
                 ) -> tuple[list[ChainRecord], pa.Table]:
    """Records of the parse shards (metadata columns only, never the coordinates), in order,
    and their extra columns (one row per record)."""
    records: list[ChainRecord] = []
    extra_tables = []
    cols = METADATA_SCHEMA.names
    for path in paths:
        try:
            f = pq.ParquetFile(path)
            for batch in f.iter_batches(batch_size=META_ROWS, columns=cols + extras.names):
                t = pa.Table.from_batches([batch])
                records += [ChainRecord.from_row(_interned(r)) for r in t.select(cols).to_pylist()]
                extra_tables.append(t.select(extras.names))
        except (OSError, pa.ArrowException) as exc:
            raise ValueError(f"{path}: not a readable parse shard ({exc})") from exc
    extra = pa.concat_tables(extra_tables) if extra_tables else extras.empty_table()
    return records, extra


def run_gather(parsed: list[str | os.PathLike], outdir: str | os.PathLike, cfg: ProcessConfig
               ) -> dict[str, Path]:
    """Write chain shards, ``metadata.parquet`` and ``filter_report.md`` under ``outdir``."""
    outdir = Path(outdir)
    extras = extra_columns(parsed)
    records, extra = read_records(parsed, extras)
    counts = Counter(r.id for r in records if r.error is None)
    dup = sorted(i for i, c in counts.items() if c > 1)
    if dup:
        raise ValueError(f"duplicate chain ids across parse shards (same entry twice in the "
                         f"manifests?): {dup[:5]}")
    records, rg = apply_dataset_filters(records, cfg)
    meta = {"stage": "process", "config": cfg.to_dict(), "rg_threshold": dataclasses.asdict(rg)}
    splits = {r.id: r.split for r in records if r.kept}
    log.info("%d records, %d kept chains; %s", len(records), len(splits), rg.describe())
    out = write_chain_shards(parsed, splits, cfg.n_shards, outdir, meta, extras)
    meta_schema = pa.schema(list(METADATA_SCHEMA) + list(extras))

    def metadata_pieces() -> Iterator[pa.Table]:
        for lo in range(0, len(records), META_ROWS):
            t = records_to_table(records[lo: lo + META_ROWS])
            piece = extra.slice(lo, META_ROWS)
            for name in extras.names:
                t = t.append_column(name, piece.column(name))
            yield t

    out["metadata"] = write_parquet_stream(metadata_pieces(), outdir / "metadata.parquet",
                                           meta_schema, meta)
    out["report"] = atomic_write_text(outdir / "filter_report.md",
                                      filter_report(records, rg, cfg.to_dict()))
    return out


def write_chain_shards(parsed: list[str | os.PathLike], splits: dict[str, str], n_shards: int,
                       outdir: Path, meta: dict, extras: pa.Schema) -> dict[str, Path]:
    """Stream the kept chains (``splits``: id -> split) from the parse shards into ``n_shards``
    chain shards, sorted by id, in contiguous blocks.

    Pass 1 reads each parse shard in batches and sends every kept row to its *piece*: the
    id-sorted kept chains cut into consecutive runs of at most :data:`PIECE_ROWS` inside each
    shard. Rows wait in memory up to :data:`SPILL_ROWS`, then go to the piece's spill files
    (Arrow IPC, in a temporary folder under ``outdir``). Pass 2 writes each shard piece by
    piece: read the piece, sort it by id, append it as a row group. A hand-written external
    bucket sort because the shards must be sorted by id and the coordinates of all chains do
    not fit in memory at paper scale (~31 KB per chain, ~1M chains); Arrow and Polars sort in
    memory.
    """
    ids = sorted(splits)
    bounds = np.linspace(0, len(ids), n_shards + 1).round().astype(int)
    pieces: list[tuple[int, int, int]] = []  # (shard, first rank, stop rank)
    for i in range(n_shards):
        for lo in range(bounds[i], bounds[i + 1], PIECE_ROWS):
            pieces.append((i, lo, min(lo + PIECE_ROWS, bounds[i + 1])))
    piece_of = {}
    for p, (_, lo, hi) in enumerate(pieces):
        for k in range(lo, hi):
            piece_of[ids[k]] = p
    del ids
    schema = pa.schema(list(CHAIN_SCHEMA) + list(extras))
    read_cols = [c for c in schema.names if c != "split"] + ["error"]
    outdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".gather-", dir=outdir))
    try:
        files: dict[int, list[Path]] = {}
        pending: dict[int, list[pa.Table]] = {}
        n_pending = 0

        def spill() -> None:
            nonlocal n_pending
            for p, tables in pending.items():
                path = tmp / f"{p:06d}-{len(files.setdefault(p, [])):06d}.arrow"
                with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, schema) as writer:
                    for t in tables:
                        writer.write_table(t)
                files[p].append(path)
            pending.clear()
            n_pending = 0

        for path in parsed:
            try:
                batches = pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=read_cols)
                for batch in batches:
                    ok = batch.column("error").is_null().to_pylist()
                    rows = [(piece_of[i], k) for k, i in enumerate(batch.column("id").to_pylist())
                            if ok[k] and i in piece_of]
                    if not rows:
                        continue
                    table = pa.Table.from_batches([batch])
                    by_piece: dict[int, list[int]] = {}
                    for p, k in rows:
                        by_piece.setdefault(p, []).append(k)
                    for p, idx in by_piece.items():
                        t = table.take(idx)
                        split = pa.array([splits[i] for i in t.column("id").to_pylist()], pa.string())
                        t = t.append_column("split", split).select(schema.names).cast(schema)
                        pending.setdefault(p, []).append(t)
                        n_pending += t.num_rows
                    if n_pending >= SPILL_ROWS:
                        spill()
            except (OSError, pa.ArrowException) as exc:
                raise ValueError(f"{path}: not a readable parse shard ({exc})") from exc
        spill()

        def shard_tables(i: int) -> Iterator[pa.Table]:
            for p, (shard, lo, hi) in enumerate(pieces):
                if shard != i:
                    continue
                parts = [ipc.open_file(pa.memory_map(str(f))).read_all() for f in files.get(p, [])]
                t = pa.concat_tables(parts) if parts else schema.empty_table()
                if t.num_rows != hi - lo:
                    raise RuntimeError(f"gather: piece {p} has {t.num_rows} chains, expected "
                                       f"{hi - lo} (a parse shard changed while reading?)")
                yield t.sort_by("id")
                for f in files.get(p, []):
                    f.unlink()

        out: dict[str, Path] = {}
        for i in range(n_shards):
            path = outdir / shard_name("chains", i, n_shards)
            out[path.name] = write_parquet_stream(shard_tables(i), path, schema,
                                                  {**meta, "shard": [i, n_shards]})
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


#: Record fields with few distinct values: one string object each (memory at a million records).
_INTERNED = ("source", "file", "entry_id", "method", "oligomeric_source", "chain_id")


def _interned(row: dict) -> dict:
    for k in _INTERNED:
        if isinstance(row.get(k), str):
            row[k] = sys.intern(row[k])
    return row


def _schema(path: str | os.PathLike) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"{path}: not a readable parse shard ({exc})") from exc
