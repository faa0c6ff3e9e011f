"""Typed config of the process stage (``config.yaml`` section ``process:``).

Keys, defaults and allowed values: ``dplm2/schemas/process.schema.yaml``. Built once from
``--params`` JSON with :meth:`ProcessConfig.from_json`.
"""

from __future__ import annotations

import dataclasses
from datetime import date

from dplm2.config import ConfigError, StageConfig


@dataclasses.dataclass(frozen=True)
class FilterConfig(StageConfig):
    """Thresholds of the per-chain filters (see ``dplm2.process.filters``)."""

    SECTION = "process.filters"

    min_length: int
    max_length: int
    plddt_trim_threshold: float
    plddt_order: str
    min_mean_plddt: float
    max_plddt_sd: float
    max_loop_fraction: float
    max_unknown_fraction: float | None
    max_d_amino_fraction: float | None
    monomers_only: bool
    max_resolution: float | None
    keep_missing_resolution: bool
    min_backbone_fraction: float
    rg_quantile: float | None
    rg_poly_degree: int
    rg_min_chains: int
    rg_fallback: str
    rg_law_factor: float

    def __post_init__(self) -> None:
        if self.min_length > self.max_length:
            raise ConfigError(f"process.filters: need min_length <= max_length, got "
                              f"{self.min_length}, {self.max_length}")


@dataclasses.dataclass(frozen=True)
class SplitConfig(StageConfig):
    """How kept chains are split into train/valid/test (see ``dplm2.process.split``)."""

    SECTION = "process.split"

    method: str
    valid_start: str
    test_start: str
    valid_fraction: float
    test_fraction: float
    min_identity: float
    coverage: float
    seed: int

    def __post_init__(self) -> None:
        try:
            v, t = date.fromisoformat(self.valid_start), date.fromisoformat(self.test_start)
        except ValueError as exc:
            raise ConfigError(f"process.split: dates must be YYYY-MM-DD ({exc})") from exc
        if v > t:
            raise ConfigError("process.split: valid_start must not be after test_start")
        if self.valid_fraction + self.test_fraction >= 1:
            raise ConfigError("process.split: valid_fraction + test_fraction must be < 1")

    @property
    def valid_date(self) -> date:
        return date.fromisoformat(self.valid_start)

    @property
    def test_date(self) -> date:
        return date.fromisoformat(self.test_start)


@dataclasses.dataclass(frozen=True)
class ProcessConfig(StageConfig):
    """The ``process:`` section."""

    SECTION = "process"

    parse_shards: int
    n_shards: int
    max_abs_coord: float
    filters: FilterConfig
    split: SplitConfig
