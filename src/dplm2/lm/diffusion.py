"""Discrete absorbing diffusion for two modalities: timesteps per task, q_sample, loss weights.

Spec §4: T = 500; a half with timestep t has each non-special token replaced by its modality's
mask token with probability t/T; the loss is cross-entropy at masked positions only, weighted
per sample by (T - t + 1)/T ("linear") or 1 ("constant"). Structure and amino-acid halves get
timesteps according to the sample's task:

=================  =================  ==========================================
task               timesteps          attention
=================  =================  ==========================================
single_modality    t_s, t_a indep.    halves blind to each other (block-diagonal)
folding            t_a = 0, t_s ~ U   full
inverse_folding    t_s = 0, t_a ~ U   full
joint              t_s = t_a ~ U      full
independent        t_s, t_a indep.    full
=================  =================  ==========================================

Tasks are drawn per sample (not per batch) with the configured ratios.
"""

from __future__ import annotations

import dataclasses

import torch

from dplm2.config import ConfigError, StageConfig
from dplm2.lm.vocab import MASK, STRUCT_MASK, special_mask

TASKS: tuple[str, ...] = ("single_modality", "folding", "inverse_folding", "joint", "independent")


@dataclasses.dataclass(frozen=True)
class TaskMix(StageConfig):
    """Fraction of samples per task (spec §4, reference 150M/650M config). Must sum to 1."""

    single_modality: float = 0.25
    folding: float = 0.25
    inverse_folding: float = 0.25
    joint: float = 0.25
    independent: float = 0.0

    def __post_init__(self) -> None:
        probs = self.probs()
        if min(probs) < 0 or abs(sum(probs) - 1.0) > 1e-6:
            raise ConfigError(f"task_mix ratios must be >= 0 and sum to 1, got {self.to_dict()}")

    def probs(self) -> list[float]:
        return [float(getattr(self, name)) for name in TASKS]


@dataclasses.dataclass(frozen=True)
class DiffusionConfig(StageConfig):
    """Noise process and loss weighting."""

    timesteps: int = 500
    weighting: str = "linear"
    task_mix: TaskMix = dataclasses.field(default_factory=TaskMix)

    def __post_init__(self) -> None:
        if self.timesteps < 1:
            raise ConfigError(f"timesteps must be >= 1, got {self.timesteps}")
        if self.weighting not in ("linear", "constant"):
            raise ConfigError(f"weighting must be linear|constant, got {self.weighting!r}")


@dataclasses.dataclass(frozen=True)
class Noise:
    """What :func:`draw_tasks` decided for a batch; every field is (B,)."""

    task: torch.Tensor  # long, index into TASKS
    t_struct: torch.Tensor  # long in [0, T]
    t_aa: torch.Tensor  # long in [0, T]
    single_modality: torch.Tensor  # bool


def draw_tasks(
    batch: int, cfg: DiffusionConfig, generator: torch.Generator | None = None
) -> Noise:
    """Draw a task and the two timesteps for each of ``batch`` samples."""
    probs = torch.tensor(cfg.task_mix.probs())
    task = torch.multinomial(probs, batch, replacement=True, generator=generator)  # (B,)
    T = cfg.timesteps
    t1 = torch.randint(1, T + 1, (batch,), generator=generator)
    t2 = torch.randint(1, T + 1, (batch,), generator=generator)
    zero = torch.zeros_like(t1)
    name = {n: i for i, n in enumerate(TASKS)}
    t_s = torch.where(task == name["inverse_folding"], zero, t1)
    t_a = torch.where(task == name["folding"], zero, t2)
    t_a = torch.where(task == name["joint"], t_s, t_a)
    return Noise(
        task=task, t_struct=t_s, t_aa=t_a, single_modality=task == name["single_modality"]
    )


def q_sample(
    input_ids: torch.Tensor,
    t_struct: torch.Tensor,
    t_aa: torch.Tensor,
    timesteps: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask each non-special token with probability t/T of its half.

    Parameters
    ----------
    input_ids : (B, N=2W) long
        Clean two-half input (structure half first).
    t_struct, t_aa : (B,) long
        Timesteps of the structure and amino-acid halves, in [0, T].

    Returns
    -------
    noised : (B, N) long
        ``<mask_struct>`` / ``<mask>`` at masked positions of the structure / amino-acid half.
    masked : (B, N) bool
        Where tokens were masked (the loss positions).
    """
    batch, n = input_ids.shape
    width = n // 2
    rate = torch.cat(
        [
            (t_struct.float() / timesteps)[:, None].expand(batch, width),
            (t_aa.float() / timesteps)[:, None].expand(batch, width),
        ],
        dim=1,
    )  # (B, N)
    u = torch.rand(input_ids.shape, generator=generator)
    masked = (u < rate.cpu()).to(input_ids.device) & ~special_mask(input_ids)
    half_mask = torch.full_like(input_ids, STRUCT_MASK)
    half_mask[:, width:] = MASK
    return torch.where(masked, half_mask, input_ids), masked


def loss_weight(t: torch.Tensor, cfg: DiffusionConfig) -> torch.Tensor:
    """Per-sample weight: (T - t + 1)/T ("linear", spec default) or 1 ("constant")."""
    if cfg.weighting == "constant":
        return torch.ones_like(t, dtype=torch.float32)
    return (cfg.timesteps - t.float() + 1.0) / cfg.timesteps
