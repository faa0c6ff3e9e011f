"""Iterative unmasking: conditioning kept, specials never emitted, schedules, strategies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dplm2.config import ConfigError
from dplm2.lm import vocab as V
from dplm2.lm.sampling import SamplerConfig, iterative_unmask, top_p_filter

from .helpers import tiny_model


class Oracle(torch.nn.Module):
    """Logits peaked on a known target; confidence grows along the sequence, so the
    deterministic order of decoding is known."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target = target
        self.calls = 0

    def sampling_logits(self, ids, single_modality=None):
        self.calls += 1
        b, n = ids.shape
        logits = torch.full((b, n, V.VOCAB_SIZE), -5.0)
        conf = torch.linspace(1.0, 6.0, n)[None, :].expand(b, n)
        logits.scatter_(-1, self.target[..., None], conf[..., None])
        logits[..., list(V.SPECIAL_IDS)] = float("-inf")
        width = n // 2
        logits[:, :width, : V.N_AA] = float("-inf")
        logits[:, width:, V.N_AA :] = float("-inf")
        return logits


def _task(fold: bool):
    v = V.DPLM2Vocab()
    seq, codes = "MKVLAAGIVGLLLA", np.arange(14) * 311
    clean, width = v.collate([v.encode(seq, codes), v.encode(seq[:9], codes[:9])])
    x, _ = v.collate([v.encode(seq if fold else None, None if fold else codes),
                      v.encode(seq[:9] if fold else None, None if fold else codes[:9])])
    return clean, x, width


@pytest.mark.parametrize("fold", [True, False])
def test_argmax_recovers_oracle_and_keeps_conditioning(fold):
    clean, x, width = _task(fold)
    target = torch.where(clean == V.PAD, torch.full_like(clean, 5), clean)
    steps = []
    out, scores = iterative_unmask(
        Oracle(target), x, SamplerConfig(max_iter=10), callback=lambda s, t: steps.append(t.clone())
    )
    assert torch.equal(out, clean)
    fixed = (x != V.MASK) & (x != V.STRUCT_MASK)
    for t in steps:
        assert torch.equal(t[fixed], x[fixed])  # conditioning never changes
    gen = ~fixed
    n_gen = gen.sum(1)
    for step, t in enumerate(steps, start=1):  # linear schedule: floor(n (1 - t/N)) still masked
        still = ((t == V.MASK) | (t == V.STRUCT_MASK)).sum(1)
        assert torch.equal(still, (n_gen.float() * (1 - step / 10)).long())
    assert (scores[fixed] == 0).all() and (scores[gen] <= 0).all()


def test_cosine_schedule_and_strategies():
    cfg = SamplerConfig(max_iter=4, schedule="cosine")
    assert cfg.still_masked(2) == pytest.approx(math.cos(math.pi / 4))
    assert cfg.still_masked(4) == pytest.approx(0.0, abs=1e-12)
    ann = SamplerConfig(max_iter=5, strategy="annealing@2.0:1.0").temperatures()
    assert ann == pytest.approx([2.0, 1.75, 1.5, 1.25, 1.0])
    assert SamplerConfig(unmasking="stochastic0.5").noise_scale() == 0.5
    for bad in ({"strategy": "nucleus"}, {"unmasking": "random"}, {"top_p": 0.0},
                {"schedule": "sqrt"}, {"bogus": 1}):
        with pytest.raises(ConfigError):
            SamplerConfig.from_dict(bad)


def test_top_p_filter():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(top_p_filter(logits, 0.75))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 1.0)).all()
    assert torch.isfinite(top_p_filter(logits, 0.1)).tolist() == [[True, False, False, False]]


@pytest.mark.parametrize(
    "cfg",
    [
        SamplerConfig(max_iter=6, strategy="sample", temperature=1.5, unmasking="stochastic1.0"),
        SamplerConfig(max_iter=6, strategy="annealing@2.0:1.0", top_p=0.9),
        SamplerConfig(max_iter=6, schedule="cosine"),
    ],
)
def test_real_model_no_specials_and_reproducible(cfg):
    model = tiny_model().eval()
    v = V.DPLM2Vocab()
    x, width = v.collate([v.encode(None, [1, 2, 3, 4, 5]), v.encode(None, [9] * 8)])  # co-generation
    x[0, width + 2] = 5  # one amino acid given as conditioning
    a, _ = iterative_unmask(model, x, cfg, generator=torch.Generator().manual_seed(0))
    b, _ = iterative_unmask(model, x, cfg, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    gen = (x == V.MASK) | (x == V.STRUCT_MASK)
    assert not V.special_mask(a[gen]).any()
    assert (a[:, :width][gen[:, :width]] >= V.STRUCT_OFFSET).all()
    assert (a[:, width:][gen[:, width:]] < V.N_AA).all()
    assert torch.equal(a[~gen], x[~gen])


def _full_vocab_argmax(model, x, cfg):
    """Reference: the sampler over all 8229 ids at every position (the pre-slicing code)."""
    from dplm2.lm.sampling import _lowest_k

    x = x.clone()
    gen_pos = (x == V.MASK) | (x == V.STRUCT_MASK)
    mask_tok = torch.where(torch.arange(x.shape[1]) < x.shape[1] // 2,
                           torch.tensor(V.STRUCT_MASK), torch.tensor(V.MASK)).expand_as(x)
    scores = torch.zeros(x.shape)
    n_gen = gen_pos.sum(1)
    for step in range(1, cfg.max_iter + 1):
        masked = (x == mask_tok) & gen_pos
        logp = top_p_filter(model.sampling_logits(x), cfg.top_p).log_softmax(-1)
        tok = logp.argmax(-1)
        x = torch.where(masked, tok, x)
        scores = torch.where(masked, logp.gather(-1, tok[..., None]).squeeze(-1), scores)
        k = (n_gen.float() * cfg.still_masked(step)).long()
        if int(k.max()) > 0:
            remask = _lowest_k(scores.masked_fill(~gen_pos, float("inf")), k) & gen_pos
            x = torch.where(remask, mask_tok, x)
            scores = scores.masked_fill(remask, 0.0)
    return x, scores


@pytest.mark.parametrize("task", ["fold", "inverse", "cogen"])
def test_slice_restricted_argmax_equals_full_vocabulary(task):
    """Working on each modality's vocabulary slice at masked positions only changes nothing
    for argmax decoding (tokens and scores), on a real model's logits."""
    torch.manual_seed(3)
    model = tiny_model(seed=3).eval()
    v = V.DPLM2Vocab()
    seqs, codes = ["MKVLAAGIVGLLLAQE", "GSHMLEDP"], [np.arange(16) * 509 % 8192, np.arange(8) * 7]
    given = {
        "fold": [v.encode(s, None) for s in seqs],
        "inverse": [v.encode(None, c) for c in codes],
        "cogen": [(v.encode_struct(None, len(s)), v.encode_aa(None, len(s))) for s in seqs],
    }[task]
    x, _ = v.collate(given)
    cfg = SamplerConfig(max_iter=5, top_p=0.9)
    got, got_scores = iterative_unmask(model, x, cfg)
    ref, ref_scores = _full_vocab_argmax(model, x, cfg)
    assert torch.equal(got, ref)
    torch.testing.assert_close(got_scores, ref_scores)
