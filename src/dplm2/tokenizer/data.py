"""Chains for the tokenizer: read chain shards, crop, pad into batches.

Chain shards are the process stage's output (``id, source, split, sequence, coords,
atom_mask, plddt, length, ...``); rows become :class:`dplm2.structure.Chain` objects through
``Chain.from_row``, so a malformed row fails with the shard's file name and the reason.

Training batches come from :class:`TrainBatches`, a pure function of ``(seed, step, rank)``:
a restarted run asks for step ``s`` and gets exactly the chains and crops it got before, which
is what makes the shared trainer's resume exact.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import torch

from dplm2.io import read_parquet_checked
from dplm2.structure import Chain, StructureError
from dplm2.tokenizer.config import DataConfig

CHAIN_COLUMNS = ("id", "source", "split", "sequence", "coords", "atom_mask", "plddt", "length")
_AA = "ARNDCQEGHILKMFPSTWYV"  # residue_constants.restypes order (the decoder's aa head)
AA_INDEX = {a: i for i, a in enumerate(_AA)}
AA_LETTERS = _AA


@dataclasses.dataclass(frozen=True)
class ShardChain:
    """A chain plus the shard columns the tokenizer carries through (source, split)."""

    chain: Chain
    source: str
    split: str

    @property
    def id(self) -> str:
        return self.chain.id

    def observed(self) -> np.ndarray:
        """Bool ``[L]``: N, CA and C present."""
        return self.chain.complete_backbone()


def read_chain_shard(path: str | os.PathLike) -> list[ShardChain]:
    """Read one chain shard; raises ``ValueError`` naming the file and the bad row."""
    df = read_parquet_checked(path, CHAIN_COLUMNS)
    records = []
    for row in df.iter_rows(named=True):
        try:
            chain = Chain.from_row(row)
        except (StructureError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: row {row.get('id')!r} is not a valid chain ({exc})") from exc
        records.append(ShardChain(chain, str(row["source"]), str(row["split"])))
    return records


def read_chain_shards(paths: Sequence[str | os.PathLike]) -> list[ShardChain]:
    """All chains of several shards, in file then row order."""
    out: list[ShardChain] = []
    for p in paths:
        out.extend(read_chain_shard(p))
    return out


def aatype(sequence: str) -> np.ndarray:
    """One-letter sequence -> int64 ``[L]`` in residue_constants order; X (or other) -> -1.

    >>> aatype("AXV").tolist()
    [0, -1, 19]
    """
    return np.array([AA_INDEX.get(a, -1) for a in sequence], dtype=np.int64)


def select_training(records: Sequence[ShardChain], cfg: DataConfig) -> list[ShardChain]:
    """Training chains: in ``cfg.train_splits``, >= ``min_length`` observed residues, sorted by
    id, at most ``max_train_chains`` (0 = all)."""
    keep = [r for r in records if r.split in tuple(cfg.train_splits)
            and int(r.observed().sum()) >= cfg.min_length]
    keep.sort(key=lambda r: r.id)
    return keep[: cfg.max_train_chains] if cfg.max_train_chains else keep


def select_validation(records: Sequence[ShardChain], cfg: DataConfig) -> list[ShardChain]:
    """Validation chains: split ``cfg.val_split`` with >= 8 observed residues, sorted by id."""
    keep = [r for r in records if r.split == cfg.val_split and int(r.observed().sum()) >= 8]
    keep.sort(key=lambda r: r.id)
    return keep[: cfg.val_max_chains]


def crop_window(length: int, crop: int, rng: np.random.Generator) -> tuple[int, int]:
    """A random contiguous window ``[start, start + min(length, crop))``."""
    if length <= crop:
        return 0, length
    start = int(rng.integers(0, length - crop + 1))
    return start, start + crop


def collate(records: Sequence[ShardChain],
            windows: Sequence[tuple[int, int]] | None = None) -> dict[str, torch.Tensor]:
    """Pad chains (optionally cropped to ``windows``) into a batch dict.

    Returns ``coords [B, L, 4, 3]`` float32 (0 where missing), ``atom_mask [B, L, 4]`` bool,
    ``mask [B, L]`` bool (observed residue), ``aatype [B, L]`` int64 (-1 = X or padding).
    """
    windows = windows or [(0, len(r.chain)) for r in records]
    length = max(b - a for a, b in windows)
    n = len(records)
    coords = np.zeros((n, length, 4, 3), dtype=np.float32)
    amask = np.zeros((n, length, 4), dtype=bool)
    aat = np.full((n, length), -1, dtype=np.int64)
    for i, (rec, (a, b)) in enumerate(zip(records, windows)):
        c = rec.chain
        coords[i, : b - a] = np.nan_to_num(c.coords[a:b], nan=0.0)
        amask[i, : b - a] = c.atom_mask[a:b]
        aat[i, : b - a] = aatype(c.sequence[a:b])
    return {
        "coords": torch.from_numpy(coords),
        "atom_mask": torch.from_numpy(amask),
        "mask": torch.from_numpy(amask[..., :3].all(-1)),
        "aatype": torch.from_numpy(aat),
    }


class TrainBatches:
    """``batch_fn(step, rank, world_size)`` for :class:`dplm2.train.Trainer`.

    Each call draws ``batch_size`` chains uniformly (with replacement) and a random crop of
    each, from a generator seeded by ``(seed, step, rank)`` only.
    """

    def __init__(self, records: Sequence[ShardChain], cfg: DataConfig, seed: int) -> None:
        if not records:
            raise ValueError("no training chains: check tokenizer.data.train_splits/min_length "
                             "and the chain shards")
        self.records = list(records)
        self.cfg = cfg
        self.seed = seed

    def __call__(self, step: int, rank: int = 0, world_size: int = 1) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step, rank, 0x70C])
        idx = rng.integers(0, len(self.records), size=self.cfg.batch_size)
        recs = [self.records[i] for i in idx]
        windows = [crop_window(len(r.chain), self.cfg.crop_length, rng) for r in recs]
        lo = self.cfg.random_crop_min
        if lo:
            # Half of the chains: a shorter random window, so length and absolute position no
            # longer identify a chain (the decoder must read the tokens).
            for i, (a, b) in enumerate(windows):
                if b - a > lo and rng.random() < 0.5:
                    windows[i] = crop_window(b - a, int(rng.integers(lo, b - a)), rng)
                    windows[i] = (a + windows[i][0], a + windows[i][1])
        return collate(recs, windows)
