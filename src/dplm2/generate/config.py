"""Typed configuration of the generation stage (the ``generate:`` section of config.yaml).

One frozen dataclass per task, each with its own decoding settings (``sampling``: the LM
sampler's :class:`dplm2.lm.sampling.SamplerConfig`, spec §5). Defaults are the paper values
(``config/paper.yaml`` restates them); ``config.yaml`` shrinks them for the 2-core demo.

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
from typing import Any, ClassVar

from dplm2.config import ConfigError, StageConfig
from dplm2.lm.sampling import SamplerConfig

TASKS = ("cogen", "sequence", "backbone", "folding", "inverse_folding", "scaffold", "ss_cogen")
#: Default target of ss_cogen: helix, two-strand hairpin, helix (56 residues).
DEFAULT_SS = "LLHHHHHHHHHHHHHHLLLLEEEEEELLLLEEEEEELLLLHHHHHHHHHHHHHHLL"
#: Unconditional settings of the reference (co-generation, sequence-/backbone-only).
UNCONDITIONAL = {"max_iter": 500, "strategy": "annealing@2.0:1.0", "unmasking": "stochastic1.0"}
#: Conditional settings of the reference (folding, inverse folding): argmax, deterministic.
CONDITIONAL = {"max_iter": 100, "strategy": "argmax", "unmasking": "deterministic"}


def _sampler(defaults: dict[str, Any]):
    return dataclasses.field(default_factory=lambda: SamplerConfig(**defaults))


class _TaskConfig(StageConfig):
    """A task section whose ``sampling`` keys are merged onto the task's own defaults.

    Without this, ``sampling: {max_iter: 20}`` under ``cogen`` would silently fall back to the
    sampler's conditional defaults (argmax) instead of the unconditional ones."""

    SAMPLING_DEFAULTS: ClassVar[dict[str, Any]] = UNCONDITIONAL

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = ""):
        data = dict(data or {})
        where = where or cls.__name__
        if isinstance(data.get("sampling"), dict):
            data["sampling"] = SamplerConfig.from_dict(
                {**cls.SAMPLING_DEFAULTS, **data["sampling"]}, f"{where}.sampling"
            )
        return super().from_dict(data, where)


def _check_lengths(where: str, lengths: tuple[int, ...], per_length: int) -> None:
    if not lengths or any(int(n) < 1 for n in lengths):
        raise ConfigError(f"{where}.lengths must be a non-empty list of positive ints, got {lengths}")
    if per_length < 1:
        raise ConfigError(f"{where}.samples_per_length must be >= 1, got {per_length}")


@dataclasses.dataclass(frozen=True)
class LengthTaskConfig(_TaskConfig):
    """Unconditional generation at fixed lengths (co-generation, sequence-only, backbone-only).

    Parameters
    ----------
    lengths : list of int
        Protein lengths (paper: 100, 200, 300, 400, 500).
    samples_per_length : int
        Samples per length (paper: 100).
    sampling : SamplerConfig
        Decoding settings (paper: 500 steps, annealing@2.0:1.0, stochastic1.0 unmasking).
    """

    lengths: tuple[int, ...] = (100, 200, 300, 400, 500)
    samples_per_length: int = 100
    sampling: SamplerConfig = _sampler(UNCONDITIONAL)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lengths", tuple(int(n) for n in self.lengths))
        _check_lengths(type(self).__name__, self.lengths, self.samples_per_length)


@dataclasses.dataclass(frozen=True)
class ConditionalTaskConfig(_TaskConfig):
    """Folding or inverse folding of given proteins.

    Parameters
    ----------
    split : str
        Split of the token shards to read targets from (``test``).
    max_targets : int
        Keep the first N targets (by id); 0 = all.
    max_length : int
        Skip targets longer than this (0 = no limit).
    sampling : SamplerConfig
        Decoding settings (paper: 100 steps, argmax, deterministic unmasking).
    """

    SAMPLING_DEFAULTS: ClassVar[dict[str, Any]] = CONDITIONAL

    split: str = "test"
    max_targets: int = 0
    max_length: int = 0
    sampling: SamplerConfig = _sampler(CONDITIONAL)

    def __post_init__(self) -> None:
        if self.max_targets < 0 or self.max_length < 0:
            raise ConfigError("max_targets and max_length must be >= 0")


