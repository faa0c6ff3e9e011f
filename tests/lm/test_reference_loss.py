"""The training loss and forward reproduce the reference (spec §4), restated here in plain torch.

The restatement below is written from the spec (and the reference's documented behaviour:
``construct_x_t``, ``q_sample``, ``get_non_special_symbol_mask``, ``StructAARDMCrossEntropyLoss``),
not by calling this project's noise or loss code: fixed clean inputs, the same generator seed,
so the same timesteps, task split and masks; then the loss on fixed logits.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dplm2.lm.data import Protein, make_batch
from dplm2.lm.diffusion import TASKS, DiffusionConfig, TaskMix, draw_tasks, q_sample, task_split_sizes
from dplm2.lm.train import diffusion_loss

T = 500
V = 8229
# ids of the layout (ESM2 alphabet, then the structure part): spelled out, not imported
CLS_AA, PAD, EOS_AA, UNK_AA, MASK_AA = 0, 1, 2, 3, 32
CLS_ST, EOS_ST, UNK_ST, MASK_ST, CODE0 = 33, 34, 35, 8228, 36
ESM = "LAGVSERTIDPKQNFYMHWCXBUZO"  # ids 4.. in ESM2's alphabet order


# -- the reference, restated ----------------------------------------------------------------
def ref_halves(proteins):
    """Clean structure / amino-acid halves (B, W) as the reference's collate pads them."""
    width = max(len(p.sequence) for p in proteins) + 2
    S = torch.full((len(proteins), width), PAD)
    A = torch.full((len(proteins), width), PAD)
    for i, p in enumerate(proteins):
        codes = [c + CODE0 if 0 <= c < 8192 else UNK_ST for c in p.codes.tolist()]
        S[i, : len(codes) + 2] = torch.tensor([CLS_ST, *codes, EOS_ST])
        A[i, : len(codes) + 2] = torch.tensor([CLS_AA, *[4 + ESM.index(c) for c in p.sequence], EOS_AA])
    return S, A


def ref_non_special(x):
    return (x != PAD) & (x != CLS_AA) & (x != EOS_AA) & (x != CLS_ST) & (x != EOS_ST)


def ref_construct_x_t(S, A, ratio, gen):
    """construct_x_t: t_s, t_a ~ U{1..T}; a random permutation split int(B * ratio) per task
    (single, folding, inverse folding, independent; joint the rest); q_sample per half."""
    B = S.shape[0]
    t_s = torch.randint(1, T + 1, (B,), generator=gen)
    t_a = torch.randint(1, T + 1, (B,), generator=gen)
    sizes = [int(B * ratio[k]) for k in ("single_modality", "folding", "inverse_folding", "independent")]
    sizes.append(B - sum(sizes))
    perm = torch.randperm(B, generator=gen)
    index = []
    for chunk in torch.split(perm, sizes):
        m = torch.zeros(B, dtype=torch.bool)
        m[chunk] = True
        index.append(m)
    single, fold, inv, _indep, joint = index
    t_s = t_s.masked_fill(inv, 0)
    u = torch.rand(S.shape, generator=gen)
    m_s = (u < (t_s / T)[:, None]) & ref_non_special(S)
    t_a = t_a.masked_fill(fold, 0)
    t_a = torch.where(joint, t_s, t_a)
    u = torch.rand(A.shape, generator=gen)
    m_a = (u < (t_a / T)[:, None]) & ref_non_special(A)
    return S.masked_fill(m_s, MASK_ST), m_s, t_s, A.masked_fill(m_a, MASK_AA), m_a, t_a, single


def ref_loss(logits, S, A, m_s, m_a, t_s, t_a, weighting="linear"):
    """StructAARDMCrossEntropyLoss: per half, log_softmax over all V ids, NLL of the target
    (pad ignored) times the weight, masked sum / max(1, #masked); the mean of the halves."""
    halves = logits.chunk(2, dim=1)
    losses = []
    for L, tgt, mask, t in ((halves[0], S, m_s, t_s), (halves[1], A, m_a, t_a)):
        w = (T - (t - 1)).float() / T if weighting == "linear" else torch.ones(t.shape)
        nll = -F.log_softmax(L.double(), dim=-1).gather(-1, tgt[..., None]).squeeze(-1)
        nll = nll.masked_fill(tgt == PAD, 0.0) * w[:, None].double()
        losses.append((nll * mask.double()).sum() / max(1.0, float(mask.sum())))
    return sum(losses) / len(losses)


