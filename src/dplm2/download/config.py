"""Typed configuration of the download stage (the ``download:`` section of the config).

Keys, types, defaults and allowed values: ``dplm2/schemas/download.schema.yaml``; the dataclasses
below hold the names and types and are built once, at the edge, with :meth:`DownloadConfig.from_json`.
"""

from __future__ import annotations

import dataclasses

from dplm2.config import StageConfig


@dataclasses.dataclass(frozen=True)
class HttpConfig(StageConfig):
    """Network robustness settings shared by every download (each key's meaning: the schema's
    ``download.http``)."""

    SECTION = "download.http"

    connect_timeout: float
    read_timeout: float
    retries: int
    backoff: float
    backoff_max: float
    max_failed_fraction: float
    unreachable_after: int
    user_agent: str


@dataclasses.dataclass(frozen=True)
class SearchConfig(StageConfig):
    """RCSB search API query that lists PDB entries (used when ``id_source: search``)."""

    SECTION = "download.pdb.search"

    url: str
    resolution_max: float | None
    methods: tuple[str, ...]
    release_date_max: str | None
    release_date_min: str | None
    page_size: int


@dataclasses.dataclass(frozen=True)
class PdbConfig(StageConfig):
    """Where and how to fetch PDB entries (wwPDB ``divided`` layout)."""

    SECTION = "download.pdb"

    enabled: bool
    base_url: str
    id_source: str
    id_file: str | None
    holdings_url: str
    search: SearchConfig
    formats: tuple[str, ...]
    max_ids: int | None
    shards: int


@dataclasses.dataclass(frozen=True)
class SwissProtConfig(StageConfig):
    """The bulk SwissProt archive (a tar of per-entry gzipped model files)."""

    SECTION = "download.afdb.swissprot"

    enabled: bool
    url: str
    accession_file: str | None


@dataclasses.dataclass(frozen=True)
class AfdbConfig(StageConfig):
    """Where and how to fetch AlphaFold DB models (``files/AF-<acc>-F1-model_v<N>.<fmt>``)."""

    SECTION = "download.afdb"

    enabled: bool
    base_url: str
    accession_file: str | None
    versions: tuple[int, ...]
    formats: tuple[str, ...]
    suffixes: tuple[str, ...]
    shards: int
    swissprot: SwissProtConfig


@dataclasses.dataclass(frozen=True)
class DownloadConfig(StageConfig):
    """The whole ``download:`` section."""

    SECTION = "download"

    pdb: PdbConfig
    afdb: AfdbConfig
    http: HttpConfig
