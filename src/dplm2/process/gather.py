"""Gather step: parse shards -> Rg filter -> dedup -> split -> chain shards, metadata, report.

Chain shards (``chains-{i:05d}-of-{n:05d}.parquet``) hold the kept chains only: their ids,
sorted, are dealt in contiguous blocks, one block per shard; within a shard, rows keep the
order of the parse shards. Their columns are :data:`CHAIN_SCHEMA` (the architecture's chain
shard schema plus ``chain_id``, ``res_ids``, ``ins_codes`` so that
:meth:`dplm2.structure.Chain.from_row` round-trips). ``metadata.parquet`` has one row per
parsed chain and per failed file (:data:`~dplm2.process.records.METADATA_SCHEMA`).

Memory: filtering, dedup and splitting read only the per-chain metadata columns; coordinates
stream from the parse shards into the chain shards :data:`BATCH_ROWS` chains at a time, so the
peak does not grow with the coordinates of all chains (``bench/gather_memory.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dplm2.io import atomic_write_text, read_parquet_checked, shard_name, write_parquet
from dplm2.io.parquet import parquet_writer
from dplm2.process.config import ProcessConfig
from dplm2.process.filters import RgFilter, RgThreshold
from dplm2.process.parse import CHAIN_COLUMNS, PARSED_SCHEMA
from dplm2.process.records import METADATA_SCHEMA, ChainRecord, records_to_table
from dplm2.process.report import filter_report
from dplm2.process.split import assign_splits, deduplicate

log = logging.getLogger(__name__)

#: Chains read from a parse shard at a time, and buffered per chain shard before a row group.
BATCH_ROWS = 256

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


def apply_dataset_filters(records: list[ChainRecord], cfg: ProcessConfig
                          ) -> tuple[list[ChainRecord], RgThreshold]:
    """Rg filter (fitted on chains passing every parse filter), dedup and splits."""
    base = [r for r in records if r.kept]
    rg = RgThreshold.fit(np.array([r.length for r in base]),
                         np.array([r.radius_of_gyration for r in base]), cfg.filters)
    rg_filter = RgFilter(rg)
    records = [r.with_verdict(rg_filter.verdict(r)) if r.error is None else r for r in records]
    records = deduplicate(records)
    splits = assign_splits(records, cfg.split)
    records = [dataclasses.replace(r, split=splits.get(r.id)) for r in records]
    return records, rg


def read_parsed_records(paths: list[str | os.PathLike]) -> list[ChainRecord]:
    """The records of parse shards, in order, read from their metadata columns only."""
    records: list[ChainRecord] = []
    for path in paths:
        df = read_parquet_checked(path, required_columns=PARSED_SCHEMA.names,
                                  columns=METADATA_SCHEMA.names)
        records += [ChainRecord.from_row(r) for r in df.iter_rows(named=True)]
    return records


def run_gather(parsed: list[str | os.PathLike], outdir: str | os.PathLike, cfg: ProcessConfig
               ) -> dict[str, Path]:
    """Write chain shards, ``metadata.parquet`` and ``filter_report.md`` under ``outdir``."""
    outdir = Path(outdir)
    records = read_parsed_records(parsed)
    ids = [r.id for r in records if r.error is None]
    if len(ids) != len(set(ids)):
        seen: set[str] = set()
        dup = sorted({i for i in ids if i in seen or seen.add(i)})
        raise ValueError(f"duplicate chain ids across parse shards (same entry twice in the "
                         f"manifests?): {dup[:5]}")
    records, rg = apply_dataset_filters(records, cfg)
    meta = {"stage": "process", "config": cfg.to_dict(), "rg_threshold": dataclasses.asdict(rg)}
    kept = sorted((r for r in records if r.kept), key=lambda r: r.id)
    log.info("%d records, %d kept chains; %s", len(records), len(kept), rg.describe())
    n = cfg.n_shards
    bounds = np.linspace(0, len(kept), n + 1).round().astype(int)
    shard_of = {r.id: i for i in range(n) for r in kept[bounds[i]:bounds[i + 1]]}
    paths = [outdir / shard_name("chains", i, n) for i in range(n)]
    _stream_chain_shards(parsed, paths, shard_of, {r.id: r.split for r in kept}, meta)
    out: dict[str, Path] = {path.name: path for path in paths}
    out["metadata"] = write_parquet(records_to_table(records), outdir / "metadata.parquet", meta)
    out["report"] = atomic_write_text(outdir / "filter_report.md",
                                      filter_report(records, rg, cfg.to_dict()))
    return out


def _stream_chain_shards(parsed: list[str | os.PathLike], paths: list[Path],
                         shard_of: dict[str, int], split_of: dict[str, str], meta: dict) -> None:
    """One pass over the parse shards, :data:`BATCH_ROWS` rows at a time: each kept chain
    joins its chain shard's buffer, written out as a row group once it holds
    :data:`BATCH_ROWS` chains. Each file is atomic: an error leaves no new chain shard."""
    columns = [c for c in CHAIN_SCHEMA.names if c != "split"] + ["error"]
    buffers: list[list[pa.Table]] = [[] for _ in paths]
    counts = [0] * len(paths)
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(parquet_writer(p, CHAIN_SCHEMA,
                                                      {**meta, "shard": [i, len(paths)]}))
                   for i, p in enumerate(paths)]

        def flush(i: int) -> None:
            if buffers[i]:
                writers[i].write_table(pa.concat_tables(buffers[i]))
                buffers[i], counts[i] = [], 0

        for path in parsed:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS,
                                                           columns=columns):
                ids, errors = batch.column("id").to_pylist(), batch.column("error").to_pylist()
                rows = {}  # chain shard -> row numbers of this batch (a failed file has no id)
                for row, (cid, err) in enumerate(zip(ids, errors)):
                    if err is None and cid in shard_of:
                        rows.setdefault(shard_of[cid], []).append(row)
                table = pa.Table.from_batches([batch])
                for i, take in rows.items():
                    part = table.take(take)
                    part = part.append_column("split", pa.array([split_of[ids[r]] for r in take],
                                                                pa.string()))
                    buffers[i].append(part.select(CHAIN_SCHEMA.names).cast(CHAIN_SCHEMA))
                    counts[i] += len(take)
                    if counts[i] >= BATCH_ROWS:
                        flush(i)
        for i in range(len(paths)):
            flush(i)