class FixedLogits(torch.nn.Module):
    """Stands in for the model: fixed (B, 2W, V) logits, read at the selected positions."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, ids, single_modality=None, select=None):
        w = ids.shape[1] // 2
        return SimpleNamespace(struct=self.logits[:, :w][select[:, :w]],
                               aa=self.logits[:, w:][select[:, w:]])


def _proteins(n=7, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        L = int(rng.integers(8, 20))
        codes = rng.integers(0, 8192, L)
        codes[rng.random(L) < 0.2] = -1  # residues without coordinates: <unk_struct>
        seq = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWYX"), L))
        out.append(Protein(f"p{i}", seq, codes))
    return out


# -- the checks --------------------------------------------------------------------------
@pytest.mark.parametrize("weighting", ["linear", "constant"])
@pytest.mark.parametrize("n", [2, 4, 7, 9])
def test_loss_equals_reference_on_fixed_draws(n, weighting):
    proteins = _proteins(n)
    cfg = DiffusionConfig.from_dict(dict(weighting=weighting))
    batch = make_batch(proteins, cfg, torch.Generator().manual_seed(11))
    S, A = ref_halves(proteins)
    x_s, m_s, t_s, x_a, m_a, t_a, single = ref_construct_x_t(
        S, A, cfg.task_mix.to_dict(), torch.Generator().manual_seed(11))
    # same draws: same noised input, masks and single-modality rows
    assert torch.equal(batch["targets"], torch.cat([S, A], 1))
    assert torch.equal(batch["input_ids"], torch.cat([x_s, x_a], 1))
    assert torch.equal(batch["masked"], torch.cat([m_s, m_a], 1))
    assert torch.equal(batch["single_modality"], single)
    logits = torch.randn(n, 2 * S.shape[1], V, generator=torch.Generator().manual_seed(5)) * 3
    loss, metrics = diffusion_loss(FixedLogits(logits), batch)
    ref = ref_loss(logits, S, A, m_s, m_a, t_s, t_a, weighting)
    assert abs(float(loss) - float(ref)) < 1e-5 * max(1.0, float(ref))
    # the metrics say what they are: full-vocabulary argmax accuracy and unweighted CE
    for name, L, tgt, m in (("struct", logits[:, : S.shape[1]], S, m_s),
                            ("aa", logits[:, S.shape[1] :], A, m_a)):
        if m.any():
            acc = float((L.argmax(-1)[m] == tgt[m]).float().mean())
            nll = float(F.cross_entropy(L[m].double(), tgt[m]))
            assert abs(metrics[f"acc_full_{name}"] - acc) < 1e-6
            assert abs(metrics[f"nll_full_{name}"] - nll) < 1e-4
            assert metrics["masked_" + name] == float(m.sum())


def test_full_vocabulary_and_mean_not_modality_slice_or_sum():
    """What changed: the softmax runs over all ids (mass on the other modality costs), and the
    total is the mean of the halves. ``softmax: modality`` is the documented alternative."""
    proteins = _proteins(4, seed=3)
    batch = make_batch(proteins, DiffusionConfig.from_dict(), torch.Generator().manual_seed(2))
    n, width = batch["targets"].shape[0], batch["targets"].shape[1] // 2
    logits = torch.randn(n, 2 * width, V, generator=torch.Generator().manual_seed(1))
    full, m = diffusion_loss(FixedLogits(logits), batch)
    # raise the other modality's logits: the full-vocabulary loss grows, the sliced one not
    bumped = logits.clone()
    bumped[:, :width, :33] += 5.0
    bumped[:, width:, 33:] += 5.0
    assert float(diffusion_loss(FixedLogits(bumped), batch)[0]) > float(full) + 0.5
    sliced = diffusion_loss(FixedLogits(logits), batch, softmax="modality")[0]
    assert float(diffusion_loss(FixedLogits(bumped), batch, softmax="modality")[0]) == pytest.approx(
        float(sliced), abs=1e-5)
    # total = mean of the two halves' terms
    assert float(full) == pytest.approx((m["loss_struct"] + m["loss_aa"]) / 2, rel=1e-6)
    # restated per-modality softmax
    ms, ma = batch["masked"][:, :width], batch["masked"][:, width:]
    tgt = batch["targets"]
    ref = 0.0
    for L, y, sel, w, lo, hi in ((logits[:, :width], tgt[:, :width], ms, batch["w_struct"], 33, V),
                                 (logits[:, width:], tgt[:, width:], ma, batch["w_aa"], 0, 33)):
        ce = F.cross_entropy(L[sel][:, lo:hi], y[sel] - lo, reduction="none")
        ref += float((w[:, None].expand_as(sel)[sel] * ce).sum() / max(int(sel.sum()), 1)) / 2
    assert float(sliced) == pytest.approx(ref, rel=1e-5)
    with pytest.raises(Exception, match="softmax"):
        DiffusionConfig.from_dict(dict(softmax="half"))


def test_unknown_targets_are_noised_and_trained():
    ids = torch.tensor([[CLS_ST, UNK_ST, CODE0 + 5, UNK_ST, EOS_ST, PAD,
                         CLS_AA, UNK_AA, 5, 24, EOS_AA, PAD]])  # 24 = X
    t = torch.full((1,), T)
    noised, masked = q_sample(ids, t, t, T, torch.Generator().manual_seed(0))
    # t = T masks every maskable position: all but pad and both halves' cls/eos
    assert masked.tolist() == [[False, True, True, True, False, False,
                                False, True, True, True, False, False]]
    assert noised[0, 1] == MASK_ST and noised[0, 7] == MASK_AA
    # and an unknown target contributes to the loss like any token
    batch = {"input_ids": noised, "targets": ids, "masked": masked,
             "single_modality": torch.tensor([False]), "w_struct": torch.ones(1), "w_aa": torch.ones(1)}
    logits = torch.zeros(1, 12, V)
    base = float(diffusion_loss(FixedLogits(logits), batch)[0])
    logits[0, 1, UNK_ST] = 10.0  # the model now predicts <unk_struct> where it is the target
    assert float(diffusion_loss(FixedLogits(logits), batch)[0]) < base - 1.0


@pytest.mark.parametrize(
    "batch, sizes",
    [(1, (0, 0, 0, 0, 1)), (2, (0, 0, 0, 0, 2)), (3, (0, 0, 0, 0, 3)), (4, (1, 1, 1, 0, 1)),
     (7, (1, 1, 1, 0, 4)), (8, (2, 2, 2, 0, 2)), (13, (3, 3, 3, 0, 4)), (64, (16, 16, 16, 0, 16))],
)
def test_task_split_sizes_are_deterministic(batch, sizes):
    order = ("single_modality", "folding", "inverse_folding", "independent", "joint")
    mix = TaskMix.from_dict()
    assert tuple(task_split_sizes(batch, mix)[k] for k in order) == sizes
    for seed in range(3):
        noise = draw_tasks(batch, DiffusionConfig.from_dict(), torch.Generator().manual_seed(seed))
        counts = tuple(int((noise.task == TASKS.index(k)).sum()) for k in order)
        assert counts == sizes
        joint = noise.task == TASKS.index("joint")
        assert torch.equal(noise.t_aa[joint], noise.t_struct[joint])
    # the i.i.d. per-row draw stays available
    iid = draw_tasks(4000, DiffusionConfig.from_dict(dict(task_split="sample")), torch.Generator().manual_seed(0))
    assert abs(float((iid.task == TASKS.index("joint")).float().mean()) - 0.25) < 0.03


# -- the training forward is the inference forward -----------------------------------------
def _esm_source(tmp_path, token_dropout: bool):
    from transformers import EsmConfig, EsmForMaskedLM

    torch.manual_seed(4)
    cfg = EsmConfig(vocab_size=33, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=64, position_embedding_type="rotary", pad_token_id=PAD,
                    mask_token_id=MASK_AA, token_dropout=token_dropout, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0, max_position_embeddings=1026,
                    emb_layer_norm_before=False)
    EsmForMaskedLM(cfg).save_pretrained(tmp_path / f"src{int(token_dropout)}")
    return tmp_path / f"src{int(token_dropout)}"


def ref_forward(net, ids, single, passes):
    """The reference's forward with plain transformers calls: embed, ESM's token-dropout
    rescaling ``passes`` times, per-half positions, additive attention bias (padding keys;
    single-modality rows blind across halves), the LM head over all ids."""
    B, N = ids.shape
    valid = ids != PAD
    x = net.esm.embeddings.word_embeddings(ids)
    for _ in range(passes):
        masked = ids == MASK_AA
        ratio = masked.sum(-1).float() / valid.sum(-1).float()
        x = x.masked_fill(masked[..., None], 0.0) * (0.88 / (1 - ratio))[:, None, None]
        x = x * valid[..., None]
    half = torch.arange(N) >= N // 2
    allow = valid[:, None, :].expand(B, N, N) & (~single[:, None, None] | (half[:, None] == half[None, :]))
    bias = torch.zeros(B, 1, N, N).masked_fill(~allow[:, None], torch.finfo(torch.float32).min)
    pos = torch.cat([torch.arange(N // 2), torch.arange(N // 2)]).expand(B, N)
    h = net.esm(inputs_embeds=x, attention_mask=bias, position_ids=pos).last_hidden_state
    return net.lm_head(h)  # (B, N, V)


@pytest.mark.parametrize("token_dropout, passes", [(True, 2), (False, 0)])
def test_warm_started_model_trains_with_two_token_dropout_passes(tmp_path, token_dropout, passes):
    from dplm2.lm.model import TOKEN_DROPOUT_PASSES, DPLM2LM
    from dplm2.lm.warm_start import InitConfig, warm_start

    src = _esm_source(tmp_path, token_dropout)
    out = warm_start(InitConfig.from_dict(dict(source=str(src))), tmp_path / "init")
    model = DPLM2LM.from_pretrained(out).train()
    assert getattr(model.config, TOKEN_DROPOUT_PASSES) == passes
    assert json.loads((out / "init.json").read_text())["token_dropout_passes"] == passes
    proteins = _proteins(4, seed=1)
    mix = dict(single_modality=0, folding=0, inverse_folding=0.5, joint=0.5, independent=0)
    batch = make_batch(proteins, DiffusionConfig.from_dict(dict(task_mix=mix)),
                       torch.Generator().manual_seed(0))
    assert (batch["input_ids"] == MASK_AA).any()  # the rescaling has something to do
    sel = batch["masked"]
    width = sel.shape[1] // 2
    got = model(batch["input_ids"], batch["single_modality"], select=sel)  # training forward
    with torch.no_grad():
        ref = ref_forward(model.net, batch["input_ids"], batch["single_modality"], passes)
        other = ref_forward(model.net, batch["input_ids"], batch["single_modality"], 2 - passes)
    torch.testing.assert_close(got.struct, ref[:, :width][sel[:, :width]], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got.aa, ref[:, width:][sel[:, width:]], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got.aa, other[:, width:][sel[:, width:]], atol=1e-3)
    # the loss trains through it
    loss, _ = diffusion_loss(model, batch)
    loss.backward()
    assert math.isfinite(float(loss.detach()))
    assert model.net.esm.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0


def test_from_scratch_defaults_to_the_reference_passes_and_key_overrides(tmp_path):
    from dplm2.lm.model import TOKEN_DROPOUT_PASSES, DPLM2LM
    from dplm2.lm.warm_start import InitConfig, build_network, warm_start

    tiny = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
    assert getattr(build_network(InitConfig.from_dict({"model": tiny})).config,
                   TOKEN_DROPOUT_PASSES) == 2
    none = InitConfig.from_dict({"model": tiny, "token_dropout_passes": 0})
    out = warm_start(none, tmp_path / "zero")
    assert getattr(DPLM2LM.from_pretrained(out).config, TOKEN_DROPOUT_PASSES) == 0
    # a model of this project's layout keeps what it records; a number overrides it
    assert getattr(build_network(InitConfig.from_dict(dict(source=str(out)))).config, TOKEN_DROPOUT_PASSES) == 0
    forced = build_network(InitConfig.from_dict(dict(source=str(out), token_dropout_passes=2)))
    assert getattr(forced.config, TOKEN_DROPOUT_PASSES) == 2
    # an ESM2 source with token_dropout on gets 2 unless told otherwise
    src = _esm_source(tmp_path, True)
    assert getattr(build_network(InitConfig.from_dict(dict(source=str(src), token_dropout_passes=0))).config,
                   TOKEN_DROPOUT_PASSES) == 0
    with pytest.raises(Exception, match="token_dropout_passes"):
        InitConfig.from_dict({"token_dropout_passes": -1})
