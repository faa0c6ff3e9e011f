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
    to 1e-7 (warm-up 0) are both this one function.
    """

    max_steps: int = 1000
    lr: float = 1e-4
    betas: tuple[float, float] | list[float] = (0.9, 0.98)
    weight_decay: float = 0.01
    warmup_steps: int = 0
    start_lr: float = 1e-7
    end_lr: float = 1e-7
    decay_power: float = 1.0
    clip_norm: float | None = 1.0
    grad_accum: int = 1
    log_every: int = 10
    val_every: int = 0
    ckpt_every: int = 100
    keep_checkpoints: int = 2
    seed: int = 0
    precision: str = "auto"
    max_bad_steps: int = 10

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.grad_accum < 1:
            raise ConfigError(f"grad_accum must be >= 1, got {self.grad_accum}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"precision must be auto|fp32|bf16, got {self.precision!r}")
        if self.warmup_steps < 0 or self.warmup_steps > self.max_steps:
            raise ConfigError(f"warmup_steps must be in [0, max_steps], got {self.warmup_steps}")
        if len(tuple(self.betas)) != 2:
            raise ConfigError(f"betas must have two values, got {self.betas}")
        if self.ckpt_every < 1 or self.keep_checkpoints < 1 or self.max_bad_steps < 1:
            raise ConfigError("ckpt_every, keep_checkpoints and max_bad_steps must be >= 1")
