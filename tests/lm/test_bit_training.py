"""DPLM-2 Bit loss and self-mixup (both objectives)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dplm2.lm import bit
from dplm2.lm import vocab as V
from dplm2.lm.data import Protein, make_batch
from dplm2.lm.diffusion import DiffusionConfig, TaskMix, maskable
from dplm2.lm.train import bit_diffusion_loss, loss_fn, self_mixup_batch, training_loss

from .helpers import tiny_model


def proteins(codes=None, n=3, length=12, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        seq = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), length))
        c = rng.integers(0, 8192, length) if codes is None else np.full(length, codes)
        out.append(Protein(f"p{i}", seq, c))
    return out


def batch(ps, seed=0, **mix):
    diff = DiffusionConfig.from_dict(dict(task_mix=TaskMix.from_dict(dict(**mix)) if mix else TaskMix.from_dict()))
    return make_batch(ps, diff, torch.Generator().manual_seed(seed))


def test_bit_loss_is_the_reference_formula():
    model = bit.tiny_bit_model(seed=1).eval()
    b = batch(proteins(), seed=2, joint=1.0, single_modality=0.0, folding=0.0,
              inverse_folding=0.0)
    loss, m = bit_diffusion_loss(model, b)
    ids, tgt, sel = b["input_ids"], b["targets"], b["masked"]
    W = ids.shape[1] // 2
    with torch.no_grad():
        st, aa = model(ids, b["single_modality"])  # (B, W, 13, 2), (B, W, 33)
        bits = ((tgt[:, :W, None] - 36) >> torch.arange(12, -1, -1)) & 1  # (B, W, 13) MSB first
        ce = F.cross_entropy(st.reshape(-1, 2), bits.reshape(-1), reduction="none")
        ce = ce.reshape(bits.shape).sum(-1)  # summed over the 13 bits
        ls = (ce * b["w_struct"][:, None] * sel[:, :W]).sum() / sel[:, :W].sum()
        cea = F.cross_entropy(aa.reshape(-1, 33), tgt[:, W:].reshape(-1), reduction="none")
        la = (cea.reshape(aa.shape[:2]) * b["w_aa"][:, None] * sel[:, W:]).sum() / sel[:, W:].sum()
    torch.testing.assert_close(loss, (ls + la) / 2, atol=1e-5, rtol=1e-5)
    assert m["masked_struct"] == float(sel[:, :W].sum())


def test_bit_loss_counts_every_bit_all_ones_target_is_learned():
    ps = proteins(codes=8191, n=2, length=8)  # every structure bit is 1
    b = batch(ps, seed=0, folding=1.0, single_modality=0.0, joint=0.0, inverse_folding=0.0)
    assert b["masked"][:, : b["input_ids"].shape[1] // 2].any()
    # the reference's ignore_index=1 drops all of these bits: nothing left to learn
    model = bit.tiny_bit_model(seed=0).train()
    _, m = bit_diffusion_loss(model, b, ignore_one=True)
    assert m["loss_struct"] == 0.0
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss, m = bit_diffusion_loss(model, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    _, m = bit_diffusion_loss(model, b)
    assert m["acc_bit_struct"] == 1.0 and m["acc_full_struct"] == 1.0


def _check_mixup(model, b):
    ids = b["input_ids"]
    W = ids.shape[1] // 2
    mixed = self_mixup_batch(model, b)
    x = mixed["input_ids"]
    non_special = maskable(ids)
    assert torch.equal(mixed["masked"], non_special)  # loss on every non-special position
    assert torch.equal(x[~non_special], ids[~non_special])  # pad, cls, eos kept
    was_masked = (ids == V.MASK) | (ids == V.STRUCT_MASK)
    visible = non_special & ~was_masked
    assert (x[:, :W][visible[:, :W]] == V.STRUCT_MASK).all()  # previously visible -> masked
    assert (x[:, W:][visible[:, W:]] == V.MASK).all()
    with torch.no_grad():  # masked positions -> the argmax prediction on x_t
        if getattr(model, "is_bit", False):
            st, aa = model(ids, b["single_modality"])
            pred_st = bit.bits_to_tokens(st.argmax(-1))
        else:
            full = model(ids, b["single_modality"], select=torch.ones_like(ids, dtype=torch.bool))
            pred_st = full.struct.argmax(-1).reshape(ids.shape[0], W)
            aa = full.aa.reshape(ids.shape[0], W, -1)
        assert torch.equal(x[:, :W][was_masked[:, :W]], pred_st[was_masked[:, :W]])
        assert torch.equal(x[:, W:][was_masked[:, W:]], aa.argmax(-1)[was_masked[:, W:]])
    assert torch.equal(mixed["targets"], b["targets"]) and torch.equal(mixed["w_aa"], b["w_aa"])
    assert was_masked.any() and visible.any()


def test_self_mixup_builds_the_mixed_input_and_loss_mask():
    b = batch(proteins(n=4), seed=3)
    _check_mixup(tiny_model(seed=0).eval(), b)
    _check_mixup(bit.tiny_bit_model(seed=0).eval(), b)


def test_self_mixup_loss_trains_both_objectives():
    b = batch(proteins(n=4), seed=4)
    for model in (tiny_model(seed=0), bit.tiny_bit_model(seed=0)):
        fn = loss_fn(DiffusionConfig.from_dict(), self_mixup=True)
        loss, m = fn(model, b)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and torch.isfinite(loss)
        assert m["masked_struct"] == float(maskable(b["input_ids"])[:, : b["input_ids"].shape[1] // 2].sum())
    # without self-mixup the index model's loss is the plain one
    model = tiny_model(seed=0)
    a, _ = training_loss(model, b)
    from dplm2.lm.train import diffusion_loss

    torch.testing.assert_close(a, diffusion_loss(model, b)[0])


def test_bit_warm_start_from_esm_scratch_and_bit_checkpoint(tmp_path):
    import json

    from dplm2.lm.load import load_lm
    from dplm2.lm.warm_start import InitConfig, warm_start

    from .test_warm_start import _source

    src = _source(tmp_path, tied=True)
    out = warm_start(InitConfig.from_dict(dict(source=str(tmp_path / "src"), seed=3)), tmp_path / "init",
                     objective="bit")
    model = load_lm(out)
    assert isinstance(model, bit.DPLM2BitLM)
    assert json.loads((out / "init.json").read_text())["objective"] == "bit"
    # the ESM body and the 33-id head come from the source (the reference's train_from_dplm)
    s, o = src.state_dict(), model.net.state_dict()
    for k in ("esm.encoder.layer.1.attention.self.query.weight", "lm_head.dense.weight",
              "lm_head.bias", "esm.embeddings.word_embeddings.weight"):
        assert torch.equal(s[k], o[k]), k
    assert torch.equal(o["lm_head.decoder.weight"], s["esm.embeddings.word_embeddings.weight"])
    scratch = warm_start(InitConfig.from_dict(), tmp_path / "scratch", objective="bit")
    assert bit.is_bit_folder(scratch)
    again = warm_start(InitConfig.from_dict(dict(source=str(scratch))), tmp_path / "again", objective="bit")
    a, b = load_lm(scratch).state_dict(), load_lm(again).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_lm_bit_objective_runs(tmp_path):
    from dplm2.lm.train import LMConfig, train_lm
    from dplm2.lm.warm_start import warm_start

    from .helpers import write_token_shard

    cfg = LMConfig.from_dict({
        "objective": "bit", "self_mixup": True,
        "init": {"model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                           "intermediate_size": 64}},
        "lora": {"enabled": False},
        "data": {"max_tokens": 256, "max_length": 64},
        "train": {"max_steps": 3, "val_every": 3, "ckpt_every": 3, "log_every": 1},
    })
    init = warm_start(cfg.init, tmp_path / "init", objective="bit")
    shard = write_token_shard(proteins(n=4, length=20), tmp_path / "tokens.parquet")
    last = train_lm(cfg, init, [shard], tmp_path / "run")
    assert np.isfinite(last["loss"])
    assert bit.is_bit_folder(tmp_path / "run" / "model")
