"""Diffusion training of the DPLM-2 LM on the shared loop (:class:`dplm2.train.Trainer`).

This module brings only what is model-specific: the loss (the reference's: cross-entropy over
the full vocabulary at masked positions, per-sample weights, mean of the two modalities), the
batch source, the validation pass (cross-entropy and accuracy per modality and task, fixed
noise) and the export.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from dplm2.config import StageConfig
from dplm2.io import atomic_path
from dplm2.lm.data import BatchSource, BatchingConfig, Protein, load_proteins, make_batch
from dplm2.lm.diffusion import TASKS, DiffusionConfig, TaskMix
from dplm2.lm.lora import LoraConfig, apply_lora, merged_copy
from dplm2.lm.model import DPLM2LM
from dplm2.lm.vocab import N_AA, STRUCT_START, VOCAB_SIZE
from dplm2.lm.warm_start import InitConfig
from dplm2.train import TrainConfig, Trainer, dist_env
from dplm2.train.state import (  # noqa: F401  (guard_state: part of this module's API)
    RESUMABLE_TRAIN_KEYS,
    config_fingerprint,
    files_fingerprint,
    guard_state,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LMConfig(StageConfig):
    """The whole ``lm:`` config section (keys, defaults and allowed values:
    dplm2/schemas/lm.schema.yaml)."""

    SECTION = "lm"

    init: InitConfig
    lora: LoraConfig
    diffusion: DiffusionConfig
    data: BatchingConfig
    train: TrainConfig
    nproc_per_node: int
    objective: str
    self_mixup: bool
    bit_loss_ignore_index_bug: bool


def diffusion_loss(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], softmax: str = "full"
) -> tuple[torch.Tensor, dict[str, float]]:
    """The reference's training loss (spec §4, ``StructAARDMCrossEntropyLoss``).

    Per half h (structure, amino acid)::

        loss_h = sum_{i masked in h} w_i * CE_i / max(1, #masked in h)
        loss   = (loss_struct + loss_aa) / 2

    with CE_i the cross-entropy of the logits at position i against its clean token, over
    ``softmax`` = ``full``: all 8229 ids (the reference) or ``modality``: the target's own
    modality's ids only (8196 structure / 33 amino-acid ids; this project's earlier
    definition, kept as ``lm.diffusion.softmax: modality``), and w_i the sample's weight for
    that half. Pad, ``<cls>`` and ``<eos>`` are never masked, so never targets.

    Metrics (all at masked positions of the half ``{struct,aa}``): ``loss_{h}`` the weighted
    term above (under the configured softmax); ``nll_full_{h}`` the unweighted mean
    cross-entropy over all 8229 ids and ``acc_full_{h}`` the accuracy of the argmax over all
    8229 ids (the reference's ``index_accuracy``), both independent of ``softmax`` so runs of
    either definition compare; ``masked_{h}`` the number of masked positions;
    ``task_loss_<task>_{h}`` the weighted term over each task's rows (:func:`task_losses`).
    """
    if softmax not in ("full", "modality"):
        raise ValueError(f"softmax must be full|modality, got {softmax!r}")
    ids, targets, masked = batch["input_ids"], batch["targets"], batch["masked"]
    width = ids.shape[1] // 2
    out = model(ids, batch["single_modality"], select=masked)  # full-vocabulary logits
    parts = {
        "struct": (out.struct, targets[:, :width], masked[:, :width], batch["w_struct"],
                   slice(STRUCT_START, VOCAB_SIZE)),
        "aa": (out.aa, targets[:, width:], masked[:, width:], batch["w_aa"], slice(0, N_AA)),
    }
    losses = []
    metrics: dict[str, float] = {}
    for name, (logits, tgt, sel, w, part) in parts.items():
        y = tgt[sel]  # (M,) target ids
        weight = w[:, None].expand_as(sel)[sel]  # (M,) per-position sample weight
        logits = logits.float()  # (M, V)
        if softmax == "full":
            ce = F.cross_entropy(logits, y, reduction="none")  # (M,)
        else:
            ce = F.cross_entropy(logits[:, part], y - part.start, reduction="none")
        n = max(int(sel.sum()), 1)
        losses.append((weight * ce).sum() / n)
        with torch.no_grad():
            nll = ce if softmax == "full" else F.cross_entropy(logits, y, reduction="none")
            metrics[f"loss_{name}"] = float(losses[-1])
            metrics[f"nll_full_{name}"] = float(nll.sum() / n)
            metrics[f"acc_full_{name}"] = float((logits.argmax(-1) == y).float().sum() / n)
            metrics[f"masked_{name}"] = float(sel.sum())
            metrics.update(task_losses(name, weight * ce, sel, batch.get("task")))
    return (losses[0] + losses[1]) / 2, metrics


def task_losses(half: str, weighted_ce: torch.Tensor, sel: torch.Tensor,
                task: torch.Tensor | None) -> dict[str, float]:
    """``task_loss_<task>_<half>``: a half's weighted loss over the rows of each task the batch
    holds (``weighted_ce`` at the ``sel`` positions in row-major order, ``task`` (B,) indices
    into ``TASKS``); a task with no masked position in that half gets no entry."""
    if task is None or weighted_ce.numel() == 0:
        return {}
    task_of = task[sel.nonzero()[:, 0]]  # (M,) the task of each selected position's row
    out = {}
    for i, name in enumerate(TASKS):
        hit = task_of == i
        n = int(hit.sum())
        if n:
            out[f"task_loss_{name}_{half}"] = float(weighted_ce[hit].detach().sum() / n)
    return out


def bit_diffusion_loss(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], ignore_one: bool = False
) -> tuple[torch.Tensor, dict[str, float]]:
    """The DPLM-2 Bit loss (reference ``DPLM2Bit.compute_loss`` + ``StructAARDMCrossEntropyLoss``).

    Structure: per masked position, the cross-entropy of each of the 13 bit heads against the
    target code's bit, summed over the bits, times the sample weight, summed and divided by the
    number of masked structure positions. Amino acids: cross-entropy over the 33-id head, the
    same weighting and normalisation. Total: the mean of the two.

    ``ignore_one`` reproduces the reference's public code, which passes ``ignore_index = 1``
    (the pad id) to this loss and so drops every bit whose target is 1 (a model trained that
    way learns to predict 0 everywhere); off by default (README: a deliberate deviation).

    Metrics: ``loss_{h}``; ``nll_full_{h}`` (unweighted mean cross-entropy: bit-summed for the
    structure); ``acc_full_{h}`` (structure: all 13 bits right, the reference's
    ``index_accuracy``); ``acc_bit_struct`` (the reference's ``bit_accuracy``); ``masked_{h}``.
    """
    from dplm2.lm.bit import struct_ce, tokens_to_bits

    ids, targets, masked = batch["input_ids"], batch["targets"], batch["masked"]
    width = ids.shape[1] // 2
    out = model(ids, batch["single_modality"], select=masked)
    metrics: dict[str, float] = {}
    sel_s, sel_a = masked[:, :width], masked[:, width:]
    bits = tokens_to_bits(targets[:, :width][sel_s])  # (Ms, 13)
    ce_s = struct_ce(out.struct, bits, ignore_one)  # (Ms,)
    ce_a = F.cross_entropy(out.aa.float(), targets[:, width:][sel_a], reduction="none")  # (Ma,)
    losses = []
    for name, ce, sel, w in (("struct", ce_s, sel_s, batch["w_struct"]),
                             ("aa", ce_a, sel_a, batch["w_aa"])):
        weight = w[:, None].expand_as(sel)[sel]
        n = max(int(sel.sum()), 1)
        losses.append((weight * ce).sum() / n)
        metrics[f"loss_{name}"] = float(losses[-1].detach())
        metrics[f"nll_full_{name}"] = float(ce.detach().sum() / n)
        metrics[f"masked_{name}"] = float(sel.sum())
        metrics.update(task_losses(name, weight * ce, sel, batch.get("task")))
    with torch.no_grad():
        n = max(int(sel_s.sum()), 1)
        hit = out.struct.argmax(-1) == bits  # (Ms, 13)
        metrics["acc_full_struct"] = float(hit.all(-1).float().sum() / n)
        metrics["acc_bit_struct"] = float(hit.float().sum() / (13 * n))
        n = max(int(sel_a.sum()), 1)
        acc = out.aa.argmax(-1) == targets[:, width:][sel_a]
        metrics["acc_full_aa"] = float(acc.float().sum() / n)
    return (losses[0] + losses[1]) / 2, metrics


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


@torch.no_grad()
def self_mixup_batch(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's self-mixup (``self_mixup`` / ``get_mixup_xt``) on a noised batch.

    A no-grad forward on x_t (same attention blinding); its argmax (index model: over all 8229
    ids; bit model: argmax bits / 33-id head) is put at every non-special position of x_t
    (pad and the halves' ``<cls>``/``<eos>`` are special); then every position that was visible
    in x_t (non-special and not a mask token) is masked with its half's mask token. The loss
    mask becomes every non-special position (targets and weights unchanged).
    """
    from dplm2.lm.diffusion import maskable
    from dplm2.lm.vocab import MASK, STRUCT_MASK

    ids = batch["input_ids"]
    width = ids.shape[1] // 2
    net = _unwrapped(model)
    non_special = maskable(ids)  # (B, N)
    pred = ids.clone()
    out = net(ids, batch["single_modality"], select=non_special)
    if getattr(net, "is_bit", False):
        from dplm2.lm.bit import bits_to_tokens

        st = bits_to_tokens(out.struct.argmax(-1))
    else:
        st = out.struct.argmax(-1)
    pred[:, :width][non_special[:, :width]] = st
    pred[:, width:][non_special[:, width:]] = out.aa.argmax(-1)
    visible = non_special & (ids != MASK) & (ids != STRUCT_MASK)
    half_mask = torch.full_like(ids, STRUCT_MASK)
    half_mask[:, width:] = MASK
    mixed = torch.where(visible, half_mask, pred)
    return {**batch, "input_ids": mixed, "masked": non_special}


def training_loss(model, batch, softmax: str = "full", self_mixup: bool = False,
                  ignore_one: bool = False):
    """The configured loss: DPLM-2 (:func:`diffusion_loss`) or DPLM-2 Bit
    (:func:`bit_diffusion_loss`) by the model's kind, after :func:`self_mixup_batch` when
    ``self_mixup``."""
    if self_mixup:
        batch = self_mixup_batch(model, batch)
    if getattr(_unwrapped(model), "is_bit", False):
        return bit_diffusion_loss(model, batch, ignore_one=ignore_one)
    return diffusion_loss(model, batch, softmax=softmax)


def loss_fn(cfg: DiffusionConfig, self_mixup: bool = False, bit_loss_ignore_index_bug: bool = False):
    """``loss_fn(model, batch)`` for the trainer: :func:`training_loss` with the configured
    softmax range, self-mixup and bit-loss switch."""
    return functools.partial(training_loss, softmax=cfg.softmax, self_mixup=self_mixup,
                             ignore_one=bit_loss_ignore_index_bug)


def count_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens of a batch (both halves, special tokens included, padding not): ``tokens_per_s``."""
    from dplm2.lm.vocab import PAD

    return int((batch["input_ids"] != PAD).sum())


def validation_fn(proteins: Sequence[Protein], cfg: LMConfig, seed: int = 12345):
    """``val_fn(model)``: for each task with a nonzero ratio, ``<task>_nll_full_{struct,aa}``
    (mean cross-entropy over all 8229 ids) and ``<task>_acc_full_{struct,aa}`` (accuracy of
    the argmax over all 8229 ids, the reference's), over all masked positions of that half.

    The noise is fixed (same timesteps and masks every call), so the curves are comparable.
    """
    proteins = list(proteins)[: cfg.data.val_max_samples]
    fixed: dict[str, list[dict[str, torch.Tensor]]] = {}
    for i, task in enumerate(TASKS):
        if getattr(cfg.diffusion.task_mix, task) <= 0:
            continue
        only = TaskMix.from_dict({t: float(t == task) for t in TASKS})
        diff = dataclasses.replace(cfg.diffusion, task_mix=only)
        gen = torch.Generator().manual_seed(seed + i)
        chunks = [proteins[j : j + 16] for j in range(0, len(proteins), 16)]
        fixed[task] = [make_batch(c, diff, gen) for c in chunks]

    def val_fn(model: torch.nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        out: dict[str, float] = {}
        for task, batches in fixed.items():
            sums: dict[str, float] = {}
            for b in batches:
                b = {k: v.to(device) for k, v in b.items()}
                _, m = training_loss(model, b)
                for mod in ("struct", "aa"):
                    n = m[f"masked_{mod}"]
                    for key in (f"nll_full_{mod}", f"acc_full_{mod}"):
                        sums[key] = sums.get(key, 0.0) + m[key] * max(n, 1)
                    sums[f"n_{mod}"] = sums.get(f"n_{mod}", 0.0) + n
            for mod in ("struct", "aa"):
                if sums[f"n_{mod}"] > 0:
                    for key in (f"nll_full_{mod}", f"acc_full_{mod}"):
                        out[f"{task}_{key}"] = sums[key] / sums[f"n_{mod}"]
        return out

    return val_fn


def export_model(model: DPLM2LM, folder: str | os.PathLike) -> Path:
    """Merge LoRA into a copy and write ``folder`` atomically (from_pretrained-readable)."""
    folder = Path(folder)
    with atomic_path(folder, is_dir=True) as tmp:
        merged_copy(model).save_pretrained(tmp)
    log.info("exported %s", folder)
    return folder


def run_fingerprint(
    cfg: LMConfig, init_dir: str | os.PathLike, shards: Sequence[str | os.PathLike]
) -> str:
    """Hash of what a training run depends on: config, initial model, token shards.

    Keys that only say how long to train or how often to log/validate/checkpoint, and the
    process count, are left out: raising ``train.max_steps`` (or moving to more GPUs)
    continues the earlier run from its last checkpoint instead of starting over."""
    d = cfg.to_dict()
    d.pop("nproc_per_node", None)
    h = hashlib.sha256(config_fingerprint(d).encode())
    init = Path(init_dir)
    for name in ("config.json", "init.json"):
        if (init / name).is_file():
            h.update((init / name).read_bytes())
    h.update(files_fingerprint(shards).encode())
    return h.hexdigest()[:16]


def build_trainer(
    cfg: LMConfig,
    init_dir: str | os.PathLike,
    shards: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    model_dir: str | os.PathLike | None = None,
) -> Trainer:
    """The configured :class:`~dplm2.train.Trainer` (model from ``init_dir``, LoRA applied,
    batches from the token ``shards``); see :func:`train_lm`."""
    env = dist_env()
    if env.is_main:
        guard_state(Path(out_dir) / "state", run_fingerprint(cfg, init_dir, shards))
    if env.distributed:
        torch.distributed.barrier()  # no rank looks for checkpoints before the guard ran
    from dplm2.lm.bit import DPLM2BitLM, is_bit_folder

    bit = is_bit_folder(init_dir)
    if bit != (cfg.objective == "bit"):
        raise ValueError(f"lm.objective {cfg.objective}: {init_dir} holds "
                         f"{'a bit' if bit else 'an index'} model")
    cls = DPLM2BitLM if bit else DPLM2LM
    model = cls.from_pretrained(init_dir, attn_implementation=cfg.init.model.attn_implementation)
    apply_lora(model, cfg.lora, seed=cfg.train.seed)
    train_set = load_proteins(shards, cfg.data.train_split)
    valid_set = load_proteins(shards, cfg.data.valid_split) or train_set[: cfg.data.val_max_samples]
    log.info("training on %d proteins, validating on %d", len(train_set), len(valid_set))
    batches = BatchSource(train_set, cfg.data, cfg.diffusion, cfg.train.seed)
    model_dir = Path(model_dir) if model_dir is not None else Path(out_dir) / "model"
    return Trainer(
        model,
        loss_fn(cfg.diffusion, cfg.self_mixup, cfg.bit_loss_ignore_index_bug),
        batches,
        cfg.train,
        out_dir,
        val_fn=validation_fn(valid_set, cfg),
        export_fn=lambda m, _folder: export_model(m, model_dir),
        env=env,
        desc="lm",
        count_tokens=count_tokens,
    )


def train_lm(
    cfg: LMConfig,
    init_dir: str | os.PathLike,
    shards: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    model_dir: str | os.PathLike | None = None,
) -> dict:
    """Train from ``init_dir`` on the token ``shards``; writes ``out_dir/{state/,metrics.parquet}``
    and the exported model in ``model_dir`` (default ``out_dir/model``). Resumes when
    ``out_dir/state`` holds a checkpoint. Returns the last metrics row."""
    return build_trainer(cfg, init_dir, shards, out_dir, model_dir).fit()
