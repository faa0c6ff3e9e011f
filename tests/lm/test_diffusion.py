"""q_sample, task routing, attention bias, loss masking and weighting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dplm2.lm import vocab as V
from dplm2.lm.data import BatchingConfig, Protein, crop, make_batch, plan_batches
from dplm2.lm.diffusion import (
    TASKS,
    DiffusionConfig,
    draw_tasks,
    loss_weight,
    maskable,
    q_sample,
)
from dplm2.lm.model import attention_allowed
from dplm2.lm.train import diffusion_loss

from .helpers import tiny_model


def _only(task: str) -> DiffusionConfig:
    """Every row of a batch gets ``task``."""
    return DiffusionConfig.from_dict({"task_mix": {t: float(t == task) for t in TASKS}})


def _clean(batch=64, length=100, seed=0):
    rng = np.random.default_rng(seed)
    v = V.DPLM2Vocab()
    pairs = [
        v.encode("".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), length)),
                 rng.integers(0, 8192, length))
        for _ in range(batch)
    ]
    ids, width = v.collate(pairs)
    return ids, width


def test_q_sample_fraction_per_modality_and_specials():
    ids, width = _clean()
    ids[:, 5] = V.STRUCT_UNK  # an unknown-structure residue is trained like any token (spec §4)
    t_s = torch.full((64,), 100)
    t_a = torch.full((64,), 400)
    noised, masked = q_sample(ids, t_s, t_a, 500, torch.Generator().manual_seed(0))
    body_s = masked[:, 1 : width - 1]
    body_a = masked[:, width + 1 : 2 * width - 1]
    assert abs(body_s.float().mean().item() - 0.2) < 0.02
    assert abs(body_a.float().mean().item() - 0.8) < 0.02
    never = maskable(ids)
    assert not masked[~never].any()
    assert masked[:, 5].any()  # <unk_struct> is noised
    assert set(ids[~never].unique().tolist()) == {V.CLS, V.EOS, V.STRUCT_CLS, V.STRUCT_EOS}
    assert (noised[:, :width][masked[:, :width]] == V.STRUCT_MASK).all()
    assert (noised[:, width:][masked[:, width:]] == V.MASK).all()
    assert torch.equal(noised[~masked], ids[~masked])
    _, none = q_sample(ids, torch.zeros(64, dtype=torch.long), torch.zeros(64, dtype=torch.long), 500)
    assert not none.any()
    _, every = q_sample(ids, torch.full((64,), 500), torch.full((64,), 500), 500)
    assert torch.equal(every, maskable(ids))


@pytest.mark.parametrize("split", ["batch", "sample"])
def test_task_routing(split):
    noise = draw_tasks(4000, DiffusionConfig.from_dict(dict(task_split=split)), torch.Generator().manual_seed(1))
    name = {n: i for i, n in enumerate(TASKS)}
    fold = noise.task == name["folding"]
    inv = noise.task == name["inverse_folding"]
    joint = noise.task == name["joint"]
    single = noise.task == name["single_modality"]
    assert (noise.t_aa[fold] == 0).all() and (noise.t_struct[fold] > 0).all()
    assert (noise.t_struct[inv] == 0).all() and (noise.t_aa[inv] > 0).all()
    assert torch.equal(noise.t_aa[joint], noise.t_struct[joint])
    assert torch.equal(noise.single_modality, single)
    assert not (noise.task == name["independent"]).any()  # ratio 0
    for m in (fold, inv, joint, single):
        assert abs(m.float().mean().item() - 0.25) < 0.03
    only_fold = _only("folding")
    assert (draw_tasks(50, only_fold).t_aa == 0).all()


def test_folding_batch_keeps_amino_acids_visible_and_attention_bias():
    ps = [Protein(str(i), "MKVLAAGIVG"[: 6 + i], np.arange(6 + i)) for i in range(3)]
    fold = _only("folding")
    b = make_batch(ps, fold, torch.Generator().manual_seed(0))
    width = b["input_ids"].shape[1] // 2
    assert not b["masked"][:, width:].any()  # folding: every amino acid visible
    assert torch.equal(b["input_ids"][:, width:], b["targets"][:, width:])
    allowed = attention_allowed(b["input_ids"], b["single_modality"])
    assert allowed[:, :width, width:].any()  # folding: structure attends to amino acids
    single = _only("single_modality")
    b = make_batch(ps, single, torch.Generator().manual_seed(0))
    allowed = attention_allowed(b["input_ids"], b["single_modality"])
    assert not allowed[:, :width, width:].any() and not allowed[:, width:, :width].any()
    assert allowed[:, :width, :width].any(-1).all() and allowed[:, width:, width:].any(-1).all()
    pad_keys = b["input_ids"] == V.PAD
    assert not allowed.transpose(1, 2)[pad_keys].any()  # nobody attends to padding


def test_single_modality_outputs_ignore_other_half():
    model = tiny_model().eval()
    ps = [Protein("a", "MKVLAAGIVG", np.arange(10))]
    b = make_batch(ps, _only("single_modality"), torch.Generator())
    ids = b["targets"].clone()
    width = ids.shape[1] // 2
    other = ids.clone()
    other[:, 1 : width - 1] = V.STRUCT_OFFSET + 7  # change every structure token
    single = torch.tensor([True])
    with torch.no_grad():
        a, c = model(ids, single), model(other, single)
        d = model(other, torch.tensor([False]))
    torch.testing.assert_close(a[:, width:], c[:, width:])
    assert not torch.allclose(a[:, width:], d[:, width:])


def test_loss_only_at_masked_positions_and_modality_part():
    """The real model's training forward (select) agrees with its inference logits: the
    ``modality`` softmax on the restricted (B, N, V) logits; the reference's full-vocabulary
    loss is checked against a plain restatement in test_reference_loss.py."""
    torch.manual_seed(0)
    model = tiny_model().eval()
    ps = [Protein(str(i), "MKVLAAGIVGLL"[: 8 + i], np.arange(8 + i) * 97) for i in range(3)]
    b = make_batch(ps, DiffusionConfig.from_dict(), torch.Generator().manual_seed(2))
    with torch.no_grad():
        loss, m = diffusion_loss(model, b)
        sliced, _ = diffusion_loss(model, b, softmax="modality")
        # CE over each modality's slice of the restricted logits at masked positions.
        logits = model(b["input_ids"], b["single_modality"])
    width = logits.shape[1] // 2
    ref = 0.0
    for half, lo, hi, w in ((slice(0, width), 33, 8229, b["w_struct"]),
                            (slice(width, 2 * width), 0, 33, b["w_aa"])):
        sel = b["masked"][:, half]
        lg = logits[:, half, lo:hi][sel]
        y = b["targets"][:, half][sel] - lo
        ce = torch.nn.functional.cross_entropy(lg, y, reduction="none")
        ref += float((w[:, None].expand_as(sel)[sel] * ce).sum() / max(int(sel.sum()), 1)) / 2
    assert abs(float(sliced) - ref) < 1e-4
    assert float(loss) > float(sliced)  # the full softmax also pays for the other modality
    # Changing targets at unmasked positions does not change the loss.
    b2 = dict(b)
    t2 = b["targets"].clone()
    t2[~b["masked"] & maskable(t2)] = 5
    b2["targets"] = t2
    with torch.no_grad():
        assert float(diffusion_loss(model, b2)[0]) == float(loss)


def test_weighting():
    t = torch.tensor([1, 250, 500])
    assert torch.allclose(loss_weight(t, DiffusionConfig.from_dict()), torch.tensor([1.0, 251 / 500, 1 / 500]))
    assert torch.equal(loss_weight(t, DiffusionConfig.from_dict(dict(weighting="constant"))), torch.ones(3))


def test_crop_and_token_budget():
    cfg = BatchingConfig.from_dict(dict(max_length=100, random_crop_fraction=1.0, min_crop_length=60, max_tokens=400))
    rng = np.random.default_rng(0)
    p = Protein("x", "A" * 300, np.arange(300))
    for _ in range(20):
        c = crop(p, cfg, rng)
        assert 60 <= len(c.sequence) < 100
        start = int(c.codes[0])
        assert c.sequence == p.sequence[start : start + len(c.sequence)]  # same window
    lengths = [50, 300, 80, 120, 20, 98, 60]
    batches = plan_batches(lengths, cfg, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) * (min(max(lengths[i] for i in b), 100) + 2) <= 400
    assert plan_batches(lengths, cfg, seed=0) == batches
