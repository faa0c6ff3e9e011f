"""The sampler is the reference's decoding (spec §5), checked against a plain-torch restatement.

The restatement below is written from spec §5 step by step on (B, N, V) logits of the
reference's forward pass (``reference_logits``: plain torch on the raw tensors of a tiny
checkpoint in the released layout), independent of ``dplm2.lm.sampling`` and of our network
code; our sampler runs on the same checkpoint loaded through ``load_lm``. Argmax with
deterministic and with stochastic unmasking (the Gumbel noise drawn from the same generator in
the same order: amino acids, then structure, over (B, N)) must give identical tokens in every
task. Then one test per rule: quota per modality, re-masking of decoded positions, the
temperature schedule, top-p before temperature, ties, banned ids.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dplm2.lm.load import load_lm
from dplm2.lm import vocab as V
from dplm2.lm.sampling import SamplerConfig, iterative_unmask, lowest_k, top_p_filter

from .helpers import official_names, write_official
from .test_official_checkpoint import reference_logits

# the reference's special_token_list (dplm2.py): cls/eos/mask of both modalities, pad, both unk,
# and X, B, U, Z, O -- by name, in the released vocabulary
REF_BANNED_NAMES = ("<cls_aa>", "<eos_aa>", "<mask_aa>", "<cls_struct>", "<eos_struct>",
                    "<mask_struct>", "<pad>", "<unk_aa>", "<unk_struct>", "X", "B", "U", "Z", "O")


def restated_decoding(logits_fn, tokens, names, max_iter, noise=0.0, generator=None):
    """Spec §5, argmax: ``tokens`` (B, N) in the released ids, masks where to generate."""
    tok = {n: i for i, n in enumerate(names)}
    pad, mask_aa, mask_st = tok["<pad>"], tok["<mask_aa>"], tok["<mask_struct>"]
    bounds = [tok[n] for n in ("<cls_aa>", "<eos_aa>", "<cls_struct>", "<eos_struct>")]
    aa_type = (tokens < 33) & (tokens != pad)
    gen = (tokens == mask_aa) | (tokens == mask_st)  # non-special and not conditioning
    assert not (gen & torch.isin(tokens, torch.tensor(bounds + [pad]))).any()
    out, scores, still = tokens.clone(), torch.zeros(tokens.shape), gen.clone()
    for i in range(max_iter):
        t = i + 1
        lp = logits_fn(out).float().log_softmax(-1)  # (B, N, V): all ids
        lp[aa_type & gen] = lp[aa_type & gen].index_fill(-1, torch.arange(33, lp.shape[-1]), -math.inf)
        lp[~aa_type & gen] = lp[~aa_type & gen].index_fill(-1, torch.arange(33), -math.inf)
        lp[..., [tok[n] for n in REF_BANNED_NAMES]] = -math.inf
        best, arg = lp.max(-1)
        cur_tok, cur_score = torch.where(gen, arg, out), torch.where(gen, best, scores)
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
def released(tmp_path_factory):
    folder = tmp_path_factory.mktemp("released") / "dplm2_tiny"
    names = official_names()  # the released ids are ours (official_id_map is the identity)
    state = write_official(folder, names)
    return load_lm(folder), state, names


def task_inputs(task: str) -> torch.Tensor:
    """Our ids for each task: two proteins of different lengths (padding), or one half."""
    v = V.DPLM2Vocab()
    rng = np.random.default_rng(1)
    seqs, codes = ("MKTAYIAKQRQISFVK", "GSHMLEDP"), [rng.integers(0, 8192, n) for n in (16, 8)]
    codes[1][3] = -1  # an <unk_struct> in a given structure stays conditioning
    if task in ("sequence", "backbone"):
        halves = [v.encode_aa(None, n) if task == "sequence" else v.encode_struct(None, n)
                  for n in (16, 8)]
        out = torch.full((2, 18), V.PAD)
        for i, h in enumerate(halves):
            out[i, : len(h)] = h
        return out
    pairs = []
    for s, c in zip(seqs, codes):
        st = v.encode_struct(c) if task == "inverse_folding" else v.encode_struct(None, len(s))
        aa = v.encode_aa(s) if task == "folding" else v.encode_aa(None, len(s))
        if task == "scaffold":  # motif residues 3..6 fixed in both halves
            st[3:7], aa[3:7] = v.encode_struct(c)[3:7], v.encode_aa(s)[3:7]
        pairs.append((st, aa))
    return v.collate(pairs)[0]


TASKS = ("cogen", "folding", "inverse_folding", "scaffold", "sequence", "backbone")


@pytest.mark.parametrize("unmasking", ["deterministic", "stochastic1.0"])
@pytest.mark.parametrize("task", TASKS)
def test_argmax_decoding_equals_the_restated_reference(released, task, unmasking):
    model, state, names = released
    ids = task_inputs(task)
    cfg = SamplerConfig.from_dict(dict(max_iter=10, strategy="argmax", unmasking=unmasking, banned="reference"))
    ours, _ = iterative_unmask(model, ids, cfg, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = restated_decoding(lambda x: reference_logits(state, names, x), ids, names, 10,
                                noise=cfg.noise_scale(), generator=torch.Generator().manual_seed(3))
    assert torch.equal(ours, ref)
    gen = (ids == V.MASK) | (ids == V.STRUCT_MASK)
    assert not ((ours == V.MASK) | (ours == V.STRUCT_MASK)).any()  # everything decoded
    assert torch.equal(ours[~gen], ids[~gen])  # conditioning and padding untouched
    aa = (ids < V.N_AA) & (ids != V.PAD)
    assert (ours[gen & aa] < V.N_AA).all() and (ours[gen & ~aa] >= V.N_AA).all()


# -- one rule at a time, on a model whose scores are set by the test ---------------------------
class Scripted(torch.nn.Module):
    """``hidden_states`` passes the ids through; ``vocab_log_probs`` returns log-probs from
    ``fn(ids_at_positions)`` -- the test decides every score."""

    def __init__(self, fn):
        super().__init__()
        self.fn, self.calls = fn, 0

    def hidden_states(self, ids):
        self.calls += 1
        self._ids = ids
        return ids[..., None].float()

    def vocab_log_probs(self, hidden):
        return self.fn(hidden[:, 0].long()).log_softmax(-1)


def peaked(token_of, conf_of):
    """Log-probs peaked on ``token_of(current id)`` with a confidence per position."""
    def fn(cur):
        logits = torch.full((len(cur), V.VOCAB_SIZE), -20.0)
        logits[torch.arange(len(cur)), token_of(cur)] = conf_of(cur)
        return logits
    return fn


def test_quota_is_per_modality_and_exact():
    ids = task_inputs("cogen")[:1]  # one protein of 16: 16 structure + 16 amino-acid positions
    masked_per_step = []
    cfg = SamplerConfig.from_dict(dict(max_iter=7))
    rng = torch.Generator().manual_seed(0)
    model = Scripted(lambda cur: torch.randn(len(cur), V.VOCAB_SIZE, generator=rng))
    iterative_unmask(model, ids, cfg, callback=lambda s, x: masked_per_step.append(
        (int((x == V.STRUCT_MASK).sum()), int((x == V.MASK).sum()))))
    expected = [(math.floor(16 * (1 - t / 7)),) * 2 for t in range(1, 8)]
    assert masked_per_step == expected
    assert model.calls == 7  # always max_iter forward passes


def test_decoded_positions_are_rescored_and_can_be_remasked():
    """Step 1 decodes the 4 most confident of 16 positions; from then on the model is unsure
    at decoded positions (flat logits: low fresh scores), so at step 2 they are re-masked
    although decoded, and still-masked positions take their place."""
    ids = task_inputs("sequence")[:1]  # 16 amino-acid positions

    def fn(cur):
        logits = torch.zeros(len(cur), V.VOCAB_SIZE)
        logits[:, V.AA_TOKENS.index("A")] = 12.0 - torch.linspace(0, 4, len(cur))  # p 0.95..0.27
        return torch.where((cur != V.MASK)[:, None], torch.zeros_like(logits), logits)

    hist = []
    iterative_unmask(Scripted(fn), ids, SamplerConfig.from_dict(dict(max_iter=4)),
                     callback=lambda s, x: hist.append(x[0, 1:17].clone()))
    first, second = hist[0] != V.MASK, hist[1] != V.MASK
    assert first.sum() == 4 and second.sum() == 8
    assert not (first & second).any()  # every position decoded at step 1 was re-masked at step 2


def test_annealing_schedule_is_the_reference():
    temps = SamplerConfig.from_dict(dict(max_iter=4, strategy="annealing@2.2:1.0")).temperatures()
    assert temps == pytest.approx([2.2, 1.9, 1.6, 1.3])  # 1.0 + 1.2 (1 - i/4), i = 0..3
    assert SamplerConfig.from_dict(dict(strategy="argmax")).temperatures() is None


def test_top_p_is_applied_before_the_temperature():
    """p = (0.6, 0.3, 0.1) over three residues: the T = 1 nucleus at 0.8 is the first two
    (cumulative before the third: 0.9 > 0.8); at T = 5 the third is not in it either."""
    letters = [V.AA_TOKENS.index(c) for c in "LAG"]

    def fn(cur):
        logits = torch.full((len(cur), V.VOCAB_SIZE), -math.inf)
        logits[:, letters] = torch.tensor([0.6, 0.3, 0.1]).log()
        return logits

    ids = torch.tensor([[V.CLS] + [V.MASK] * 400 + [V.EOS]])
    out, _ = iterative_unmask(Scripted(fn), ids, SamplerConfig.from_dict(dict(max_iter=1, strategy="sample",
                                                                temperature=5.0, top_p=0.8)),
                              generator=torch.Generator().manual_seed(0))
    drawn = set(out[0, 1:-1].tolist())
    assert drawn == set(letters[:2])  # after T = 5 the third (p ~ 0.26) would appear
    lp = torch.tensor([0.6, 0.3, 0.1]).log()
    assert torch.isinf(top_p_filter(lp, 0.8)).tolist() == [False, False, True]
    assert torch.isinf(top_p_filter(lp, 0.9)).tolist() == [False, False, False]  # 0.9 !> 0.9


def test_ties_mask_strictly_below_the_cutoff():
    scores = torch.tensor([[0.0, 0.0, 0.0, 1.0], [-3.0, -2.0, -1.0, 0.0]])
    got = lowest_k(scores, torch.tensor([[1], [2]]))
    assert got.tolist() == [[False] * 4, [True, True, False, False]]


@pytest.mark.parametrize("banned,allowed", [("reference", True), ("standard", False)])
def test_banned_ids(banned, allowed):
    dot, null = V.AA_TOKENS.index("."), V.AA_TOKENS.index("<null_1>")
    fn = peaked(lambda cur: torch.where(torch.arange(len(cur)) % 2 == 0, dot, null),
                lambda cur: torch.full((len(cur),), 10.0))
    ids = torch.tensor([[V.CLS] + [V.MASK] * 6 + [V.EOS]])
    out, _ = iterative_unmask(Scripted(fn), ids, SamplerConfig.from_dict(dict(max_iter=3, banned=banned)))
    emitted = set(out[0, 1:-1].tolist())
    assert (emitted == {dot, null}) is allowed
    assert not emitted & set(V.REFERENCE_BANNED)
    if not allowed:
        assert not emitted & set(V.NON_RESIDUE_IDS)
    assert len(V.DPLM2Vocab().decode_aa(out[0])) == 6  # <null_1> decodes as X, length kept
