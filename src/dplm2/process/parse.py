"""Parse step: one shard of the manifests -> chains with metrics and parse verdicts.

Rows of ``pdb_manifest.parquet``, ``afdb_manifest.parquet`` and the local sources' manifest
(:mod:`dplm2.process.local`: its rows carry their own ``source`` label and a ``plddt`` flag)
are pooled, sorted by ``(source, id)`` and dealt round-robin to ``parse_shards`` shards, so
every shard gets a similar mix. Each file is read with :func:`dplm2.structure.read_entry`;
chains with pLDDT (AFDB, local sources marked so) get their low-confidence ends trimmed;
metrics and the parse-time filters are recorded per chain, with what the reader removed from
the chain. A file that cannot be used (download failed, corrupt, not protein, ...) becomes one
record with ``error`` set; the shard always completes.

The shard file holds the metadata columns (:data:`~dplm2.process.records.METADATA_SCHEMA`)
plus the chain columns (:data:`CHAIN_COLUMNS`, null for failed files).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from dplm2.io import read_parquet_checked, write_parquet
from dplm2.process.config import ProcessConfig
from dplm2.process.filters import parse_filters, plddt_trim_bounds
from dplm2.process.metrics import chain_metrics, plddt_stats
from dplm2.process.records import METADATA_SCHEMA, ChainRecord
from dplm2.structure import Chain, StructureError, read_entry
from dplm2.structure.read import split_name
from dplm2.structure.residues import is_d_amino

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("id", "path", "status", "error")
USABLE = ("ok", "skipped")
CHAIN_COLUMNS = pa.schema(
    [
        ("coords", pa.list_(pa.float32())),
        ("atom_mask", pa.list_(pa.bool_())),
        ("plddt", pa.list_(pa.float32())),
        ("res_ids", pa.list_(pa.int32())),
        ("ins_codes", pa.list_(pa.string())),
    ]
)
PARSED_SCHEMA = pa.schema(list(METADATA_SCHEMA) + list(CHAIN_COLUMNS))


def manifest_rows(manifests: dict[str, str | os.PathLike]) -> list[dict]:
    """Rows of the manifests (``{"pdb": path, "afdb": path, "local": path}``) with ``source``
    and ``plddt`` columns, sorted by ``(source, id)``. The local manifest names each row's
    source label and whether it carries pLDDT; its ``ignored`` rows (not structure files) are
    left out."""
    rows = []
    for kind, path in manifests.items():
        if kind == "local":
            df = read_parquet_checked(path, required_columns=MANIFEST_COLUMNS + ("source", "plddt"))
            df = df.filter(df["status"] != "ignored")
            for row in df.select(MANIFEST_COLUMNS + ("source", "plddt")).iter_rows(named=True):
                rows.append(row)
            continue
        df = read_parquet_checked(path, required_columns=MANIFEST_COLUMNS)
        for row in df.select(MANIFEST_COLUMNS).iter_rows(named=True):
            rows.append({**row, "source": kind, "plddt": kind == "afdb"})
    rows.sort(key=lambda r: (r["source"], str(r["id"])))
    return rows


def shard_rows(rows: list[dict], index: int, count: int) -> list[dict]:
    """Round-robin share ``index`` of ``count`` (``0 <= index < count``)."""
    if not 0 <= index < count:
        raise ValueError(f"parse shard {index} out of range for {count} shards")
    return rows[index::count]


def process_file(path: Path, source: str, entry_id: str | None, cfg: ProcessConfig,
                 plddt: bool | None = None) -> Iterator[tuple[ChainRecord, Chain | None]]:
    """Records (and stored chains) of one structure file; a failure yields one error record.
    ``plddt``: B-factors are pLDDT (default: AFDB only)."""
    try:
        entry = read_entry(path, source, entry_id=entry_id, plddt=plddt,
                           max_abs_coord=cfg.max_abs_coord)
    except StructureError as exc:
        yield _failed(path, source, entry_id, str(exc)), None
        return
    filters = parse_filters(cfg.filters)
    info = entry.info
    for chain in entry.chains:
        untrimmed_mean, untrimmed_sd = plddt_stats(chain.plddt)
        start, stop = 0, len(chain)
        if chain.plddt is not None:
            start, stop = plddt_trim_bounds(chain.plddt, cfg.filters.plddt_trim_threshold)
        stored = chain.slice(start, stop) if (start, stop) != (0, len(chain)) else chain
        m = chain_metrics(stored)
        names = entry.residue_names[chain.chain_id][start:stop]
        d_amino = sum(map(is_d_amino, names)) / len(names) if names else 0.0
        removed = "; ".join(entry.removed.get(chain.chain_id, ())) or None
        rec = ChainRecord(
            id=chain.id, source=source, file=str(path), entry_id=entry.entry_id,
            chain_id=chain.chain_id, sequence=stored.sequence,
            parsed_length=len(chain), length=len(stored),
            trim_start=start, trim_end=len(chain) - stop,
            mean_plddt=m.mean_plddt, plddt_sd=m.plddt_sd,
            untrimmed_mean_plddt=untrimmed_mean, untrimmed_plddt_sd=untrimmed_sd,
            resolution=info.resolution, method=info.method, release_date=info.release_date,
            oligomeric_count=info.oligomeric_count, oligomeric_source=info.oligomeric_source,
            helix_fraction=m.helix_fraction, strand_fraction=m.strand_fraction,
            loop_fraction=m.loop_fraction, radius_of_gyration=m.radius_of_gyration,
            backbone_fraction=m.backbone_fraction, unknown_fraction=m.unknown_fraction,
            d_amino_fraction=d_amino, chain_breaks=m.chain_breaks, removed_residues=removed,
        )  # fmt: skip
        verdicts = tuple(f.verdict(rec) for f in filters)
        yield ChainRecord(**{**_fields(rec), "verdicts": verdicts}), stored


def _fields(rec: ChainRecord) -> dict:
    return {k: getattr(rec, k) for k in rec.__dataclass_fields__}


def _failed(path: Path, source: str, entry_id: str | None, reason: str) -> ChainRecord:
    if entry_id is None:
        try:
            entry_id = split_name(Path(path))[0]
        except StructureError:
            entry_id = Path(path).name
    return ChainRecord(id=str(entry_id), source=source, file=str(path), entry_id=str(entry_id),
                       error=reason)


def parse_shard(rows: list[dict], cfg: ProcessConfig, root: Path | None = None
                ) -> tuple[list[ChainRecord], list[Chain | None]]:
    """Records and stored chains of the manifest ``rows`` (relative paths against ``root``)."""
    records: list[ChainRecord] = []
    chains: list[Chain | None] = []
    for row in tqdm(rows, desc="parse", unit="file", mininterval=5):
        source = row["source"]
        entry_id = (str(row["id"]).lower() if source == "pdb"
                    else None if source == "afdb" else str(row["id"]))
        if row["status"] not in USABLE or not row["path"]:
            reason = f"download {row['status']}: {row.get('error') or 'no file'}"
            records.append(_failed(Path(str(row["path"] or row["id"])), source,
                                   entry_id or str(row["id"]), reason))
            chains.append(None)
            continue
        path = Path(row["path"])
        if root is not None and not path.is_absolute():
            path = root / path
        try:
            for rec, chain in process_file(path, source, entry_id, cfg, bool(row["plddt"])):
                records.append(rec)
                chains.append(chain)
        except Exception as exc:  # last resort: one unexpected failure must not end the run
            log.exception("unexpected error on %s", path)
            records.append(_failed(path, source, entry_id,
                                   f"unexpected {type(exc).__name__}: {exc}"))
            chains.append(None)
    return records, chains


def parsed_table(records: list[ChainRecord], chains: list[Chain | None]) -> pa.Table:
    """One table of metadata + chain columns (``PARSED_SCHEMA``)."""
    rows = []
    for rec, chain in zip(records, chains):
        row = rec.to_row()
        if chain is None:
            row.update(coords=None, atom_mask=None, plddt=None, res_ids=None, ins_codes=None)
        else:
            c = chain.to_row()
            row.update(coords=c["coords"], atom_mask=c["atom_mask"], plddt=c["plddt"],
                       res_ids=c["res_ids"], ins_codes=c["ins_codes"])
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=PARSED_SCHEMA)


def run_parse(manifests: dict[str, str | os.PathLike], index: int, count: int,
              output: str | os.PathLike, cfg: ProcessConfig, root: Path | None = None) -> Path:
    """Parse shard ``index`` of ``count`` and write it to ``output`` (atomic)."""
    rows = shard_rows(manifest_rows(manifests), index, count)
    log.info("parse shard %d/%d: %d files", index + 1, count, len(rows))
    records, chains = parse_shard(rows, cfg, root)
    table = parsed_table(records, chains)
    n_failed = sum(r.error is not None for r in records)
    log.info("parse shard %d/%d: %d chains, %d failed files", index + 1, count,
             len(records) - n_failed, n_failed)
    return write_parquet(table, output, {"stage": "process.parse", "shard": [index, count],
                                         "config": cfg.to_dict()})


def chain_from_parsed(row: dict) -> Chain:
    """The stored chain of one parsed-table row."""
    return Chain.from_row({**row, "plddt": None if row["plddt"] is None else np.asarray(row["plddt"])})
