"""Typed configuration of the download stage (the ``download:`` section of the config).

Every key is described in ``workflow/schemas/download.schema.yaml``; the dataclasses below mirror
that schema and are built once, at the edge, with :meth:`DownloadConfig.from_json`.
"""

from __future__ import annotations

import dataclasses

from dplm2.config import ConfigError, StageConfig

PDB_FORMATS = ("mmcif", "pdb")
AFDB_FORMATS = ("pdb", "cif")
ID_SOURCES = ("file", "search", "holdings")


@dataclasses.dataclass(frozen=True)
class HttpConfig(StageConfig):
    """Network robustness settings shared by every download.

    Attributes
    ----------
    connect_timeout, read_timeout : float
        Seconds to wait for a connection / between two received bytes.
    retries : int
        Extra attempts after a transient failure (5xx, 429, timeout, reset, corrupt body).
    backoff : float
        First back-off delay in seconds; doubled after each failed attempt (exponential).
    backoff_max : float
        Upper bound of one delay, also for a server's ``Retry-After``.
    max_failed_fraction : float
        Fraction of failed items tolerated; beyond it the command exits non-zero (after
        writing the manifest, so the failures can be read).
    unreachable_after : int
        Consecutive failures to connect at all (refused, unknown host, connect timeout), across
        all files, after which the server counts as unreachable and the job stops at once.
    user_agent : str
        ``User-Agent`` header sent to servers.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 5
    backoff: float = 1.0
    backoff_max: float = 120.0
    max_failed_fraction: float = 0.02
    unreachable_after: int = 5
    user_agent: str = "dplm2-workflow (python-requests)"

    def __post_init__(self) -> None:
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigError("download.http: timeouts must be > 0")
        if self.unreachable_after < 1:
            raise ConfigError("download.http.unreachable_after must be >= 1")
        if self.retries < 0 or self.backoff < 0 or self.backoff_max < 0:
            raise ConfigError("download.http: retries/backoff must be >= 0")
        if not 0.0 <= self.max_failed_fraction <= 1.0:
            raise ConfigError("download.http.max_failed_fraction must be in [0, 1]")


@dataclasses.dataclass(frozen=True)
class SearchConfig(StageConfig):
    """RCSB search API query that lists PDB entries (used when ``id_source: search``)."""

    url: str = "https://search.rcsb.org/rcsbsearch/v2/query"
    resolution_max: float | None = 5.0
    methods: tuple[str, ...] | list[str] = ("X-RAY DIFFRACTION", "ELECTRON MICROSCOPY")
    release_date_max: str | None = None
    release_date_min: str | None = None
    page_size: int = 10000

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        if self.page_size < 1:
            raise ConfigError("download.pdb.search.page_size must be >= 1")


@dataclasses.dataclass(frozen=True)
class PdbConfig(StageConfig):
    """Where and how to fetch PDB entries (wwPDB ``divided`` layout)."""

    enabled: bool = True
    base_url: str = "https://files.wwpdb.org"
    id_source: str = "holdings"
    id_file: str | None = None
    holdings_url: str = "https://data.rcsb.org/rest/v1/holdings/current/entry_ids"
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    formats: tuple[str, ...] | list[str] = ("mmcif", "pdb")
    max_ids: int | None = None
    shards: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "formats", tuple(self.formats))
        bad = [f for f in self.formats if f not in PDB_FORMATS]
        if bad or not self.formats:
            raise ConfigError(f"download.pdb.formats: {bad or 'empty'}; allowed {PDB_FORMATS}")
        if self.id_source not in ID_SOURCES:
            raise ConfigError(f"download.pdb.id_source {self.id_source!r}; allowed {ID_SOURCES}")
        if self.shards < 1:
            raise ConfigError("download.pdb.shards must be >= 1")


@dataclasses.dataclass(frozen=True)
class SwissProtConfig(StageConfig):
    """The bulk SwissProt archive (a tar of per-entry gzipped model files)."""

    enabled: bool = False
    url: str = "https://ftp.ebi.ac.uk/pub/databases/alphafold/latest/swissprot_pdb_v4.tar"
    accession_file: str | None = None


@dataclasses.dataclass(frozen=True)
class AfdbConfig(StageConfig):
    """Where and how to fetch AlphaFold DB models (``files/AF-<acc>-F1-model_v<N>.<fmt>``)."""

    enabled: bool = False
    base_url: str = "https://alphafold.ebi.ac.uk"
    accession_file: str | None = None
    versions: tuple[int, ...] | list[int] = (4,)
    formats: tuple[str, ...] | list[str] = ("pdb",)
    suffixes: tuple[str, ...] | list[str] = ("",)
    shards: int = 1
    swissprot: SwissProtConfig = dataclasses.field(default_factory=SwissProtConfig)

    def __post_init__(self) -> None:
        for name in ("versions", "formats", "suffixes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        bad = [f for f in self.formats if f not in AFDB_FORMATS]
        if bad or not self.formats:
            raise ConfigError(f"download.afdb.formats: {bad or 'empty'}; allowed {AFDB_FORMATS}")
        if not self.versions or any(int(v) < 1 for v in self.versions):
            raise ConfigError("download.afdb.versions: non-empty list of integers >= 1")
        bad = [s for s in self.suffixes if s not in ("", ".gz")]
        if bad or not self.suffixes:
            raise ConfigError(f"download.afdb.suffixes: {bad or 'empty'}; allowed '' and '.gz'")
        if self.shards < 1:
            raise ConfigError("download.afdb.shards must be >= 1")


@dataclasses.dataclass(frozen=True)
class DownloadConfig(StageConfig):
    """The whole ``download:`` section."""

    pdb: PdbConfig = dataclasses.field(default_factory=PdbConfig)
    afdb: AfdbConfig = dataclasses.field(default_factory=AfdbConfig)
    http: HttpConfig = dataclasses.field(default_factory=HttpConfig)
