"""Live training dashboards: TensorBoard event files, and Weights & Biases when asked for.

The trainer hands every metrics row (one per optimiser step, validation merged in) to
:class:`RunTracker`, which writes it as scalars under ``<out_dir>/tensorboard/`` as the run goes,
so a run can be watched while it trains::

    tensorboard --logdir results        # every training under results/, one run each

Scalars are grouped by kind (TensorBoard draws one section per prefix): ``train/`` (losses),
``accuracy/``, ``task/<task>/`` (the LM's per-task losses), ``val/``, ``codes/`` (the
tokenizer's codebook use), ``optim/`` (learning rate, gradient norm, skipped steps) and
``speed/`` (step time, tokens per second, wall time). A per-modality value of a step whose tasks
left that modality out (``masked_struct == 0`` or ``masked_aa == 0``) is not logged: it would be
a meaningless 0, not a loss.

W&B is optional and never required: when the ``wandb`` package is installed and the environment
names a project (``WANDB_PROJECT``), the same scalars go to W&B too, offline unless
``WANDB_MODE`` says otherwise (``wandb sync`` uploads an offline run later).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The two halves of the LM's input; a key ending in ``_<modality>`` belongs to one.
MODALITIES = ("struct", "aa")
#: Row keys that are not scalars to plot.
NOT_SCALARS = ("step",)
OPTIM = ("lr", "grad_norm", "skipped")
SPEED = ("step_time_s", "tokens_per_s", "wall_s")


def absent_modalities(row: dict[str, Any]) -> set[str]:
    """Modalities with no masked (trained) position in this step: ``masked_<m> == 0``."""
    return {m for m in MODALITIES if f"masked_{m}" in row and row[f"masked_{m}"] == 0}


def scalar_tag(key: str) -> str:
    """The TensorBoard tag of a metrics-row key (``val_ca_rmsd`` -> ``val/ca_rmsd``)."""
    if key.startswith("val_"):
        return "val/" + key[len("val_"):]
    if key in OPTIM:
        return f"optim/{key}"
    if key in SPEED:
        return f"speed/{key}"
    if key.startswith("task_loss_"):  # task_loss_<task>_<modality>
        task, _, mod = key[len("task_loss_"):].rpartition("_")
        return f"task/{task}/loss_{mod}"
    if key.startswith("acc"):
        return f"accuracy/{key}"
    if key.startswith("masked_"):
        return f"batch/{key}"
    if "codes" in key or "perplexity" in key:
        return f"codes/{key}"
    return f"train/{key}"


def row_scalars(row: dict[str, Any]) -> dict[str, float]:
    """``{tag: value}`` for the finite numeric values of a metrics row (see module docstring)."""
    absent = absent_modalities(row)
    out: dict[str, float] = {}
    for key, value in row.items():
        if key in NOT_SCALARS or value is None or isinstance(value, str):
            continue
        if any(key.endswith(f"_{m}") and not key.startswith("masked_") for m in absent):
            continue
        v = float(value)
        if math.isfinite(v):
            out[scalar_tag(key)] = v
    return out


def _wandb_wanted() -> bool:
    return bool(os.environ.get("WANDB_PROJECT")) and importlib.util.find_spec("wandb") is not None


class RunTracker:
    """TensorBoard (+ optional W&B) logging of one training run in ``out_dir``.

    ``resume_step``: the step the run resumes from (0 for a fresh run). A fresh run removes the
    event files of an earlier run in the same folder; a resumed run hides the events an
    interrupted run logged after its last checkpoint (TensorBoard's ``purge_step``), so the
    curves continue without a doubled stretch.
    """

    def __init__(self, out_dir: str | os.PathLike, desc: str, resume_step: int = 0,
                 config: dict[str, Any] | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(out_dir) / "tensorboard"
        if resume_step == 0 and self.log_dir.exists():
            shutil.rmtree(self.log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=resume_step + 1,
                                    flush_secs=30)
        if resume_step == 0 and config:
            # the run's settings, readable in TensorBoard's Text tab
            lines = "\n".join(f"    {k}: {v}" for k, v in sorted(config.items()))
            self.writer.add_text("config", lines, 0)
        self.wandb = None
        if _wandb_wanted():
            import wandb

            run_id = hashlib.sha256(str(Path(out_dir).resolve()).encode()).hexdigest()[:12]
            self.wandb = wandb.init(
                project=os.environ["WANDB_PROJECT"], name=desc, id=f"{desc}-{run_id}",
                resume="allow", dir=str(Path(out_dir)), config=config or {},
                mode=os.environ.get("WANDB_MODE", "offline"),
            )
        log.info("%s: TensorBoard logs in %s%s", desc, self.log_dir,
                 " (and W&B)" if self.wandb is not None else "")

    def log(self, row: dict[str, Any]) -> None:
        """Write one metrics row at its ``step``."""
        step = int(row["step"])
        scalars = row_scalars(row)
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


def read_scalars(log_dir: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` of the TensorBoard event files in ``log_dir``, as
    TensorBoard shows them (events hidden by a resume's purge left out)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
