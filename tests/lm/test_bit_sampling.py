"""DPLM-2 Bit decoding: our sampler against a step-by-step plain-torch restatement of the
reference's ``DPLM2Bit.forward_decoder`` + ``_reparam_decoding`` (argmax), on a tiny
checkpoint in the released bit layout (forward: :func:`test_bit.plain_bit_forward`)."""

from __future__ import annotations

import math

import pytest
import torch

from dplm2.lm import bit
from dplm2.lm.load import load_lm
from dplm2.lm import vocab as V
from dplm2.lm.sampling import SamplerConfig, iterative_unmask

from .helpers import write_official_bit
from .test_bit import plain_bit_forward
from .test_reference_decoding import task_inputs


def restated_bit_decoding(state, tokens, max_iter, top_p=0.95, noise=0.0, generator=None):
    pad, mask_aa, mask_st = 1, 32, 8228
    aa_type = (tokens < 33) & (tokens != pad)
    gen = (tokens == mask_aa) | (tokens == mask_st)
    out, scores, still = tokens.clone(), torch.zeros(tokens.shape), gen.clone()
    weights = 2 ** torch.arange(12, -1, -1)
    for i in range(max_iter):
        t = i + 1
        st_logits, aa_logits = plain_bit_forward(state, out)
        aa_logits = aa_logits.clone()
        aa_logits[..., :4] = -math.inf  # reference: aatype_logits[:, :, :4] = -inf
        aa_logits[..., 24:] = -math.inf  # and [:, :, 24:]
        srt, idx = aa_logits.sort(-1, descending=True)  # top_k_top_p_filtering(top_p=0.95)
        drop = srt.softmax(-1).cumsum(-1) > top_p
        drop[..., 1:] = drop[..., :-1].clone()
        drop[..., 0] = False
        srt[drop] = -math.inf
        aa_logits = srt.gather(-1, idx.argsort(-1))
        aa_score, aa_tok = aa_logits.log_softmax(-1).max(-1)  # sample_from_categorical(T=0)
        bit_score, bits = st_logits.log_softmax(-1).max(-1)  # (B, W, 13)
        st_tok = (bits * weights).sum(-1) + 36
        new_tok = torch.cat([st_tok, aa_tok], 1)
        new_score = torch.cat([bit_score.sum(-1), aa_score], 1)
        cur_tok, cur_score = torch.where(gen, new_tok, out), torch.where(gen, new_score, scores)
        rate = 1 - t / max_iter
        nxt_tok, nxt_score, nxt_still = out.clone(), scores.clone(), torch.zeros_like(still)
        for part, mask_id in ((gen & aa_type, mask_aa), (gen & ~aa_type, mask_st)):
            if not part.any():
                continue
            k = (part.sum(1, keepdim=True).float() * rate).long()
            rank = cur_score.masked_fill(~part, 1000.0)
            if noise:
                u = torch.rand(rank.shape, generator=generator)
                rank = rank + noise * rate * -torch.log(-torch.log(u + 1e-8) + 1e-8)
            low = rank < rank.sort(-1).values.gather(-1, k)
            nxt_tok[low], nxt_score[low] = mask_id, -math.inf
            new = still & part & ~low
            nxt_tok[new], nxt_score[new] = cur_tok[new], cur_score[new]
            nxt_still |= low
        out, scores, still = nxt_tok, nxt_score, nxt_still
    return out


@pytest.fixture(scope="module")
def released_bit(tmp_path_factory):
    folder = tmp_path_factory.mktemp("released") / "dplm2_bit_tiny"
    state = write_official_bit(folder)
    return load_lm(folder), state


@pytest.mark.parametrize("unmasking", ["deterministic", "stochastic1.0"])
@pytest.mark.parametrize("task", ["cogen", "folding", "inverse_folding", "scaffold"])
def test_bit_argmax_decoding_equals_the_restated_reference(released_bit, task, unmasking):
    model, state = released_bit
    ids = task_inputs(task)
    cfg = SamplerConfig.from_dict(dict(max_iter=8, strategy="argmax", unmasking=unmasking))
    ours, _ = iterative_unmask(model, ids, cfg, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = restated_bit_decoding(state, ids, 8, noise=cfg.noise_scale(),
                                    generator=torch.Generator().manual_seed(5))
    assert torch.equal(ours, ref)
    gen = (ids == V.MASK) | (ids == V.STRUCT_MASK)
    assert torch.equal(ours[~gen], ids[~gen])
    aa = (ids < V.N_AA) & (ids != V.PAD)
    assert ((ours[gen & aa] >= 4) & (ours[gen & aa] < 24)).all()  # the 20 standard residues
    assert ((ours[gen & ~aa] >= 36) & (ours[gen & ~aa] < 8228)).all()


def test_bit_sampling_is_reproducible_and_valid(released_bit):
    model, _ = released_bit
    ids = task_inputs("cogen")
    cfg = SamplerConfig.from_dict(dict(max_iter=6, strategy="annealing@1.1:0.1", unmasking="stochastic1.0"))
    a, sa = iterative_unmask(model, ids, cfg, generator=torch.Generator().manual_seed(1))
    b, _ = iterative_unmask(model, ids, cfg, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.isfinite(sa[(ids == V.MASK) | (ids == V.STRUCT_MASK)]).all()


def test_bit_choices():
    # structure: bits chosen per bit, token = 36 + sum bit_j 2^(12-j), score = sum of log-probs
    logits = torch.zeros(1, 13, 2)
    logits[0, 0, 1] = 3.0  # bit 0 (MSB) -> 1
    logits[0, 12, 1] = 1.0  # bit 12 (LSB) -> 1
    logits[0, 5, 0] = 2.0  # bit 5 -> 0
    tok, score = bit.choose_struct(logits, None, None)
    assert tok.item() == 36 + 4096 + 1
    expect = logits.log_softmax(-1).max(-1).values.sum()
    torch.testing.assert_close(score[0], expect)
    # amino acids: only ids 4..23; the score renormalised over the top-p nucleus
    aa = torch.full((1, 33), -10.0)
    aa[0, 0] = 50.0  # <cls>: banned
    aa[0, 5], aa[0, 6] = 5.0, 5.0 - math.log(9)  # 90% / 10% of the allowed mass
    tok, score = bit.choose_aa(aa, None, 0.95, None, None)
    assert tok.item() == 5
    # both kept by top-p 0.95 (0.9 < 0.95): score = log 0.9 (up to the tiny -10 logits)
    assert abs(score.item() - math.log(0.9)) < 1e-3
    tok, score = bit.choose_aa(aa, None, 0.5, None, None)  # nucleus = {5}: score 0
    assert tok.item() == 5 and abs(score.item()) < 1e-6


def test_bit_model_needs_both_halves_and_all_codes(released_bit):
    model, _ = released_bit
    with pytest.raises(ValueError, match="two halves"):
        iterative_unmask(model, task_inputs("sequence"), SamplerConfig.from_dict(dict(max_iter=2)))
    ban = V.banned_codes(4096)
    with pytest.raises(ValueError, match="8192"):
        iterative_unmask(model, task_inputs("cogen"), SamplerConfig.from_dict(dict(max_iter=2)), banned=ban)
