"""Iterative unmasking (reparameterized discrete-diffusion decoding), spec §5.

Start from an input whose positions to generate hold their modality's mask token; every other
non-pad position is conditioning and is never changed. For step t = 1..N:

1. one forward pass; logits restricted per modality, special tokens forbidden
   (:meth:`dplm2.lm.model.DPLM2LM.sampling_logits`); temperature (fixed, or
   ``annealing@T_max:T_min`` linearly over the steps); top-p filtering;
2. still-masked positions take the argmax / a sample; its log-probability is its score;
3. a fraction ``r_t`` of the generated positions (``linear``: 1 - t/N, ``cosine``:
   cos(pi/2 * t/N)) is masked again: the lowest scores (``deterministic``) or the lowest
   scores plus Gumbel noise of scale ``s * (1 - t/N)`` (``stochastic<s>``). Already decoded
   tokens can be re-masked when they score low (as in DPLM's reparameterized decoding).

After the last step r_N = 0, so nothing stays masked.

Cost: steps 1-2 run only on the positions still masked, and on each position's own modality's
slice of the vocabulary (structure half: ids 33..8228; amino-acid half: ids 0..32), never on
all 8229 ids at every position: the model returns ``-inf`` outside a position's modality, so
the slice holds every token it can emit and argmax / log-probabilities are unchanged (sampling
draws the same distribution; its random stream differs from a full-vocabulary draw).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from dplm2.config import ConfigError, StageConfig
from dplm2.lm.vocab import MASK, N_AA, PAD, STRUCT_MASK, STRUCT_START, VOCAB_SIZE


@dataclasses.dataclass(frozen=True)
class SamplerConfig(StageConfig):
    """Decoding settings (spec §5; folding/inverse folding: 100 steps, argmax, deterministic)."""

    max_iter: int = 100
    strategy: str = "argmax"  # argmax | sample | annealing@T_max:T_min
    temperature: float = 1.0  # for "sample"
    unmasking: str = "deterministic"  # deterministic | stochastic<s>, e.g. stochastic1.0
    schedule: str = "linear"  # linear | cosine
    top_p: float = 0.95  # nucleus filter; 1.0 = off (hard-coded 0.95 in the reference)

    def __post_init__(self) -> None:
        if self.max_iter < 1:
            raise ConfigError(f"max_iter must be >= 1, got {self.max_iter}")
        if self.schedule not in ("linear", "cosine"):
            raise ConfigError(f"schedule must be linear|cosine, got {self.schedule!r}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        self.temperatures()  # validates strategy
        self.noise_scale()  # validates unmasking

    def temperatures(self) -> list[float] | None:
        """Temperature per step; ``None`` for argmax."""
        n = self.max_iter
        if self.strategy == "argmax":
            return None
        if self.strategy == "sample":
            if self.temperature <= 0:
                raise ConfigError("temperature must be > 0")
            return [float(self.temperature)] * n
        if self.strategy.startswith("annealing@"):
            try:
                hi, lo = (float(x) for x in self.strategy.split("@", 1)[1].split(":"))
            except ValueError as exc:
                raise ConfigError(f"strategy {self.strategy!r}: expected annealing@T_max:T_min") from exc
            if hi <= 0 or lo <= 0:
                raise ConfigError(f"strategy {self.strategy!r}: temperatures must be > 0")
            return [hi + (lo - hi) * (i / max(n - 1, 1)) for i in range(n)]
        raise ConfigError(
            f"strategy must be argmax|sample|annealing@T_max:T_min, got {self.strategy!r}"
        )

    def noise_scale(self) -> float:
        """Gumbel noise scale s of ``stochastic<s>`` (0 for deterministic)."""
        if self.unmasking == "deterministic":
            return 0.0
        if self.unmasking.startswith("stochastic"):
            rest = self.unmasking[len("stochastic") :] or "1.0"
            try:
                return float(rest)
            except ValueError as exc:
                raise ConfigError(f"unmasking {self.unmasking!r}: expected stochastic<s>") from exc
        raise ConfigError(
            f"unmasking must be deterministic|stochastic<s>, got {self.unmasking!r}"
        )

    def still_masked(self, step: int) -> float:
        """Fraction of generated positions masked after ``step`` (1-based) of ``max_iter``."""
        x = step / self.max_iter
        return 1.0 - x if self.schedule == "linear" else math.cos(math.pi / 2 * x)


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Set to -inf the logits outside the smallest set whose probability reaches ``top_p``.

    (..., V) -> (..., V); the most likely token is always kept.
    """
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop = cum - sorted_logits.softmax(dim=-1) >= top_p  # mass before this token already enough
    drop[..., 0] = False
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def _lowest_k(scores: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """(B, N) bool: the k[b] lowest scores of each row (ties broken by position)."""
    ranks = scores.argsort(dim=-1).argsort(dim=-1)  # (B, N) rank of each position
    return ranks < k[:, None]


@torch.no_grad()
def iterative_unmask(
    model,
    input_ids: torch.Tensor,
    cfg: SamplerConfig,
    single_modality: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    logits_processor: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate the masked positions of ``input_ids``.

    Parameters
    ----------
    model : DPLM2LM
        Anything with ``sampling_logits(input_ids, single_modality) -> (B, N, V)``.
    input_ids : (B, N=2W) long
        Two-half input; ``<mask_struct>`` / ``<mask>`` marks the positions to generate.
    cfg : SamplerConfig
    single_modality : (B,) bool, optional
        Block attention across halves (generating one modality alone).
    generator : torch.Generator, optional
        On the input's device; makes sampling and stochastic unmasking reproducible.
    callback : callable, optional
        ``callback(step, tokens)`` after each step (for trajectories / tests).
    logits_processor : callable, optional
        ``logits_processor(step, tokens (B, N), logits (B, N, V)) -> logits (B, N, V)``, applied
        to the model's logits before temperature and top-p (guidance such as
        :class:`dplm2.generate.ss_guidance.SSGuidance`); may modify ``logits`` in place.

    Returns
    -------
    tokens : (B, N) long
        Input with every masked position filled; conditioning positions unchanged.
    scores : (B, N) float
        Log-probability of each generated token when it was (last) decoded; 0 elsewhere.
    """
    x = input_ids.clone()
    gen_pos = (x == MASK) | (x == STRUCT_MASK)  # (B, N) positions to generate
    fixed = ~gen_pos  # conditioning, specials and padding: never changed
    mask_tok = torch.where(
        torch.arange(x.shape[1], device=x.device) < x.shape[1] // 2,
        torch.tensor(STRUCT_MASK, device=x.device),
        torch.tensor(MASK, device=x.device),
    ).expand_as(x)  # (B, N) each position's mask token
    scores = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    n_gen = gen_pos.sum(dim=1)  # (B,)
    temps = cfg.temperatures()
    s = cfg.noise_scale()
    width = x.shape[1] // 2
    # (columns of the half, vocabulary slice of its modality)
    halves = ((slice(0, width), slice(STRUCT_START, VOCAB_SIZE)),
              (slice(width, x.shape[1]), slice(0, N_AA)))
    for step in range(1, cfg.max_iter + 1):
        masked = x == mask_tok  # (B, N) still to decode (only ever inside gen_pos)
        masked &= gen_pos
        if not masked.any():
            break
        logits = model.sampling_logits(x, single_modality)  # (B, N, V)
        if logits_processor is not None:
            logits = logits_processor(step, x, logits)
        tok = x.clone()  # (B, N); only entries at ``masked`` are used
        tok_score = torch.zeros_like(scores)  # (B, N)
        for cols, part in halves:
            sel = masked[:, cols]  # (B, W)
            if not sel.any():
                continue
            lg = logits[:, cols, part][sel].float()  # (M, P): masked positions, own modality
            if temps is not None:
                lg = lg / temps[step - 1]
            lg = top_p_filter(lg, cfg.top_p)
            logp = lg.log_softmax(dim=-1)  # (M, P)
            if temps is None:
                k = logp.argmax(dim=-1)  # (M,)
            else:
                k = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
            tok[:, cols][sel] = k + part.start
            tok_score[:, cols][sel] = logp.gather(-1, k[:, None]).squeeze(-1)
        x = torch.where(masked, tok, x)
        scores = torch.where(masked, tok_score, scores)
        rate = cfg.still_masked(step)
        k = (n_gen.float() * rate).long()  # (B,) positions to keep masked
        if int(k.max()) > 0:
            rank_scores = scores.clone()
            if s > 0:
                u = torch.rand(x.shape, generator=generator, device=x.device)
                gumbel = -torch.log(-torch.log(u.clamp_min(1e-20)).clamp_min(1e-20))
                rank_scores = rank_scores + s * (1.0 - step / cfg.max_iter) * gumbel
            rank_scores = rank_scores.masked_fill(fixed, float("inf"))  # never re-mask these
            remask = _lowest_k(rank_scores, k) & gen_pos
            x = torch.where(remask, mask_tok, x)
            scores = scores.masked_fill(remask, 0.0)
        if callback is not None:
            callback(step, x)
    assert not (x == PAD).logical_xor(input_ids == PAD).any(), "padding changed"
    return x, scores