@dataclasses.dataclass(frozen=True)
class ScaffoldConfig(_TaskConfig):
    """Motif scaffolding problems and settings.

    Parameters
    ----------
    benchmark : str or None
        Benchmark table (``resources/scaffolding/benchmark.csv``); structure files beside it.
        None: only ``problems``.
    subset : list of str
        Benchmark targets to run (empty = every target whose structure file is present).
    problems : list of dict
        The user's own problems: ``{name, pdb, contig, length}`` (``length`` optional).
    samples_per_problem : int
        Designs per problem (paper: 100); each draws its own spacer lengths.
    sampling : SamplerConfig
        Decoding settings (as co-generation).
    """

    benchmark: str | None = "resources/scaffolding/benchmark.csv"
    subset: tuple[str, ...] = ()
    problems: tuple[dict, ...] = ()
    samples_per_problem: int = 100
    sampling: SamplerConfig = _sampler(UNCONDITIONAL)

    def __post_init__(self) -> None:
        object.__setattr__(self, "subset", tuple(str(s) for s in self.subset))
        object.__setattr__(self, "problems", tuple(dict(p) for p in self.problems))
        if self.samples_per_problem < 1:
            raise ConfigError(f"scaffold.samples_per_problem must be >= 1, got {self.samples_per_problem}")
        if self.benchmark is None and not self.problems:
            raise ConfigError("scaffold: give a benchmark table, problems, or both")


@dataclasses.dataclass(frozen=True)
class SSCogenConfig(_TaskConfig):
    """Secondary-structure-conditioned co-generation (:mod:`dplm2.generate.ss_guidance`).

    Parameters
    ----------
    ss : list of str
        Target strings, one letter per residue: H (helix), E (strand), L / C / - (loop). Each
        gives ``samples_per_ss`` designs of its length.
    samples_per_ss : int
        Designs per target string.
    guidance_weight : float
        ``w`` in ``logits += w * log p(ss | code)`` (0 = plain co-generation; 1 = Bayes).
    table_split : str
        Split of the token/chain shards the ``p(SS | code)`` table is counted on.
    table_smoothing : float
        Laplace pseudo-count pulling each code's SS distribution toward the overall one.
    sampling : SamplerConfig
        Decoding settings (as co-generation).
    """

    ss: tuple[str, ...] = (DEFAULT_SS,)
    samples_per_ss: int = 100
    guidance_weight: float = 1.0
    table_split: str = "train"
    table_smoothing: float = 1.0
    sampling: SamplerConfig = _sampler(UNCONDITIONAL)

    def __post_init__(self) -> None:
        from dplm2.generate.ss_guidance import parse_ss

        if isinstance(self.ss, str):
            object.__setattr__(self, "ss", (self.ss,))
        object.__setattr__(self, "ss", tuple(self.ss))
        if not self.ss:
            raise ConfigError("ss_cogen.ss: give at least one secondary-structure string")
        for i, s in enumerate(self.ss):
            try:
                parse_ss(s)
            except ValueError as exc:
                raise ConfigError(f"ss_cogen.ss[{i}]: {exc}") from None
        if self.samples_per_ss < 1:
            raise ConfigError(f"ss_cogen.samples_per_ss must be >= 1, got {self.samples_per_ss}")
        if not float(self.guidance_weight) >= 0:
            raise ConfigError(f"ss_cogen.guidance_weight must be >= 0, got {self.guidance_weight}")
        if not float(self.table_smoothing) > 0:
            raise ConfigError(f"ss_cogen.table_smoothing must be > 0, got {self.table_smoothing}")


@dataclasses.dataclass(frozen=True)
class GenerateConfig(StageConfig):
    """The ``generate:`` section.

    Parameters
    ----------
    tasks : list of str
        Tasks the workflow runs (read by the rule file; the commands ignore it).
    seed : int
        Base seed; each task and batch derives its own generator from it.
    batch_size : int
        Proteins per forward pass (samples of one length are batched together).
    decode_batch_size : int
        Structures per tokenizer-decoder pass.
    """

    tasks: tuple[str, ...] = ("cogen", "folding", "inverse_folding", "scaffold")
    seed: int = 0
    batch_size: int = 16
    decode_batch_size: int = 8
    cogen: LengthTaskConfig = dataclasses.field(default_factory=LengthTaskConfig)
    sequence: LengthTaskConfig = dataclasses.field(default_factory=LengthTaskConfig)
    backbone: LengthTaskConfig = dataclasses.field(default_factory=LengthTaskConfig)
    folding: ConditionalTaskConfig = dataclasses.field(default_factory=ConditionalTaskConfig)
    inverse_folding: ConditionalTaskConfig = dataclasses.field(default_factory=ConditionalTaskConfig)
    scaffold: ScaffoldConfig = dataclasses.field(default_factory=ScaffoldConfig)
    ss_cogen: SSCogenConfig = dataclasses.field(default_factory=SSCogenConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown:
            raise ConfigError(f"generate.tasks: unknown task(s) {unknown}; known: {list(TASKS)}")
        if self.batch_size < 1 or self.decode_batch_size < 1:
            raise ConfigError("generate.batch_size and decode_batch_size must be >= 1")
