"""The shared training loop: exact resume, NaN guard, atomic checkpoints, metrics, DDP.

Contracts with the model code
-----------------------------
``loss_fn(model, batch) -> (loss, metrics)``
    ``model`` is the (possibly DDP-wrapped) module: call ``model(...)`` so gradients are
    synchronised. ``metrics`` is a dict of floats logged per step.
``batch_fn(micro_step, rank, world_size) -> batch``
    A pure function of its arguments (and the model's seed): this is what makes resume exact
    (a restarted run asks for the same batches). With ``grad_accum = k`` optimiser step ``s``
    consumes micro-steps ``s*k .. s*k+k-1``.
``val_fn(model) -> dict``
    Called on rank 0 with the unwrapped model in eval mode under ``torch.no_grad``.
``export_fn(model, folder)``
    Writes the final weights (e.g. ``save_pretrained``) on rank 0.
``count_tokens(batch) -> int``
    Optional: the tokens (residues) a batch holds, for the ``tokens_per_s`` metric.

Every metrics row also goes to TensorBoard as the run goes (:mod:`dplm2.train.tracking`).

Why hand-written rather than Lightning/Accelerate: the loop is ~250 lines, the exact-resume
and NaN-skip semantics the project promises are easier to prove on code we own, and neither
library gives per-step RNG seeding from ``(seed, step)`` out of the box.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from tqdm.auto import tqdm

from dplm2 import __version__
from dplm2.io import atomic_path, write_parquet
from dplm2.io.weights import io_error, record_checksum, verify_weights
from dplm2.train.config import TrainConfig
from dplm2.train.distributed import DistEnv, dist_env
from dplm2.train.schedule import lr_at
from dplm2.train.tracking import RunTracker

log = logging.getLogger(__name__)

LossFn = Callable[[torch.nn.Module, Any], tuple[torch.Tensor, dict[str, float]]]
BatchFn = Callable[[int, int, int], Any]

#: The metrics history (steps 1..N) inside each checkpoint ``state/step-N/``.
HISTORY_NAME = "metrics.parquet"


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps produced a NaN/inf loss or gradient."""


