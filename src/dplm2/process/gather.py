"""Gather step: parse shards -> Rg filter -> dedup -> split -> chain shards, metadata, report.

Chain shards (``chains-{i:05d}-of-{n:05d}.parquet``) hold the kept chains only, sorted by id
and dealt in contiguous blocks; their columns are :data:`CHAIN_SCHEMA` (the architecture's
chain shard schema plus ``chain_id``, ``res_ids``, ``ins_codes`` so that
:meth:`dplm2.structure.Chain.from_row` round-trips). ``metadata.parquet`` has one row per
parsed chain and per failed file (:data:`~dplm2.process.records.METADATA_SCHEMA`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from dplm2.io import atomic_write_text, shard_name, write_parquet
from dplm2.process.config import ProcessConfig
from dplm2.process.filters import RgFilter, RgThreshold
from dplm2.process.parse import CHAIN_COLUMNS, read_parsed
from dplm2.process.records import ChainRecord, records_to_table
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


def run_gather(parsed: list[str | os.PathLike], outdir: str | os.PathLike, cfg: ProcessConfig
               ) -> dict[str, Path]:
    """Write chain shards, ``metadata.parquet`` and ``filter_report.md`` under ``outdir``."""
    outdir = Path(outdir)
    records, table = read_parsed(parsed)
    ids = [r.id for r in records if r.error is None]
    dup = sorted({i for i in ids if ids.count(i) > 1}) if len(ids) != len(set(ids)) else []
    if dup:
        raise ValueError(f"duplicate chain ids across parse shards (same entry twice in the "
                         f"manifests?): {dup[:5]}")
    records, rg = apply_dataset_filters(records, cfg)
    meta = {"stage": "process", "config": cfg.to_dict(), "rg_threshold": dataclasses.asdict(rg)}
    kept = sorted((r for r in records if r.kept), key=lambda r: r.id)
    log.info("%d records, %d kept chains; %s", len(records), len(kept), rg.describe())
    chains = _chain_table(kept, table)
    out: dict[str, Path] = {}
    n = cfg.n_shards
    bounds = np.linspace(0, len(kept), n + 1).round().astype(int)
    for i in range(n):
        path = outdir / shard_name("chains", i, n)
        write_parquet(chains.slice(bounds[i], bounds[i + 1] - bounds[i]), path,
                      {**meta, "shard": [i, n]}, schema=CHAIN_SCHEMA)
        out[path.name] = path
    out["metadata"] = write_parquet(records_to_table(records), outdir / "metadata.parquet", meta)
    out["report"] = atomic_write_text(outdir / "filter_report.md",
                                      filter_report(records, rg, cfg.to_dict()))
    return out


def _chain_table(kept: list[ChainRecord], table: pl.DataFrame) -> pa.Table:
    if not kept:
        return CHAIN_SCHEMA.empty_table()
    order = pl.DataFrame({"id": [r.id for r in kept], "_order": range(len(kept)),
                          "split": [r.split for r in kept]})
    chains = (
        table.filter(pl.col("error").is_null())
        .drop("split")
        .join(order, on="id", how="inner")
        .sort("_order")
    )
    return chains.select(CHAIN_SCHEMA.names).to_arrow().cast(CHAIN_SCHEMA)
