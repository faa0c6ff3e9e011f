"""Typed settings of the evaluate stage (config section ``evaluate:``).

Validated once by ``workflow/schemas/evaluate.schema.yaml`` and built here into frozen
dataclasses; each rule passes only the sub-section it uses (``--params``), so changing, say, the
diversity threshold reruns the diversity rule and nothing upstream.
"""

from __future__ import annotations

import dataclasses

from dplm2.config import ConfigError, StageConfig

TASKS = ("cogen", "folding", "inverse_folding", "scaffold", "ss_cogen")

#: Metrics computed for each generation task (spec §6). ``refold`` is the cached folding-backend
#: prediction that the self-consistency metrics share; it is not a metric table itself.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "cogen": ("self_consistency", "diversity", "novelty"),
    "folding": ("fold_accuracy",),
    "inverse_folding": ("recovery", "self_consistency"),
    "scaffold": ("self_consistency", "motif"),
    # secondary-structure-guided co-generation: the same metrics as co-generation
    "ss_cogen": ("self_consistency", "diversity", "novelty"),
}


@dataclasses.dataclass(frozen=True)
class FoldingConfig(StageConfig):
    """Which model refolds generated / designed sequences (scTM, scRMSD, pLDDT)."""

    backend: str = "esmfold"
    esmfold_model: str = "facebook/esmfold_v1"
    device: str = "auto"
    num_recycles: int | None = None
    chunk_size: int | None = None
    batch_size: int = 1
    dplm2_max_iter: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.backend not in ("esmfold", "dplm2"):
            raise ConfigError(f"evaluate.folding.backend must be esmfold or dplm2, got {self.backend!r}")
        if self.batch_size < 1:
            raise ConfigError("evaluate.folding.batch_size must be >= 1")


@dataclasses.dataclass(frozen=True)
class SelfConsistencyConfig(StageConfig):
    """scTM / scRMSD and the two designability rules."""

    designable_sctm: float = 0.5
    designable_scrmsd: float = 2.0
    tm_sequences: str = "poly_ala"

    def __post_init__(self) -> None:
        if self.tm_sequences not in ("poly_ala", "native"):
            raise ConfigError("evaluate.self_consistency.tm_sequences must be poly_ala or native")


@dataclasses.dataclass(frozen=True)
class FoldAccuracyConfig(StageConfig):
    """Folding task: predicted vs true structure."""

    tm_threshold: float = 0.8


@dataclasses.dataclass(frozen=True)
class DiversityConfig(StageConfig):
    """Inner-TM per length and clusters of designable samples."""

    backend: str = "tmalign"
    tm_threshold: float = 0.5
    linkage: str = "greedy"
    designable_by: str = "sctm"
    foldseek_binary: str = "foldseek"

    def __post_init__(self) -> None:
        if self.backend not in ("tmalign", "foldseek"):
            raise ConfigError("evaluate.diversity.backend must be tmalign or foldseek")
        if self.linkage not in ("greedy", "complete"):
            raise ConfigError("evaluate.diversity.linkage must be greedy or complete")
        if self.designable_by not in ("sctm", "scrmsd", "both", "all"):
            raise ConfigError("evaluate.diversity.designable_by must be sctm, scrmsd, both or all")


@dataclasses.dataclass(frozen=True)
class NoveltyConfig(StageConfig):
    """Max TM-score of each sample to the training structures."""

    split: str = "train"
    max_references: int | None = None
    prefilter: str = "length_bound"
    parts: int | None = None

    def __post_init__(self) -> None:
        if self.prefilter not in ("length_bound", "none"):
            raise ConfigError("evaluate.novelty.prefilter must be length_bound or none")
        if self.parts is not None and self.parts < 1:
            raise ConfigError("evaluate.novelty.parts must be >= 1 (or null)")


@dataclasses.dataclass(frozen=True)
class MotifConfig(StageConfig):
    """Motif-scaffolding success criteria."""

    motif_rmsd: float = 1.0
    sctm: float = 0.8
    atoms: str = "ca"

    def __post_init__(self) -> None:
        if self.atoms not in ("ca", "backbone"):
            raise ConfigError("evaluate.motif.atoms must be ca or backbone")


@dataclasses.dataclass(frozen=True)
class EvaluateConfig(StageConfig):
    """The whole ``evaluate:`` section."""

    tasks: tuple[str, ...] | list[str] = ("cogen",)
    folding: FoldingConfig = dataclasses.field(default_factory=FoldingConfig)
    self_consistency: SelfConsistencyConfig = dataclasses.field(default_factory=SelfConsistencyConfig)
    fold_accuracy: FoldAccuracyConfig = dataclasses.field(default_factory=FoldAccuracyConfig)
    diversity: DiversityConfig = dataclasses.field(default_factory=DiversityConfig)
    novelty: NoveltyConfig = dataclasses.field(default_factory=NoveltyConfig)
    motif: MotifConfig = dataclasses.field(default_factory=MotifConfig)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown:
            raise ConfigError(f"evaluate.tasks: unknown task(s) {unknown}; allowed {list(TASKS)}")
        object.__setattr__(self, "tasks", tuple(self.tasks))
