"""Local sources: your own structure files as a source of the workflow, beside PDB and AFDB.

Config (section ``local``, ``dplm2/schemas/local.schema.yaml``): one entry per source,
keyed by its label::

    local:
      designs:                      # label: the chains' `source` in metadata and shards
        paths: [designs/, "more/*.pdb.gz"]
        plddt: false                # B-factors are not pLDDT (true: predicted models)

Each path is a file, a folder (searched recursively) or a glob, relative to the workflow
folder; any file names, PDB / mmCIF / BinaryCIF, gzipped or not
(:func:`dplm2.structure.files.find_structure_files`). :func:`build_manifest` writes one
manifest for all local sources, with the columns of the download manifests (``id, path,
status, error``) plus ``source`` and ``plddt``; files found that are not structure files get
status ``ignored`` with the reason (listed, never read). The process stage's parse step reads
it beside the PDB and AFDB manifests, so local files go through the same parse, filters,
dedup and split and into the same chain shards.

Ids: ``<label>-<file stem>`` (``designs-design_007``; chains ``designs-design_007_A``); stems
that occur twice in one source are told apart by their folders and full names
(``designs-a-x.pdb``, ``designs-b-x.pdb``). Sources with pLDDT are treated as predicted models (pLDDT trim and filter,
no resolution filter, train split); others as experimental (resolution filter when the file
states one, date split when it states a release date).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import re
from pathlib import Path

import pyarrow as pa

from dplm2.config import ConfigError, apply_schema_defaults, validate
from dplm2.io import write_parquet
from dplm2.structure.files import find_structure_files
from dplm2.structure.read import SOURCES, SOURCE_LABEL, split_name

log = logging.getLogger(__name__)

MANIFEST_SCHEMA = pa.schema([
    ("id", pa.string()), ("path", pa.string()), ("status", pa.string()), ("error", pa.string()),
    ("source", pa.string()), ("plddt", pa.bool_()), ("bytes", pa.int64()),
])
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclasses.dataclass(frozen=True)
class LocalSource:
    """One local source: a label, its paths, whether its B-factors are pLDDT."""

    label: str
    paths: tuple[str, ...]
    plddt: bool

    def __post_init__(self) -> None:
        if not SOURCE_LABEL.match(self.label) or self.label in SOURCES:
            raise ConfigError(
                f"local: source label {self.label!r} must be lower-case letters, digits and '_', "
                f"starting with a letter (at most 32), and not {' or '.join(SOURCES)}")
        if not self.paths or not all(isinstance(p, str) and p for p in self.paths):
            raise ConfigError(f"local.{self.label}.paths: give one or more folders, files or globs")


def parse_sources(section: dict | None) -> list[LocalSource]:
    """The ``local`` config section as :class:`LocalSource` objects (sorted by label), its
    defaults filled and checked by the schema."""
    section = apply_schema_defaults(copy.deepcopy(dict(section or {})), "local")
    validate(section, "local")
    return [LocalSource(label, tuple(body["paths"]), body["plddt"])
            for label, body in sorted(section.items())]


def manifest_rows(source: LocalSource, base: Path | None = None) -> list[dict]:
    """Manifest rows of one source (ids unique within it; see module docstring)."""
    found = find_structure_files(source.paths, base)
    stems = [split_name(p)[0] for p in found.files]
    ids = [_safe(s) for s in stems]
    if len(set(ids)) != len(ids):
        ids = _disambiguate(found.files, ids)
    rows = [dict(id=f"{source.label}-{i}", path=str(p), status="ok", error=None,
                 source=source.label, plddt=source.plddt, bytes=p.stat().st_size)
            for i, p in zip(ids, found.files)]
    rows += [dict(id=None, path=str(p), status="ignored", error=reason, source=source.label,
                  plddt=source.plddt, bytes=p.stat().st_size) for p, reason in found.ignored]
    return rows


def build_manifest(sources: list[LocalSource], out: str | os.PathLike,
                   base: Path | None = None) -> Path:
    """Write the manifest of every local source to ``out`` (atomic)."""
    rows = []
    for source in sources:
        got = manifest_rows(source, base)
        n_ok = sum(r["status"] == "ok" for r in got)
        log.info("local source %s: %d structure files, %d other files ignored",
                 source.label, n_ok, len(got) - n_ok)
        for r in got:
            if r["status"] == "ignored":
                log.warning("local source %s: ignored %s (%s)", source.label, r["path"], r["error"])
        rows += got
    if not sources:
        raise ConfigError("local: no local source configured")
    table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    return write_parquet(table, out, {"stage": "process.local",
                                      "sources": [dataclasses.asdict(s) for s in sources]})


def _safe(stem: str) -> str:
    return _UNSAFE.sub("_", stem).strip("_") or "file"


def _disambiguate(files: tuple[Path, ...], ids: list[str]) -> list[str]:
    """Ids of files sharing a stem: their path below the folder they have in common, with
    the full file name (``a-x.pdb``, ``b-x.pdb``; ``x.pdb``, ``x.cif`` in one folder)."""
    out = list(ids)
    for name in {i for i in ids if ids.count(i) > 1}:
        members = [k for k, i in enumerate(ids) if i == name]
        parts = [files[k].resolve().parts for k in members]
        common = len(os.path.commonprefix([p[:-1] for p in parts]))
        for k, p in zip(members, parts):
            out[k] = "-".join(_safe(x) for x in p[common:])
    return out
