"""Token shards -> cropped, token-budget batches as pure functions of (seed, step, rank).

Reads the tokenizer stage's shards (``tokens-XXXXX-of-YYYYY.parquet``: ``id, source, split,
sequence, struct_tokens, length, plddt``). Batches are length-bucketed under a token budget
counted on one half (spec §4: 8192 per GPU), re-planned every epoch from ``seed + epoch``,
so ``batch_fn(step, rank, world)`` never depends on earlier calls (exact resume).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence

import numpy as np
import torch

from dplm2.config import ConfigError, StageConfig
from dplm2.io import read_parquet_checked
from dplm2.lm.diffusion import DiffusionConfig, draw_tasks, loss_weight, q_sample
from dplm2.lm.vocab import DPLM2Vocab

TOKEN_COLUMNS = ("id", "split", "sequence", "struct_tokens", "length")


@dataclasses.dataclass(frozen=True)
class BatchingConfig(StageConfig):
    """Cropping and batching (spec §3-4)."""

    SECTION = "lm.data"

    max_length: int
    random_crop_fraction: float
    min_crop_length: int
    max_tokens: int
    max_batch_size: int
    train_split: str
    valid_split: str
    val_max_samples: int

    def __post_init__(self) -> None:
        if self.max_tokens < self.max_length + 2:
            raise ConfigError(
                f"max_tokens ({self.max_tokens}) must hold one cropped sample "
                f"(max_length + 2 = {self.max_length + 2})"
            )


@dataclasses.dataclass(frozen=True)
class Protein:
    """One chain: sequence and tokenizer codes of equal length."""

    id: str
    sequence: str
    codes: np.ndarray  # (L,) int64

    def __post_init__(self) -> None:
        if len(self.sequence) != len(self.codes):
            raise ValueError(
                f"{self.id}: sequence has {len(self.sequence)} residues, "
                f"struct_tokens {len(self.codes)}"
            )


def load_proteins(
    paths: Sequence[str | os.PathLike], split: str | None, expect: dict | None = None
) -> list[Protein]:
    """Read token shards and keep rows of ``split`` (all rows when None), sorted by id."""
    out: list[Protein] = []
    for path in paths:
        df = read_parquet_checked(path, TOKEN_COLUMNS, expect)
        if split is not None:
            df = df.filter(df["split"] == split)
        for row in df.iter_rows(named=True):
            codes = np.asarray(row["struct_tokens"], dtype=np.int64)
            if len(codes) != row["length"]:
                raise ValueError(f"{path}: row {row['id']}: length column disagrees with tokens")
            out.append(Protein(row["id"], row["sequence"], codes))
    return sorted(out, key=lambda p: p.id)


def crop(p: Protein, cfg: BatchingConfig, rng: np.random.Generator) -> Protein:
    """Same random window on both halves: at most ``max_length``; a ``random_crop_fraction``
    of samples is further cropped to a random length in [min_crop_length, L)."""
    n = len(p.sequence)
    target = min(n, cfg.max_length)
    if n > cfg.min_crop_length and rng.random() < cfg.random_crop_fraction:
        target = int(rng.integers(cfg.min_crop_length, target)) if target > cfg.min_crop_length else target
    start = int(rng.integers(0, n - target + 1))
    return Protein(p.id, p.sequence[start : start + target], p.codes[start : start + target])


def plan_batches(lengths: Sequence[int], cfg: BatchingConfig, seed: int) -> list[list[int]]:
    """Length-bucketed batches under the token budget (one half: B * (L_max + 2) tokens).

    Indices are sorted by length (random tie order), packed greedily, then the batch order
    is shuffled; everything from ``seed``.
    """
    rng = np.random.default_rng(seed)
    lens = np.minimum(np.asarray(lengths), cfg.max_length) + 2
    order = np.lexsort((rng.random(len(lens)), lens))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        widest = max([lens[j] for j in cur] + [lens[i]])
        if cur and (widest * (len(cur) + 1) > cfg.max_tokens or len(cur) >= cfg.max_batch_size):
            batches.append(cur)
            cur = []
        cur.append(int(i))
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def make_batch(
    proteins: Sequence[Protein],
    diffusion: DiffusionConfig,
    generator: torch.Generator,
    vocab: DPLM2Vocab | None = None,
) -> dict[str, torch.Tensor]:
    """Encode, draw tasks/timesteps, noise. All tensors are (B, N=2W) or (B,)."""
    vocab = vocab or DPLM2Vocab()
    clean, _ = vocab.collate([vocab.encode(p.sequence, p.codes) for p in proteins])  # (B, N)
    noise = draw_tasks(len(proteins), diffusion, generator)
    noised, masked = q_sample(clean, noise.t_struct, noise.t_aa, diffusion.timesteps, generator)
    return {
        "input_ids": noised,
        "targets": clean,
        "masked": masked,
        "single_modality": noise.single_modality,
        "task": noise.task,
        "w_struct": loss_weight(noise.t_struct, diffusion),
        "w_aa": loss_weight(noise.t_aa, diffusion),
    }


class BatchSource:
    """``batch_fn(micro_step, rank, world)`` over a fixed protein list (pure in its arguments)."""

    def __init__(
        self, proteins: Sequence[Protein], data: BatchingConfig, diffusion: DiffusionConfig, seed: int
    ) -> None:
        if not proteins:
            raise ValueError("no training proteins: the token shards hold no rows of this split")
        self.proteins = list(proteins)
        self.data, self.diffusion, self.seed = data, diffusion, seed
        self.vocab = DPLM2Vocab()
        self.n_batches = len(self._plan(0))

    @functools.lru_cache(maxsize=4)  # noqa: B019 - a few epochs' plans; the object lives for one run
    def _plan(self, epoch: int) -> list[list[int]]:
        lengths = [len(p.sequence) for p in self.proteins]
        return plan_batches(lengths, self.data, self.seed * 1_000_003 + epoch)

    def __call__(self, micro: int, rank: int, world: int) -> dict[str, torch.Tensor]:
        index = micro * world + rank  # global batch index: ranks take interleaved batches
        epoch, k = divmod(index, self.n_batches)
        plan = self._plan(epoch)
        key = (self.seed * 1_000_003 + index * 7919 + 17) % (2**63 - 1)
        rng = np.random.default_rng(key)
        gen = torch.Generator().manual_seed(key)
        chosen = [crop(self.proteins[i], self.data, rng) for i in plan[k % len(plan)]]
        return make_batch(chosen, self.diffusion, gen, self.vocab)
