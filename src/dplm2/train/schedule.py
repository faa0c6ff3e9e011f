"""Learning-rate schedule: linear warm-up then polynomial decay."""

from __future__ import annotations

from dplm2.train.config import TrainConfig


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate used for optimiser step ``step`` (0-based).

    >>> cfg = TrainConfig.from_dict(
    ...     {"max_steps": 10, "lr": 1.0, "warmup_steps": 2, "start_lr": 0.0, "end_lr": 0.0})
    >>> [round(lr_at(s, cfg), 3) for s in (0, 1, 2, 6, 10)]
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.start_lr + (cfg.lr - cfg.start_lr) * step / cfg.warmup_steps
    span = max(cfg.max_steps - cfg.warmup_steps, 1)
    frac = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
    return cfg.end_lr + (cfg.lr - cfg.end_lr) * (1.0 - frac) ** cfg.decay_power
