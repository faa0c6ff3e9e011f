"""Discrete absorbing diffusion for two modalities: timesteps per task, q_sample, loss weights.

Spec §4: T = 500; a half with timestep t has each maskable token replaced by its modality's
mask token with probability t/T; the loss (:func:`dplm2.lm.train.diffusion_loss`) is
cross-entropy at masked positions only, weighted per sample by (T - t + 1)/T ("linear") or 1
("constant"). Structure and amino-acid halves get
timesteps according to the sample's task:

=================  =================  ==========================================
task               timesteps          attention
=================  =================  ==========================================
single_modality    t_s, t_a indep.    halves blind to each other (block-diagonal)
folding            t_a = 0, t_s ~ U   full
inverse_folding    t_s = 0, t_a ~ U   full
joint              t_s = t_a ~ U      full
independent        t_s, t_a indep.    full
=================  =================  ==========================================

Tasks are split **per batch** as the reference does (``task_split: batch``, default): over a
random permutation of the B rows, int(B * ratio) rows each for single_modality, folding,
inverse_folding and independent, the remainder joint (so batches of 1-3 rows are all joint at
the 0.25 ratios). ``task_split: sample`` draws each row's task i.i.d. with the ratios instead.

Maskable positions (:func:`maskable`) are all but ``<pad>`` and the two halves'
``<cls>``/``<eos>``: ``<unk_struct>`` / ``<unk_aa>`` targets are noised and trained like any
token (spec §4).
"""

from __future__ import annotations

import dataclasses

import torch

from dplm2.config import ConfigError, StageConfig
from dplm2.lm.vocab import CLS, EOS, MASK, PAD, STRUCT_CLS, STRUCT_EOS, STRUCT_MASK

TASKS: tuple[str, ...] = ("single_modality", "folding", "inverse_folding", "joint", "independent")
#: Ids that are never noised (and never a loss target): padding and both halves' <cls>/<eos>.
NEVER_MASKED: tuple[int, ...] = (PAD, CLS, EOS, STRUCT_CLS, STRUCT_EOS)


def maskable(ids: torch.Tensor) -> torch.Tensor:
    """Boolean tensor, True where ``ids`` may be noised: everything but ``<pad>`` and the two
    halves' ``<cls>``/``<eos>`` (the reference's ``get_non_special_symbol_mask``). Unknown
    tokens (``<unk_struct>``, ``<unk_aa>``) and the rarer ESM letters are maskable."""
    never = torch.tensor(NEVER_MASKED, device=ids.device)
    return ~torch.isin(ids, never)


@dataclasses.dataclass(frozen=True)
class TaskMix(StageConfig):
    """Fraction of samples per task (spec §4, reference 150M/650M config). Must sum to 1."""

    SECTION = "lm.diffusion.task_mix"

    single_modality: float
    folding: float
    inverse_folding: float
    joint: float
    independent: float

    def __post_init__(self) -> None:
        probs = self.probs()
        if abs(sum(probs) - 1.0) > 1e-6:
            raise ConfigError(f"lm.diffusion.task_mix ratios must sum to 1, got {self.to_dict()}")

    def probs(self) -> list[float]:
        return [float(getattr(self, name)) for name in TASKS]


@dataclasses.dataclass(frozen=True)
class DiffusionConfig(StageConfig):
    """Noise process, task split, loss weighting and softmax range.

    ``task_split``: ``batch`` (reference: int(B * ratio) rows per task over a random
    permutation, remainder joint) or ``sample`` (each row's task drawn i.i.d.).
    ``softmax``: ``full`` (reference: cross-entropy over all 8229 ids) or ``modality`` (over
    the target's own modality's ids only: 8196 structure / 33 amino-acid ids).
    """

    SECTION = "lm.diffusion"

    timesteps: int
    weighting: str
    task_mix: TaskMix
    task_split: str
    softmax: str


@dataclasses.dataclass(frozen=True)
class Noise:
    """What :func:`draw_tasks` decided for a batch; every field is (B,)."""

    task: torch.Tensor  # long, index into TASKS
    t_struct: torch.Tensor  # long in [0, T]
    t_aa: torch.Tensor  # long in [0, T]
    single_modality: torch.Tensor  # bool


