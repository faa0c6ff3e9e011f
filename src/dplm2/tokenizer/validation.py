"""Reconstruction quality and codebook usage of a tokenizer on held-out chains.

For each chain: tokens = encoder + quantizer (eval mode), backbone = decoder(tokens); CA-RMSD
after optimal superposition and TM-score (TM-align, normalised by the true chain) over the
observed residues, and amino-acid recovery of the decoder's sequence head. As a control the
same tokens are decoded after a random permutation along the chain: a decoder that ignored its
tokens (reconstructing from length and positions alone) would score the same on both, so only
the gap between ``ca_rmsd`` and ``ca_rmsd_shuffled`` shows that tokens carry structure.

Codebook usage over all validation residues: ``codes_used`` (distinct codes) and
``perplexity`` (exp of the entropy of the code frequencies; equals ``codes_used`` for uniform
use).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dplm2.structure.compare import ca_rmsd, tm_score
from dplm2.tokenizer.data import ShardChain, collate
from dplm2.tokenizer.model import StructureTokenizer


def codebook_usage(tokens: Sequence[np.ndarray], codebook_size: int) -> tuple[int, float]:
    """(distinct codes, perplexity) over all valid tokens of ``tokens``.

    >>> codebook_usage([np.array([0, 0, 1, 1]), np.array([8192])], 8192)
    (2, 2.0)
    """
    flat = np.concatenate([np.asarray(t).ravel() for t in tokens]) if tokens else np.array([])
    flat = flat[(flat >= 0) & (flat < codebook_size)]
    if flat.size == 0:
        return 0, 0.0
    _, counts = np.unique(flat, return_counts=True)
    p = counts / counts.sum()
    return int(len(counts)), float(math.exp(-(p * np.log(p)).sum()))


@torch.no_grad()
def reconstruct(
    model: StructureTokenizer,
    records: Sequence[ShardChain],
    max_length: int = 512,
    shuffle_seed: int | None = 0,
    device: str | torch.device | None = None,
) -> list[dict[str, Any]]:
    """Per-chain reconstruction metrics (first ``max_length`` residues of each chain).

    Returns one dict per chain: ``id, length, ca_rmsd, tm, aa_recovery, tokens`` and, when
    ``shuffle_seed`` is not None, ``ca_rmsd_shuffled, tm_shuffled``.
    """
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    rows = []
    for rec in records:
        n = min(len(rec.chain), max_length)
        batch = {k: v.to(device) for k, v in collate([rec], [(0, n)]).items()}
        mask = batch["mask"][0]
        tokens = model.tokenize(batch["coords"], batch["atom_mask"], batch["mask"])
        dec = model.detokenize(tokens)
        obs = mask.cpu().numpy()
        true_ca = batch["coords"][0, :, 1].cpu().numpy()[obs].astype(np.float64)
        pred_ca = dec["backbone"][0, :, 1].cpu().numpy()[obs].astype(np.float64)
        aat = batch["aatype"][0].cpu().numpy()
        known = obs & (aat >= 0)
        pred_aa = dec["aatype"][0].cpu().numpy()
        row: dict[str, Any] = {
            "id": rec.id,
            "length": int(obs.sum()),
            "ca_rmsd": ca_rmsd(pred_ca, true_ca),
            "tm": tm_score(pred_ca, true_ca, normalize_by="b"),
            "aa_recovery": float((pred_aa[known] == aat[known]).mean()) if known.any() else 0.0,
            "mean_plddt": float(dec["plddt"][0][mask].mean()),
            "tokens": tokens[0].cpu().numpy(),
        }
        if shuffle_seed is not None:
            g = torch.Generator().manual_seed(shuffle_seed)
            idx = torch.nonzero(mask).squeeze(-1).cpu()
            perm = idx[torch.randperm(len(idx), generator=g)]
            shuffled = tokens.clone()
            shuffled[0, idx.to(device)] = tokens[0, perm.to(device)]
            sdec = model.detokenize(shuffled)
            s_ca = sdec["backbone"][0, :, 1].cpu().numpy()[obs].astype(np.float64)
            row["ca_rmsd_shuffled"] = ca_rmsd(s_ca, true_ca)
            row["tm_shuffled"] = tm_score(s_ca, true_ca, normalize_by="b")
        rows.append(row)
    model.train(was_training)
    return rows


def summarize(rows: Sequence[dict[str, Any]], codebook_size: int) -> dict[str, float]:
    """Mean/median metrics over chains plus codebook usage (what the trainer logs as val_*)."""
    if not rows:
        return {}
    out: dict[str, float] = {"chains": float(len(rows))}
    for key in ("ca_rmsd", "tm", "aa_recovery", "mean_plddt", "ca_rmsd_shuffled", "tm_shuffled"):
        vals = [r[key] for r in rows if key in r]
        if vals:
            out[key] = float(np.mean(vals))
            if key in ("ca_rmsd", "tm", "ca_rmsd_shuffled"):
                out[f"{key}_median"] = float(np.median(vals))
    used, ppl = codebook_usage([r["tokens"] for r in rows], codebook_size)
    out["codes_used"] = float(used)
    out["perplexity"] = ppl
    return out


class Validator:
    """``val_fn(model) -> dict`` for the trainer: :func:`reconstruct` + :func:`summarize`."""

    def __init__(self, records: Sequence[ShardChain], max_length: int, seed: int = 0) -> None:
        self.records = list(records)
        self.max_length = max_length
        self.seed = seed
        self.last_rows: list[dict[str, Any]] = []

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        model = getattr(model, "module", model)
        self.last_rows = reconstruct(model, self.records, self.max_length, self.seed)
        return summarize(self.last_rows, model.cfg.codebook_size)
