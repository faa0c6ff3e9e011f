"""The reference's decoding (reparameterized discrete-diffusion unmasking), spec §5.

The positions to generate, G, are those holding their modality's mask token in the input
(``<mask_struct>`` in the structure part, ``<mask>`` in the amino-acid part); every other
non-pad position is conditioning and never changes. The modality of a position is its id in
the input (< 33: amino acid), so the input is either two halves (structure then amino acids)
or one modality alone (sequence-only / backbone-only generation feed one half, as the
reference does). For step t = 1..N (N = ``max_iter``), exactly as bytedance/dplm's
``MultimodalDiffusionProteinLanguageModel.generate`` / ``forward_decoder`` /
``_reparam_decoding`` do it:

1. one forward pass (halves never blinded); at **every** position of G, masked or already
   decoded: ``log_softmax`` over all 8229 ids, then the other modality's ids and the banned ids
   set to ``-inf`` (no renormalisation: scores are full-vocabulary log-probabilities);
2. ``argmax``: token = argmax, score = its log-probability (top-p cannot change either, so it
   is skipped). Sampling: top-p at temperature 1, then divide by the temperature, sample from
   the renormalised distribution, score = the token's log-probability under it;
   ``annealing@Tmax:Tmin`` uses T_i = Tmin + (Tmax - Tmin)(1 - i/N) at step index i = t - 1;
3. re-masking, separately per modality (amino acids first, then structure): with n the
   modality's number of positions in G and rate = 1 - t/N (``cosine``: cos(pi/2 t/N)),
   k = floor(float32(n) * rate); rank all n positions by this step's scores (plus Gumbel noise
   ``-log(-log(u + 1e-8) + 1e-8)`` times s * rate for ``stochastic<s>``) and mask those strictly
   below the k-th smallest (0-based; fewer than k when the boundary ties). Of the others,
   positions that were masked take this step's token; decoded positions keep theirs.

DPLM-2 Bit (:mod:`dplm2.lm.bit`, a model with ``is_bit``): step 2 is the reference's
``DPLM2Bit.forward_decoder``: amino acids from the 33-id head with all but the 20 standard
residues at -inf (whatever ``banned`` says), top-p on those (``cfg.top_p``, in argmax too), and
the score the log-probability renormalised over the nucleus; structure tokens from the 13 bit
heads, each bit argmax or sampled at the step's temperature, token = 36 + sum_j bit_j
2^(12-j), score = the sum of the chosen bits' log-probabilities. Re-masking as above. The
input must hold both halves.

Every run is exactly N forward passes (decoded tokens can still be re-masked until the end).

Deliberate deviation (README): by default (``banned: standard``) the ESM alphabet's ``.``,
``-`` and ``<null_1>`` are banned as well, which the reference emits as amino acids;
``banned: reference`` reproduces the reference bit for bit.

Cost: per step one forward pass and one projection of G's hidden states onto the vocabulary,
in chunks of ``rows_per_chunk`` positions, so at most (chunk, 8229) float32 scores exist at
a time (the reference holds (B, N, 8229) logits, their log-softmax and top-p's sorted copies);
top-p sorts only the modality's part of the vocabulary (8196 or 33 ids, not 8229 at every
position). Sampled tokens come from a different random stream than the reference's
(``torch.distributions.Categorical`` over (B, N, 8229)); the distribution is the same.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from dplm2.config import ConfigError, StageConfig
from dplm2.lm.vocab import MASK, N_AA, PAD, STRUCT_MASK, VOCAB_SIZE, banned_mask

#: ``processor(step, tokens (B, N), rows (M,), cols (M,), log_probs (M, V)) -> log_probs``:
#: changes the full-vocabulary log-probabilities of the G positions ``(rows[i], cols[i])``
#: before top-p and the choice of tokens (guidance; may work in place).
LogProbProcessor = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class SamplerConfig(StageConfig):
    """Decoding settings (spec §5). Each generation task has its own defaults in the schema
    (``generate.<task>.sampling``); the default section is folding's: 100 steps, argmax,
    deterministic unmasking."""

    SECTION = "generate.folding.sampling"

    max_iter: int
    strategy: str
    temperature: float
    unmasking: str
    schedule: str
    top_p: float
    banned: str
    rows_per_chunk: int

    def __post_init__(self) -> None:
        self.temperatures()  # parses strategy
        self.noise_scale()  # parses unmasking

    def temperatures(self) -> list[float] | None:
        """Temperature per step index i = 0..N-1; ``None`` for argmax."""
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
            # the reference: rate = 1 - step / max_step with step = 0..N-1 (never quite T_min)
            return [lo + (hi - lo) * (1 - i / n) for i in range(n)]
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
        """Rate of step ``step`` (1-based): the fraction of each modality's generated positions
        masked after it (``linear``: 1 - t/N, ``cosine``: cos(pi/2 t/N))."""
        x = step / self.max_iter
        return 1.0 - x if self.schedule == "linear" else math.cos(math.pi / 2 * x)


def top_p_filter(log_probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The reference's nucleus filter on (..., V) scores: sorted by probability, a token is
    dropped (-inf) when the cumulative probability of the tokens before it exceeds ``top_p``
    (strictly); the most likely token is always kept."""
    if top_p >= 1.0:
        return log_probs
    sorted_lp, order = log_probs.sort(dim=-1, descending=True)
    cum = sorted_lp.softmax(dim=-1).cumsum(dim=-1)
    drop = torch.zeros_like(cum, dtype=torch.bool)
    drop[..., 1:] = cum[..., :-1] > top_p
    return log_probs.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def gumbel_noise(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """The reference's Gumbel noise: -log(-log(u + 1e-8) + 1e-8), u ~ U[0, 1)."""
    u = torch.rand(shape, generator=generator, device=device)
    return -torch.log(-torch.log(u + 1e-8) + 1e-8)


def lowest_k(scores: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The reference's ``topk_masking``: (B, N) scores, (B, 1) k -> positions strictly below
    the k-th smallest score (0-based), i.e. k of them without ties."""
    cutoff = scores.sort(dim=-1).values.gather(-1, k)
    return scores < cutoff


def _choose(lp: torch.Tensor, temp: float | None, top_p: float,
            generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token and score per row of one modality's scores ``lp`` (m, P)."""
    if temp is None:
        score, tok = lp.max(dim=-1)
        return tok, score
    lp = top_p_filter(lp, top_p) / temp
    lp = lp.log_softmax(dim=-1)
    tok = torch.multinomial(lp.exp(), 1, generator=generator).squeeze(-1)
    return tok, lp.gather(-1, tok[:, None]).squeeze(-1)


@torch.no_grad()
def iterative_unmask(
    model,
    input_ids: torch.Tensor,
    cfg: SamplerConfig,
    generator: torch.Generator | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    processor: LogProbProcessor | None = None,
    banned: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate the masked positions of ``input_ids`` with the reference's decoding.

    Parameters
    ----------
    model : DPLM2LM
        Anything with ``hidden_states(input_ids) -> (B, N, H)`` and
        ``vocab_log_probs(hidden (M, H)) -> (M, V)`` full-vocabulary log-probabilities.
    input_ids : (B, N) long
        Two halves, or one modality alone; ``<mask_struct>`` / ``<mask>`` marks what to
        generate.
    cfg : SamplerConfig
    generator : torch.Generator, optional
        On the input's device; makes sampling and stochastic unmasking reproducible.
    callback : callable, optional
        ``callback(step, tokens)`` after each step (for trajectories / tests).
    processor : callable, optional
        :data:`LogProbProcessor` (e.g. :class:`dplm2.generate.ss_guidance.SSGuidance`).
    banned : (V,) bool, optional
        Ids never emitted, on top of ``cfg.banned`` (e.g. codes a small tokenizer lacks).

    Returns
    -------
    tokens : (B, N) long
        Input with every masked position filled; conditioning positions unchanged.
    scores : (B, N) float
        The reference's output scores: each generated token's score when it was decoded; 0
        at conditioning positions.
    """
    dev = input_ids.device
    x = input_ids.clone()
    is_aa = (x < N_AA) & (x != PAD)  # (B, N) modality of each position (fixed)
    gen_pos = (x == MASK) | (x == STRUCT_MASK)  # (B, N) G: positions to generate
    still = gen_pos.clone()  # (B, N) masked now (the reference's xt_neq_x0)
    scores = torch.zeros(x.shape, dtype=torch.float32, device=dev)
    ban = banned_mask(cfg.banned, dev)
    if banned is not None:
        ban = ban | banned.to(dev)
    banned_ids = ban.nonzero(as_tuple=True)[0]
    # G grouped by modality, amino acids first (the reference's order), each in row-major
    # order, so that a chunk's own part of the vocabulary is a view of its scores, not a copy:
    # (member (B, N), vocabulary part, mask token, rows (m,), cols (m,))
    groups = []
    for member, part, mask_tok in ((gen_pos & is_aa, slice(0, N_AA), MASK),
                                   (gen_pos & ~is_aa, slice(N_AA, VOCAB_SIZE), STRUCT_MASK)):
        r, c = member.nonzero(as_tuple=True)
        if len(r):
            groups.append((member, part, mask_tok, r, c))
    if not groups:
        return x, scores
    bit = bool(getattr(model, "is_bit", False))
    if bit:  # DPLM-2 Bit: its own choice per modality (dplm2.lm.bit), the same re-masking
        from dplm2.lm.bit import choose_aa, choose_struct
        from dplm2.lm.model import is_paired

        if processor is not None:
            raise NotImplementedError("log-probability processors (guidance) work on the "
                                      "8229-id head; a DPLM-2 Bit model has none")
        if banned is not None and banned[N_AA:].any():
            raise ValueError("a DPLM-2 Bit model emits every one of the 8192 codes; it cannot "
                             "ban structure codes (a tokenizer with fewer codes cannot serve it)")
        if not is_paired(x):
            raise ValueError("a DPLM-2 Bit model reads two halves (structure, amino acids); "
                             "feed both, the unused one fully masked")
        aa_banned = None if banned is None else banned.to(dev)
    rows, cols = torch.cat([g[3] for g in groups]), torch.cat([g[4] for g in groups])
    temps = cfg.temperatures()
    s = cfg.noise_scale()
    chunk = cfg.rows_per_chunk
    for step in range(1, cfg.max_iter + 1):
        temp = None if temps is None else temps[step - 1]
        hidden = model.hidden_states(x)  # (B, N, H): the reference never blinds halves here
        cur_tok, cur_score = [], []
        for _, part, _, r_all, c_all in groups:
            for start in range(0, len(r_all), chunk):
                r, c = r_all[start : start + chunk], c_all[start : start + chunk]
                if bit:
                    if part.start == 0:
                        tok, score = choose_aa(model.aa_logits(hidden[r, c]), temp, cfg.top_p,
                                               aa_banned, generator)
                    else:
                        tok, score = choose_struct(model.struct_logits(hidden[r, c]), temp,
                                                   generator)
                    cur_tok.append(tok)
                    cur_score.append(score)
                    continue
                lp = model.vocab_log_probs(hidden[r, c])  # (m, V) float32, our temporary
                if processor is not None:
                    lp = processor(step, x, r, c, lp)
                lp.index_fill_(1, banned_ids, float("-inf"))
                tok, score = _choose(lp[:, part], temp, cfg.top_p, generator)  # own modality
                cur_tok.append(tok + part.start)
                cur_score.append(score)
        fresh_tok = x.clone()
        fresh = scores.clone()  # the reference's cur_scores: fresh at G, old elsewhere
        fresh_tok[rows, cols] = torch.cat(cur_tok)
        fresh[rows, cols] = torch.cat(cur_score)
        rate = cfg.still_masked(step)
        new_still = torch.zeros_like(still)
        x_next, scores_next = x.clone(), scores.clone()
        for member, _, mask_tok, _, _ in groups:
            n = member.sum(dim=1, keepdim=True).to(torch.float32)  # (B, 1)
            k = (n * rate).long()  # as the reference rounds it
            rank = fresh.masked_fill(~member, 1000.0)
            if s > 0:
                rank = rank + (s * rate) * gumbel_noise(rank.shape, generator, dev)
            remask = lowest_k(rank, k) & member
            x_next = x_next.masked_fill(remask, mask_tok)
            scores_next = scores_next.masked_fill(remask, float("-inf"))
            take = still & member & ~remask  # masked before, decoded now
            x_next = torch.where(take, fresh_tok, x_next)
            scores_next = torch.where(take, fresh, scores_next)
            new_still |= remask
        x, scores, still = x_next, scores_next, new_still
        if callback is not None:
            callback(step, x)
    assert not (x == PAD).logical_xor(input_ids == PAD).any(), "padding changed"
    return x, scores
