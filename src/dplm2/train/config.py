"""Optimisation settings shared by every training stage."""

from __future__ import annotations

import dataclasses

from dplm2.config import ConfigError, StageConfig


@dataclasses.dataclass(frozen=True)
class TrainConfig(StageConfig):
    """Settings of :class:`dplm2.train.Trainer`.

    The learning rate rises linearly from ``start_lr`` to ``lr`` over ``warmup_steps``, then
    decays polynomially (``decay_power``; 1.0 = linear) to ``end_lr`` at ``max_steps``:
    the DPLM-2 LM schedule (warm-up 2000, power 1, end 1e-5) and the tokenizer's linear decay
    to 1e-7 (warm-up 0) are both this one function. Keys, defaults and allowed values: the
    schema's ``lm.train`` (the default section) and ``tokenizer.train`` (the spec's tokenizer
    schedule).
    """

    SECTION = "lm.train"

    max_steps: int
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    warmup_steps: int
    start_lr: float
    end_lr: float
    decay_power: float
    clip_norm: float | None
    grad_accum: int
    log_every: int
    val_every: int
    ckpt_every: int
    keep_checkpoints: int
    seed: int
    precision: str
    max_bad_steps: int

    def __post_init__(self) -> None:
        if self.warmup_steps > self.max_steps:
            raise ConfigError(f"warmup_steps must be in [0, max_steps], got {self.warmup_steps}")
