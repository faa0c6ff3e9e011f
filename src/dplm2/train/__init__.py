"""The training loop both models share (tokenizer and language model).

Each model brings only ``loss_fn(model, batch)`` and a pure ``batch_fn(step, rank, world)``;
the loop owns device/precision choice, AdamW + schedule, clipping, accumulation, the NaN guard,
atomic checkpoints with exact resume, the metrics table, tqdm and DDP under ``torchrun``.
"""

from dplm2.train.config import TrainConfig
from dplm2.train.distributed import DistEnv, dist_env, pick_device
from dplm2.train.loop import NonFiniteLossError, Trainer, hardware_info
from dplm2.train.schedule import lr_at

__all__ = [
    "DistEnv",
    "NonFiniteLossError",
    "TrainConfig",
    "Trainer",
    "dist_env",
    "hardware_info",
    "lr_at",
    "pick_device",
]