def hardware_info(device: torch.device | None = None) -> dict[str, Any]:
    """What the run ran on, for training records."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "dplm2": __version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if device is not None:
        info["device"] = str(device)
    return info


def to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors nested in dicts/lists/tuples to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _step_seed(seed: int, step: int, rank: int) -> int:
    # Distinct, reproducible stream per (seed, step, rank); fits in 63 bits.
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)


class Trainer:
    """Train ``model`` with ``loss_fn`` on batches from ``batch_fn``; see the module docstring.

    Outputs under ``out_dir``: ``state/step-XXXXXXXX/`` (resumable checkpoints, written
    atomically, ``keep_checkpoints`` newest kept; each holds the weights, the optimizer state
    and the metrics history up to its step) and ``metrics.parquet`` (one row per step since
    step 1, written with the export when training is complete). A run whose newest checkpoint
    is already at ``max_steps`` trains nothing and rewrites both from that checkpoint, so the
    outputs can always be recreated from ``state/``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: LossFn,
        batch_fn: BatchFn,
        cfg: TrainConfig,
        out_dir: str | os.PathLike,
        val_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
        export_fn: Callable[[torch.nn.Module, Path], None] | None = None,
        param_groups: list[dict[str, Any]] | None = None,
        env: DistEnv | None = None,
        find_unused_parameters: bool = False,
        desc: str = "train",
        count_tokens: Callable[[Any], int] | None = None,
    ) -> None:
        self.cfg = cfg
        self.env = env or dist_env()
        self.out_dir = Path(out_dir)
        self.state_dir = self.out_dir / "state"
        self.metrics_path = self.out_dir / "metrics.parquet"
        self.loss_fn, self.batch_fn, self.val_fn, self.export_fn = loss_fn, batch_fn, val_fn, export_fn
        self.desc = desc
        self.count_tokens = count_tokens
        self._tokens = 0  # tokens of the current step's micro-batches on this rank
        self.model = model.to(self.env.device)
        params = param_groups or [{"params": [p for p in model.parameters() if p.requires_grad]}]
        self.optimizer = torch.optim.AdamW(
            params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay
        )
        self.wrapped: torch.nn.Module = self.model
        if self.env.distributed:
            ids = [self.env.device.index] if self.env.device.type == "cuda" else None
            self.wrapped = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=find_unused_parameters
            )
        self.use_bf16 = cfg.precision == "bf16" or (
            cfg.precision == "auto"
            and self.env.device.type == "cuda"
            and torch.cuda.is_bf16_supported()
        )
        self.step = 0
        self.bad_in_a_row = 0
        self.wall_before = 0.0  # wall time of earlier (resumed) runs
        self.rows: list[dict[str, Any]] = []

    # -- checkpoints -------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first (a folder without trainer.json is ignored)."""
        if not self.state_dir.is_dir():
            return []
        done = [p for p in self.state_dir.glob("step-*") if (p / "trainer.json").is_file()]
        return sorted(done, key=lambda p: int(p.name.split("-")[1]))

    def save_checkpoint(self) -> Path | None:
        if not self.env.is_main:
            return None
        target = self.state_dir / f"step-{self.step:08d}"
        try:
            with atomic_path(target, is_dir=True) as tmp:
                self._write_checkpoint(tmp)
        except (OSError, SafetensorError) as exc:  # the writers' I/O errors name no file
            if str(target) in str(exc):
                raise
            raise io_error(exc, "the checkpoint", target) from exc
        for old in self.checkpoints()[: -self.cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        return target

    def _write_checkpoint(self, tmp: Path) -> None:
        weights = tmp / "model.safetensors"
        save_model(self.model, str(weights))
        record_checksum(weights)
        # Through a file object: torch's own writer reports a full disk as
        # "inline_container.cc: unexpected pos"; Python's file object raises ENOSPC.
        with open(tmp / "optimizer.pt", "wb") as fh:
            torch.save(self.optimizer.state_dict(), fh)
        # The history up to this step travels with the checkpoint: a resume (even after the
        # declared metrics.parquet was deleted) continues it instead of starting at this step.
        if self.rows:
            write_parquet(self._metrics_frame(), tmp / HISTORY_NAME, {"stage": self.desc})
        record = {
            "step": self.step,
            "bad_in_a_row": self.bad_in_a_row,
            "wall_s": self.wall_before + (time.time() - self._t0),
            "config": self.cfg.to_dict(),
            "version": __version__,
        }
        # trainer.json last: its presence marks the checkpoint complete.
        (tmp / "trainer.json").write_text(json.dumps(record, indent=2))

    def load_latest(self) -> bool:
        """Resume from the newest complete checkpoint; returns whether one was found."""
        ckpts = self.checkpoints()
        if not ckpts:
            return False
        path = ckpts[-1]
        try:
            record = json.loads((path / "trainer.json").read_text())
            verify_weights(path / "model.safetensors", fix="")
            load_model(self.model, str(path / "model.safetensors"), device=str(self.env.device))
            # weights_only=True: a checkpoint can never execute code on load.
            opt_state = torch.load(
                path / "optimizer.pt", map_location=self.env.device, weights_only=True
            )
            self.optimizer.load_state_dict(opt_state)
            history = path / HISTORY_NAME
            # Checkpoints written before the history moved into them: the old metrics table.
            source = history if history.is_file() else self.metrics_path
            rows = pl.read_parquet(source).to_dicts() if source.is_file() else []
        except Exception as exc:
            raise ValueError(
                f"{path}: cannot resume from this checkpoint ({exc}); delete this folder to "
                "resume from the previous checkpoint (if any) or the whole state/ folder to "
                "start over") from exc
        self.step = int(record["step"])
        self.bad_in_a_row = int(record.get("bad_in_a_row", 0))
        self.wall_before = float(record.get("wall_s", 0.0))
        self.rows = [r for r in rows if r["step"] <= self.step]
        if len(self.rows) != self.step:
            log.warning("%s: metrics history has %d of %d steps", path, len(self.rows), self.step)
        log.info("resumed from %s (step %d)", path, self.step)
        return True

    def _metrics_frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.rows, infer_schema_length=None)

    def _write_metrics(self) -> None:
        if self.rows and self.env.is_main:
            write_parquet(self._metrics_frame(), self.metrics_path, {"stage": self.desc})

    # -- the loop ----------------------------------------------------------------------
    def _forward_backward(self, micro: int, last: bool) -> tuple[torch.Tensor, dict[str, float]]:
        batch = self.batch_fn(micro, self.env.rank, self.env.world_size)
        if self.count_tokens is not None:
            self._tokens += int(self.count_tokens(batch))
        batch = to_device(batch, self.env.device)
        sync = (
            contextlib.nullcontext()
            if last or not self.env.distributed
            else self.wrapped.no_sync()  # type: ignore[operator]
        )
        autocast = (
            torch.autocast(self.env.device.type, dtype=torch.bfloat16)
            if self.use_bf16
            else contextlib.nullcontext()
        )
        with sync:
            with autocast:
                loss, metrics = self.loss_fn(self.wrapped, batch)
            if torch.isfinite(loss):
                (loss / self.cfg.grad_accum).backward()
        return loss.detach(), metrics

    def _grads_finite(self) -> bool:
        for p in self.model.parameters():
            if p.grad is not None and not torch.isfinite(p.grad).all():
                return False
        return True

    def train_step(self) -> dict[str, Any]:
        cfg = self.cfg
        torch.manual_seed(_step_seed(cfg.seed, self.step, self.env.rank))
        self.wrapped.train()
        lr = lr_at(self.step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        t_step, self._tokens = time.time(), 0
        losses, sums, counts = [], {}, {}
        for k in range(cfg.grad_accum):
            micro = self.step * cfg.grad_accum + k
            loss, m = self._forward_backward(micro, last=k == cfg.grad_accum - 1)
            losses.append(loss)
            for key, v in m.items():  # a metric's mean over the micro-batches that report it
                sums[key] = sums.get(key, 0.0) + float(v)
                counts[key] = counts.get(key, 0) + 1
        metrics = {key: sums[key] / counts[key] for key in sums}
        loss = torch.stack(losses).float().mean()
        ok = bool(torch.isfinite(loss)) and self._grads_finite()
        if self.env.distributed:  # every rank must agree to skip, or DDP deadlocks
            flag = torch.tensor([1.0 if ok else 0.0], device=self.env.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
            ok = bool(flag.item() > 0)
        row: dict[str, Any] = {"step": self.step + 1, "lr": lr, "loss": float(loss)}
        if ok:
            grad_norm = torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), cfg.clip_norm if cfg.clip_norm else float("inf")
            )
            self.optimizer.step()
            self.bad_in_a_row = 0
            row.update(metrics, grad_norm=float(grad_norm), skipped=False)
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self.bad_in_a_row += 1
            log.warning(
                "step %d: non-finite loss/gradient (loss=%s); step skipped (%d in a row)",
                self.step + 1, float(loss), self.bad_in_a_row,
            )
            row.update(skipped=True)
            if self.bad_in_a_row >= cfg.max_bad_steps:
                raise NonFiniteLossError(
                    f"{self.bad_in_a_row} consecutive non-finite steps (last at step "
                    f"{self.step + 1}); stopping without writing a checkpoint. Lower the "
                    "learning rate or check the input data."
                )
        self.step += 1
        step_time = time.time() - t_step
        row["step_time_s"] = step_time
        if self.count_tokens is not None:  # every rank holds about as many tokens as this one
            row["tokens_per_s"] = self._tokens * self.env.world_size / max(step_time, 1e-9)
        row["wall_s"] = self.wall_before + (time.time() - self._t0)
        return row

    def validate(self) -> dict[str, float]:
        if self.val_fn is None or not self.env.is_main:
            return {}
        self.model.eval()
        with torch.no_grad():
            out = self.val_fn(self.model)
        self.model.train()
        return {f"val_{k}" if not k.startswith("val_") else k: float(v) for k, v in out.items()}

    def fit(self) -> dict[str, Any]:
        """Run (or resume) training to ``max_steps``; returns the last metrics row."""
        cfg = self.cfg
        self._t0 = time.time()
        self.load_latest()
        if self.step >= cfg.max_steps:
            log.info("already at step %d of %d: nothing to train", self.step, cfg.max_steps)
        bar = tqdm(
            total=cfg.max_steps, initial=self.step, desc=self.desc,
            disable=not self.env.is_main, dynamic_ncols=True, mininterval=2.0,
        )
        row: dict[str, Any] = self.rows[-1] if self.rows else {}
        # live dashboards (TensorBoard, W&B) on rank 0; flushed at every checkpoint
        tracker = RunTracker(self.out_dir, self.desc, self.step, cfg.to_dict()) if self.env.is_main else None
        while self.step < cfg.max_steps:
            row = self.train_step()
            last = self.step == cfg.max_steps
            if cfg.val_every and (self.step % cfg.val_every == 0 or last) or (
                last and self.val_fn is not None
            ):
                row.update(self.validate())
            self.rows.append(row)
            if tracker is not None:
                tracker.log(row)
            if self.step % max(cfg.log_every, 1) == 0 or last:
                bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
                log.debug("step %d %s", self.step, row)
            bar.update(1)
            if self.step % cfg.ckpt_every == 0 or last:
                self.save_checkpoint()
                if tracker is not None:
                    tracker.flush()
                if self.env.distributed:
                    torch.distributed.barrier()
        bar.close()
        if tracker is not None:
            tracker.close()
        # Complete: the declared outputs are (re)written from the final state, also when this
        # run trained nothing (a rerun after the outputs were deleted).
        if self.env.is_main:
            try:
                self._write_metrics()
                if self.export_fn is not None:
                    self.model.eval()
                    self.export_fn(self.model, self.out_dir)
            except (OSError, SafetensorError) as exc:
                if str(self.out_dir) in str(exc):
                    raise
                raise io_error(exc, "the trained model into", self.out_dir) from exc
        return row
