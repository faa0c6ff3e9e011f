"""Typed config of the process stage (``config.yaml`` section ``process:``).

Every key is described in ``workflow/schemas/process.schema.yaml``; defaults here equal the
schema's. Built once from ``--params`` JSON with :meth:`ProcessConfig.from_json`.
"""

from __future__ import annotations

import dataclasses
from datetime import date

from dplm2.config import ConfigError, StageConfig

PLDDT_ORDERS = ("trim_then_test", "test_then_trim")
RG_FALLBACKS = ("law", "scaled_quantile", "none")
SPLIT_METHODS = ("date", "identity", "mmseqs")


@dataclasses.dataclass(frozen=True)
class FilterConfig(StageConfig):
    """Thresholds of the per-chain filters (see ``dplm2.process.filters``)."""

    min_length: int = 60
    max_length: int = 1024
    plddt_trim_threshold: float = 70.0
    plddt_order: str = "trim_then_test"
    min_mean_plddt: float = 85.0
    max_plddt_sd: float = 15.0
    max_loop_fraction: float = 0.5
    max_unknown_fraction: float | None = 0.1
    max_d_amino_fraction: float | None = 0.1
    monomers_only: bool = True
    max_resolution: float | None = 5.0
    keep_missing_resolution: bool = True
    min_backbone_fraction: float = 0.9
    rg_quantile: float | None = 0.96
    rg_poly_degree: int = 4
    rg_min_chains: int = 200
    rg_fallback: str = "law"
    rg_law_factor: float = 1.5

    def __post_init__(self) -> None:
        if not 1 <= self.min_length <= self.max_length:
            raise ConfigError(f"process.filters: need 1 <= min_length <= max_length, got "
                              f"{self.min_length}, {self.max_length}")
        if self.plddt_order not in PLDDT_ORDERS:
            raise ConfigError(f"process.filters.plddt_order must be one of {PLDDT_ORDERS}")
        if self.rg_fallback not in RG_FALLBACKS:
            raise ConfigError(f"process.filters.rg_fallback must be one of {RG_FALLBACKS}")
        if self.rg_quantile is not None and not 0 < self.rg_quantile < 1:
            raise ConfigError("process.filters.rg_quantile must be in (0, 1) or null")
        fractions = (self.min_backbone_fraction, self.max_loop_fraction,
                     self.max_unknown_fraction, self.max_d_amino_fraction)
        if not all(f is None or 0 <= f <= 1 for f in fractions):
            raise ConfigError("process.filters: fractions must be in [0, 1]")
        if self.rg_law_factor <= 0:
            raise ConfigError("process.filters.rg_law_factor must be > 0")
        if self.rg_poly_degree < 0:
            raise ConfigError("process.filters.rg_poly_degree must be >= 0")


@dataclasses.dataclass(frozen=True)
class SplitConfig(StageConfig):
    """How kept chains are split into train/valid/test (see ``dplm2.process.split``)."""

    method: str = "date"
    valid_start: str = "2018-01-01"
    test_start: str = "2020-01-01"
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    min_identity: float = 0.3
    coverage: float = 0.8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in SPLIT_METHODS:
            raise ConfigError(f"process.split.method must be one of {SPLIT_METHODS}")
        try:
            v, t = date.fromisoformat(self.valid_start), date.fromisoformat(self.test_start)
        except ValueError as exc:
            raise ConfigError(f"process.split: dates must be YYYY-MM-DD ({exc})") from exc
        if v > t:
            raise ConfigError("process.split: valid_start must not be after test_start")
        if not (0 <= self.valid_fraction and 0 <= self.test_fraction
                and self.valid_fraction + self.test_fraction < 1):
            raise ConfigError("process.split: fractions must be >= 0 and sum to < 1")
        if not 0 < self.min_identity <= 1 or not 0 < self.coverage <= 1:
            raise ConfigError("process.split: min_identity and coverage must be in (0, 1]")

    @property
    def valid_date(self) -> date:
        return date.fromisoformat(self.valid_start)

    @property
    def test_date(self) -> date:
        return date.fromisoformat(self.test_start)


@dataclasses.dataclass(frozen=True)
class ProcessConfig(StageConfig):
    """The ``process:`` section."""

    parse_shards: int = 2
    n_shards: int = 2
    max_abs_coord: float = 1.0e4
    filters: FilterConfig = dataclasses.field(default_factory=FilterConfig)
    split: SplitConfig = dataclasses.field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        if self.parse_shards < 1 or self.n_shards < 1:
            raise ConfigError("process: parse_shards and n_shards must be >= 1")
