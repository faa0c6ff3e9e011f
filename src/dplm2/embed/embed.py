"""Per-residue and per-protein DPLM-2 representations, batched by a token budget.

One protein is fed as the LM sees it in training (``[<cls_struct> s1..sL <eos_struct>]
[<cls> a1..aL <eos>]``, shared rotary positions per half); what each mode gives the model:

=============  ===============================  =====================  =======================
mode           structure half                   amino-acid half        vector of residue i
=============  ===============================  =====================  =======================
``sequence``   all ``<mask_struct>``, blinded   the sequence           amino-acid half, pos. i
``structure``  the structure tokens             all ``<mask>``, blind  structure half, pos. i
``both``       the structure tokens             the sequence           both halves (``combine``)
=============  ===============================  =====================  =======================

"Blinded" = the single-modality attention of training (halves do not attend to each other),
so a sequence-only embedding never depends on the masked half. The per-protein vector is the
mean over the L residue positions: ``<cls>``/``<eos>`` and padding are stripped.

Batches are planned on lengths alone (longest first, at most ``max_tokens`` padded tokens per
half and ``max_batch_size`` proteins), and results come back in input order. Padding cannot
change a protein's vectors (padding keys are hidden from attention), which the tests check.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dplm2.embed.config import EmbedConfig
from dplm2.embed.inputs import Record
from dplm2.train import pick_device

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class Embedding:
    """One protein at one layer.

    Attributes
    ----------
    id : str
    layer : int
        Resolved layer index (0 = embeddings ... num_layers = last, after the final LayerNorm).
    vector : ndarray, float32 ``[D]``
        Mean over residues.
    residues : ndarray, float32 ``[L, D]``, or None
        Per-residue vectors (when asked for).
    length : int
        Residues embedded (after truncation).
    truncated : bool
        The protein was longer than ``max_length``.
    """

    id: str
    layer: int
    vector: np.ndarray
    residues: np.ndarray | None
    length: int
    truncated: bool


def longest_first_batches(lengths: Sequence[int], max_tokens: int, max_batch_size: int) -> list[list[int]]:
    """Indices grouped longest first so that ``len(batch) * (max length + 2) <= max_tokens``.

    >>> longest_first_batches([5, 30, 10, 28], max_tokens=64, max_batch_size=8)
    [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        width = lengths[i] + 2
        if batches:
            cur = batches[-1]
            widest = lengths[cur[0]] + 2  # longest first: the batch's first is its widest
            if len(cur) < max_batch_size and (len(cur) + 1) * widest <= max_tokens:
                cur.append(i)
                continue
        if width > max_tokens:
            raise ValueError(f"a protein of {lengths[i]} residues exceeds max_tokens {max_tokens}")
        batches.append([i])
    return batches


def resolve_layers(layers: Sequence[int], num_layers: int) -> list[int]:
    """Map layer numbers (negative from the end) onto ``0..num_layers``; errors when out of range."""
    out = []
    for k in layers:
        if not -(num_layers + 1) <= k <= num_layers:
            raise ValueError(f"layer {k} out of range for a {num_layers}-layer model "
                             f"(0..{num_layers}, or -1..-{num_layers + 1})")
        out.append(k % (num_layers + 1))
    return out


def _encode_batch(vocab, records: Sequence[Record], mode: str) -> tuple[torch.Tensor, int]:
    pairs = []
    for r in records:
        if mode == "sequence":
            pairs.append(vocab.encode(r.sequence, None))
        elif mode == "structure":
            pairs.append(vocab.encode(None, r.codes))
        else:
            pairs.append(vocab.encode(r.sequence, r.codes))
    return vocab.collate(pairs)


def _check(records: Sequence[Record], cfg: EmbedConfig) -> None:
    if not cfg.needs_structure:
        return
    missing = [r for r in records if r.codes is None]
    if missing:
        r = missing[0]
        raise ValueError(
            f"{r.source}: {r.id!r} has no structure tokens, which mode {cfg.mode!r} needs "
            f"({len(missing)} such proteins): give structure files with a tokenizer, or token "
            "shards, or use mode 'sequence'")


@torch.no_grad()
def embed_proteins(model, records: Sequence[Record], cfg: EmbedConfig | None = None,
                   progress: bool = False) -> list[Embedding]:
    """Embeddings of ``records`` with a loaded :class:`dplm2.lm.model.DPLM2LM`.

    Returns one :class:`Embedding` per (record, layer), in input order then layer order.
    Example (``model`` from :func:`dplm2.lm.load.load_lm`)::

        rows = embed_proteins(model, [Record("p1", "MKVLA")], EmbedConfig.from_dict({"mode": "sequence"}))
        rows[0].vector.shape  # (hidden_size,)
    """
    cfg = cfg or EmbedConfig.from_dict()
    _check(records, cfg)
    model.eval()
    device = next(model.parameters()).device
    layers = resolve_layers(cfg.layers, int(model.config.num_hidden_layers))
    last = int(model.config.num_hidden_layers)
    crop = [min(len(r), cfg.max_length) for r in records]
    cut = [dataclasses.replace(r, sequence=r.sequence[:n],
                               codes=None if r.codes is None else r.codes[:n])
           for r, n in zip(records, crop, strict=True)]
    single = cfg.mode != "both"
    results: dict[int, list[Embedding]] = {}
    batches = longest_first_batches(crop, cfg.max_tokens, cfg.max_batch_size)
    for batch in tqdm(batches, desc="embed", disable=not progress, mininterval=2.0):
        ids, width = _encode_batch(model.vocab, [cut[i] for i in batch], cfg.mode)
        ids = ids.to(device)
        blind = torch.full((len(batch),), single, dtype=torch.bool, device=device)
        if layers == [last]:
            states = {last: model.hidden_states(ids, blind)}
        else:
            every = model.layer_states(ids, blind)
            states = {k: every[k] for k in set(layers)}
        for row, i in enumerate(batch):
            n = crop[i]
            out = []
            for k in layers:
                h = states[k][row].float()  # (2W, H)
                st, aa = h[1 : n + 1], h[width + 1 : width + 1 + n]  # (L, H) each, specials cut
                if cfg.mode == "sequence":
                    res = aa
                elif cfg.mode == "structure":
                    res = st
                elif cfg.combine == "concat":
                    res = torch.cat([st, aa], dim=-1)  # (L, 2H)
                else:
                    res = (st + aa) / 2
                res = res.cpu().numpy().astype(np.float32)
                out.append(Embedding(records[i].id, k, res.mean(0), res if cfg.per_residue else None,
                                     n, len(records[i]) > n))
            results[i] = out
    n_cut = sum(len(r) > cfg.max_length for r in records)
    if n_cut:
        log.warning("%d protein(s) longer than max_length %d were cut", n_cut, cfg.max_length)
    return [e for i in range(len(records)) for e in results[i]]


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()[:16]


def embed_inputs(
    inputs: Sequence[str | os.PathLike],
    lm: str | os.PathLike,
    out: str | os.PathLike,
    cfg: EmbedConfig,
    tokenizer: str | os.PathLike | None = None,
    split: str | None = None,
    skip_bad: bool = False,
) -> Path:
    """Read inputs, embed them with ``lm`` (our folder, a released folder or hub id) and write
    ``out`` (Parquet or ``.npy``). Structure files are tokenized with ``tokenizer`` when the
    mode needs structure tokens. Unreadable structure files are all reported at once, or with
    ``skip_bad`` left out and listed in the output's metadata (``skipped_inputs``)."""
    from dplm2.embed.inputs import chain_codes, read_inputs
    from dplm2.embed.outputs import write_embeddings
    from dplm2.lm.load import load_lm

    t0 = time.time()
    device = pick_device(cfg.device)
    tokenize, tok_sha = None, None
    if cfg.needs_structure and tokenizer is not None:
        from dplm2.tokenizer.hub import load_tokenizer

        tok, tok_sha = load_tokenizer(tokenizer, device=device)
        tokenize = lambda chain: chain_codes(chain, tok, device)  # noqa: E731
    skipped: list | None = [] if skip_bad else None
    records = read_inputs(inputs, tokenize, split, skipped)
    model = load_lm(lm, device=device)
    weights = Path(lm) / "model.safetensors"
    meta = {
        "stage": "embed",
        "lm": str(lm),
        "lm_hash": _file_hash(weights) if weights.is_file() else str(lm),
        "tokenizer_sha256": tok_sha,
        "mode": cfg.mode,
        "config": cfg.to_dict(),
        "hidden_size": int(model.config.hidden_size),
        "num_layers": int(model.config.num_hidden_layers),
        "skipped_inputs": [{"file": str(p), "reason": r} for p, r in skipped or []],
    }
    rows = embed_proteins(model, records, cfg, progress=True)
    path = write_embeddings(rows, out, meta, cfg.format)
    log.info("%s: %d proteins x %d layer(s), dim %d, in %.1f s", path, len(records),
             len(cfg.layers), rows[0].vector.shape[0], time.time() - t0)
    return path
