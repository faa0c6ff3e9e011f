"""Typed settings of the evaluate stage (config section ``evaluate:``).

Keys, defaults and allowed values: ``dplm2/schemas/evaluate.schema.yaml``; built here into frozen
dataclasses; each rule passes only the sub-section it uses (``--params``), so changing, say, the
diversity threshold reruns the diversity rule and nothing upstream.
"""

from __future__ import annotations

import dataclasses

from dplm2.config import StageConfig

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

    SECTION = "evaluate.folding"

    backend: str
    esmfold_model: str
    device: str
    num_recycles: int | None
    chunk_size: int | None
    batch_size: int
    dplm2_max_iter: int
    seed: int


@dataclasses.dataclass(frozen=True)
class SelfConsistencyConfig(StageConfig):
    """scTM / scRMSD and the two designability rules."""

    SECTION = "evaluate.self_consistency"

    designable_sctm: float
    designable_scrmsd: float
    tm_sequences: str


@dataclasses.dataclass(frozen=True)
class FoldAccuracyConfig(StageConfig):
    """Folding task: predicted vs true structure."""

    SECTION = "evaluate.fold_accuracy"

    tm_threshold: float


@dataclasses.dataclass(frozen=True)
class DiversityConfig(StageConfig):
    """Inner-TM per length and clusters of designable samples."""

    SECTION = "evaluate.diversity"

    backend: str
    tm_threshold: float
    linkage: str
    designable_by: str
    foldseek_binary: str


@dataclasses.dataclass(frozen=True)
class NoveltyConfig(StageConfig):
    """Max TM-score of each sample to the training structures."""

    SECTION = "evaluate.novelty"

    split: str
    max_references: int | None
    prefilter: str
    parts: int | None


@dataclasses.dataclass(frozen=True)
class MotifConfig(StageConfig):
    """Motif-scaffolding success criteria."""

    SECTION = "evaluate.motif"

    motif_rmsd: float
    sctm: float
    atoms: str


@dataclasses.dataclass(frozen=True)
class EvaluateConfig(StageConfig):
    """The whole ``evaluate:`` section."""

    SECTION = "evaluate"

    tasks: tuple[str, ...]
    folding: FoldingConfig
    self_consistency: SelfConsistencyConfig
    fold_accuracy: FoldAccuracyConfig
    diversity: DiversityConfig
    novelty: NoveltyConfig
    motif: MotifConfig
