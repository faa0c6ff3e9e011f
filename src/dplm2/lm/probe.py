"""Folding / inverse-folding token accuracy of a DPLM-2 LM on known proteins.

Two read-outs: one-shot argmax (one forward pass with the target half fully masked) and the
iterative unmasking sampler (:mod:`dplm2.lm.sampling`). Used by the memorisation test and
``bench/lm_memorise.py``; also a cheap sanity check on a trained model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dplm2.lm.data import Protein
from dplm2.lm.sampling import SamplerConfig, iterative_unmask
from dplm2.lm.vocab import MASK, N_CODES, STRUCT_MASK, STRUCT_OFFSET, DPLM2Vocab


def task_inputs(
    proteins: Sequence[Protein], task: str, vocab: DPLM2Vocab | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked input, clean target), both (B, 2W): ``folding`` masks the structure half,
    ``inverse_folding`` the amino-acid half."""
    if task not in ("folding", "inverse_folding"):
        raise ValueError(f"task must be folding|inverse_folding, got {task!r}")
    vocab = vocab or DPLM2Vocab()
    clean, _ = vocab.collate([vocab.encode(p.sequence, p.codes) for p in proteins])
    given = [
        vocab.encode(p.sequence, None) if task == "folding" else vocab.encode(None, p.codes)
        for p in proteins
    ]
    masked, _ = vocab.collate(given)
    return masked, clean


def _accuracy(pred: torch.Tensor, inputs: torch.Tensor, clean: torch.Tensor) -> float:
    gen = (inputs == MASK) | (inputs == STRUCT_MASK)  # (B, N) positions that were generated
    return float((pred[gen] == clean[gen]).float().mean())


@torch.no_grad()
def one_shot_accuracy(model, proteins: Sequence[Protein], task: str) -> float:
    """Fraction of masked positions whose argmax (one forward pass: the sampler with one
    step, which decodes every masked position at once) is the true token."""
    was_training = model.training
    model.eval()
    inputs, clean = task_inputs(proteins, task)
    device = next(model.parameters()).device
    pred, _ = iterative_unmask(model, inputs.to(device), SamplerConfig.from_dict(dict(max_iter=1)))
    pred = pred.cpu()
    model.train(was_training)
    return _accuracy(pred, inputs, clean)


@torch.no_grad()
def one_shot_bit_accuracy(model, proteins: Sequence[Protein]) -> float:
    """One-shot folding accuracy per structure bit: the fraction of the 13 LFQ bits (most
    significant first, :func:`dplm2.lm.bit.tokens_to_bits`) of every masked structure
    position that the one-shot argmax prediction gets right. For a DPLM-2 Bit model this is
    what its heads predict; a token is right only when all 13 of its bits are."""
    from dplm2.lm.bit import tokens_to_bits

    was_training = model.training
    model.eval()
    inputs, clean = task_inputs(proteins, "folding")
    device = next(model.parameters()).device
    pred, _ = iterative_unmask(model, inputs.to(device), SamplerConfig.from_dict(dict(max_iter=1)))
    model.train(was_training)
    gen = (inputs == STRUCT_MASK) & (clean >= STRUCT_OFFSET) & (clean < STRUCT_OFFSET + N_CODES)
    pred = pred.cpu()[gen].clamp(STRUCT_OFFSET, STRUCT_OFFSET + N_CODES - 1)
    return float((tokens_to_bits(pred) == tokens_to_bits(clean[gen])).float().mean())


@torch.no_grad()
def sampler_accuracy(
    model, proteins: Sequence[Protein], task: str, cfg: SamplerConfig, seed: int = 0
) -> float:
    """Accuracy of the iterative unmasking sampler's output on the masked half."""
    was_training = model.training
    model.eval()
    inputs, clean = task_inputs(proteins, task)
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    out, _ = iterative_unmask(model, inputs.to(device), cfg, generator=gen)
    model.train(was_training)
    return _accuracy(out.cpu(), inputs, clean)


class TargetReached(Exception):
    """Raised from the validation hook to end a memorisation run early (the shared loop has
    no early-stopping hook; see the report to the lead)."""


