"""Typed configuration of the generation stage (the ``generate:`` section of config.yaml).

One frozen dataclass per kind of task, each with its own decoding settings (``sampling``: the LM
sampler's :class:`dplm2.lm.sampling.SamplerConfig`, spec §5). Keys, defaults (the paper values,
each task its own sampler defaults) and allowed values: ``dplm2/schemas/generate.schema.yaml``;
``config.yaml`` shrinks them for the 2-core demo.

============  ================================================================================
task          what is given / generated
============  ================================================================================
cogen         nothing given; structure tokens and amino acids co-generated (length L)
folding       amino acids given; structure tokens generated, decoded by the tokenizer
inverse       structure tokens given; amino acids generated
scaffold      motif tokens + amino acids fixed at contig positions; the rest co-generated
sequence      amino acids alone (structure half blinded: single-modality attention)
backbone      structure tokens alone (amino-acid half blinded); decoded by the tokenizer
ss_cogen      a per-residue H/E/L string; co-generation guided toward it (length = the string)
============  ================================================================================
"""

from __future__ import annotations

import dataclasses

from dplm2.config import ConfigError, StageConfig
from dplm2.lm.sampling import SamplerConfig


@dataclasses.dataclass(frozen=True)
class LengthTaskConfig(StageConfig):
    """Unconditional generation at fixed lengths: ``generate.cogen``, ``.sequence``, ``.backbone``."""

    SECTION = "generate.cogen"

    lengths: tuple[int, ...]
    samples_per_length: int
    sampling: SamplerConfig


@dataclasses.dataclass(frozen=True)
class ConditionalTaskConfig(StageConfig):
    """Folding or inverse folding of given proteins: ``generate.folding``, ``.inverse_folding``."""

    SECTION = "generate.folding"

    split: str
    max_targets: int
    max_length: int
    sampling: SamplerConfig


@dataclasses.dataclass(frozen=True)
class ScaffoldConfig(StageConfig):
    """Motif scaffolding problems and settings (``generate.scaffold``)."""

    SECTION = "generate.scaffold"

    benchmark: str | None
    subset: tuple[str, ...]
    problems: tuple[dict, ...]
    samples_per_problem: int
    sampling: SamplerConfig

    def __post_init__(self) -> None:
        if self.benchmark is None and not self.problems:
            raise ConfigError("generate.scaffold: give a benchmark table, problems, or both")


@dataclasses.dataclass(frozen=True)
class SSCogenConfig(StageConfig):
    """Secondary-structure-conditioned co-generation (``generate.ss_cogen``,
    :mod:`dplm2.generate.ss_guidance`)."""

    SECTION = "generate.ss_cogen"

    ss: tuple[str, ...]
    samples_per_ss: int
    guidance_weight: float
    table_split: str
    table_smoothing: float
    sampling: SamplerConfig


@dataclasses.dataclass(frozen=True)
class GenerateConfig(StageConfig):
    """The ``generate:`` section (``tasks`` is read by the rule file; the commands ignore it)."""

    SECTION = "generate"

    tasks: tuple[str, ...]
    seed: int
    batch_size: int
    decode_batch_size: int
    cogen: LengthTaskConfig
    sequence: LengthTaskConfig
    backbone: LengthTaskConfig
    folding: ConditionalTaskConfig
    inverse_folding: ConditionalTaskConfig
    scaffold: ScaffoldConfig
    ss_cogen: SSCogenConfig