def task_split_sizes(batch: int, mix: TaskMix) -> dict[str, int]:
    """Rows per task in a batch of ``batch`` (``task_split: batch``): int(batch * ratio) for
    every task but joint, which takes the remainder (the reference's ``construct_x_t``)."""
    sizes = {name: int(batch * getattr(mix, name)) for name in TASKS if name != "joint"}
    sizes["joint"] = batch - sum(sizes.values())
    return sizes


def draw_tasks(
    batch: int, cfg: DiffusionConfig, generator: torch.Generator | None = None
) -> Noise:
    """Draw a task and the two timesteps for each of ``batch`` samples.

    Draws in the reference's order (``construct_x_t``): t_s ~ U{1..T} (B,), t_a ~ U{1..T} (B,),
    then the task assignment (``batch``: a random permutation split by
    :func:`task_split_sizes`; ``sample``: i.i.d. multinomial). Then t_s = 0 on inverse-folding
    rows, t_a = 0 on folding rows, t_a = t_s on joint rows.
    """
    T = cfg.timesteps
    t1 = torch.randint(1, T + 1, (batch,), generator=generator)
    t2 = torch.randint(1, T + 1, (batch,), generator=generator)
    name = {n: i for i, n in enumerate(TASKS)}
    if cfg.task_split == "batch":
        perm = torch.randperm(batch, generator=generator)
        task = torch.empty(batch, dtype=torch.long)
        sizes, start = task_split_sizes(batch, cfg.task_mix), 0
        # the reference's split order: single, folding, inverse folding, independent, joint
        for n in ("single_modality", "folding", "inverse_folding", "independent", "joint"):
            task[perm[start : start + sizes[n]]] = name[n]
            start += sizes[n]
    else:
        probs = torch.tensor(cfg.task_mix.probs())
        task = torch.multinomial(probs, batch, replacement=True, generator=generator)  # (B,)
    zero = torch.zeros_like(t1)
    t_s = torch.where(task == name["inverse_folding"], zero, t1)
    t_a = torch.where(task == name["folding"], zero, t2)
    t_a = torch.where(task == name["joint"], t_s, t_a)
    return Noise(
        task=task, t_struct=t_s, t_aa=t_a, single_modality=task == name["single_modality"]
    )


def q_sample(
    input_ids: torch.Tensor,
    t_struct: torch.Tensor,
    t_aa: torch.Tensor,
    timesteps: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask each :func:`maskable` token with probability t/T of its half.

    Uniform draws as the reference: one (B, W) draw for the structure half, then one for the
    amino-acid half.

    Parameters
    ----------
    input_ids : (B, N=2W) long
        Clean two-half input (structure half first).
    t_struct, t_aa : (B,) long
        Timesteps of the structure and amino-acid halves, in [0, T].

    Returns
    -------
    noised : (B, N) long
        ``<mask_struct>`` / ``<mask>`` at masked positions of the structure / amino-acid half.
    masked : (B, N) bool
        Where tokens were masked (the loss positions).
    """
    batch, n = input_ids.shape
    width = n // 2
    rate = torch.cat(
        [
            (t_struct.float().cpu() / timesteps)[:, None].expand(batch, width),
            (t_aa.float().cpu() / timesteps)[:, None].expand(batch, width),
        ],
        dim=1,
    )  # (B, N)
    u = torch.cat(
        [torch.rand((batch, width), generator=generator),
         torch.rand((batch, n - width), generator=generator)],
        dim=1,
    )  # (B, N)
    masked = (u < rate).to(input_ids.device) & maskable(input_ids)
    half_mask = torch.full_like(input_ids, STRUCT_MASK)
    half_mask[:, width:] = MASK
    return torch.where(masked, half_mask, input_ids), masked


def loss_weight(t: torch.Tensor, cfg: DiffusionConfig) -> torch.Tensor:
    """Per-sample weight: (T - t + 1)/T ("linear", spec default) or 1 ("constant")."""
    if cfg.weighting == "constant":
        return torch.ones_like(t, dtype=torch.float32)
    return (cfg.timesteps - t.float() + 1.0) / cfg.timesteps