def memorise(
    proteins: Sequence[Protein],
    out_dir,
    *,
    model: dict | None = None,
    max_steps: int = 3000,
    eval_every: int = 100,
    target: float | None = 0.95,
    lr: float = 2e-3,
    end_lr: float | None = None,
    warmup_steps: int = 50,
    weighting: str = "constant",
    softmax: str = "full",
    task_split: str = "batch",
    token_dropout_passes: int | None = None,
    repeats: int = 1,
    seed: int = 0,
    sampler: SamplerConfig | None = None,
    time_limit_s: float | None = None,
    objective: str = "index",
    bit_loss_ignore_index_bug: bool = False,
) -> list[dict]:
    """Train a from-scratch LM on ``proteins`` (every protein in every step, tasks split over
    the batch as ``task_split`` says) until one-shot folding and inverse-folding accuracy both
    reach ``target``.

    Defaults are the settings measured to memorise on 2 CPU cores (lr 2e-3, 50 warm-up
    steps, constant lr after warm-up, clip 1.0, dropout 0, constant loss weighting: the linear
    weighting gives fully masked samples, i.e. one-shot folding, almost no weight).
    ``softmax``, ``task_split``: :class:`~dplm2.lm.diffusion.DiffusionConfig`'s (defaults: the
    reference's loss); ``token_dropout_passes``: :class:`~dplm2.lm.warm_start.InitConfig`'s
    (None: the reference's 2 passes for a from-scratch model). ``repeats``: each protein is in
    every batch that many times (each copy with its own task and noise; with 4 proteins and
    ``repeats=4`` every step has 4 rows of each task).
    ``time_limit_s`` ends the run at the first evaluation after that much wall time.
    ``objective``: ``index`` (DPLM-2) or ``bit`` (DPLM-2 Bit, :mod:`dplm2.lm.bit`, trained with
    the bit loss; ``bit_loss_ignore_index_bug`` as ``lm.bit_loss_ignore_index_bug``).
    Returns one row per evaluation: step, wall_s, fold_acc, inv_acc, fold_bit_acc
    (:func:`one_shot_bit_accuracy`) (+ sampler accuracies). ``target`` applies to the token
    accuracies fold_acc and inv_acc.
    """
    import time

    from dplm2.lm.diffusion import DiffusionConfig
    from dplm2.lm.lora import LoraConfig, apply_lora
    from dplm2.lm.model import DPLM2LM
    from dplm2.lm.train import loss_fn
    from dplm2.lm.data import BatchSource, BatchingConfig
    from dplm2.lm.warm_start import InitConfig, build_network
    from dplm2.train import TrainConfig, Trainer

    longest = max(len(p.sequence) for p in proteins)
    rows = list(proteins) * repeats
    data = BatchingConfig.from_dict(dict(
        max_length=longest, random_crop_fraction=0.0, max_tokens=(longest + 2) * len(rows),
        max_batch_size=len(rows),
    ))
    train = TrainConfig.from_dict(dict(
        max_steps=max_steps, lr=lr, warmup_steps=warmup_steps, start_lr=1e-7,
        end_lr=lr if end_lr is None else end_lr,
        clip_norm=1.0, val_every=eval_every, ckpt_every=max_steps, log_every=eval_every,
        seed=seed, weight_decay=0.0,
    ))
    init = InitConfig.from_dict({"seed": seed, "model": model or {},
                                 "token_dropout_passes": token_dropout_passes})
    if objective == "bit":
        from dplm2.lm.warm_start import build_bit_model

        net = build_bit_model(init)
    elif objective == "index":
        net = DPLM2LM(build_network(init))
    else:
        raise ValueError(f"objective must be index|bit, got {objective!r}")
    apply_lora(net, LoraConfig.from_dict(dict(enabled=False)))
    diffusion = DiffusionConfig.from_dict(
        {"weighting": weighting, "softmax": softmax, "task_split": task_split})
    batches = BatchSource(rows, data, diffusion, seed)
    history: list[dict] = []
    t0 = time.time()

    def val_fn(m) -> dict[str, float]:
        row = {
            "step": trainer.step,
            "wall_s": time.time() - t0,
            "fold_acc": one_shot_accuracy(m, proteins, "folding"),
            "inv_acc": one_shot_accuracy(m, proteins, "inverse_folding"),
            "fold_bit_acc": one_shot_bit_accuracy(m, proteins),
        }
        if sampler is not None:
            row["fold_acc_sampler"] = sampler_accuracy(m, proteins, "folding", sampler, seed)
            row["inv_acc_sampler"] = sampler_accuracy(m, proteins, "inverse_folding", sampler, seed)
        history.append(row)
        if target is not None and min(row["fold_acc"], row["inv_acc"]) >= target:
            raise TargetReached(row)
        if time_limit_s is not None and row["wall_s"] >= time_limit_s:
            raise TargetReached(row)
        return row

    loss = loss_fn(diffusion, bit_loss_ignore_index_bug=bit_loss_ignore_index_bug)
    trainer = Trainer(net, loss, batches, train, out_dir, val_fn=val_fn, desc="memorise")
    try:
        trainer.fit()
    except TargetReached:
        pass
    return history
