"""LoRA with the bit objective: the bit network's own modules (structure head, ``quant2emb``,
the learned structure bos/eos/mask vectors) are trained fully beside LoRA, and a LoRA-trained
bit model merges, saves, loads and exports with unchanged logits."""

from __future__ import annotations

import torch

from dplm2.lm import bit
from dplm2.lm.lora import BIT_MODULES_TO_SAVE, BIT_PARAMETERS, LoraConfig, apply_lora, merged_copy
from dplm2.lm.vocab import MASK, STRUCT_EOS, STRUCT_MASK

CLS_STRUCT, CLS_AA, EOS_AA = 33, 0, 2


def _rows() -> torch.Tensor:
    """Two paired rows: structure half with codes, a <mask_struct> and <eos_struct>; amino
    acids with a <mask>."""
    g = torch.Generator().manual_seed(0)
    st = torch.cat([torch.full((2, 1), CLS_STRUCT), 36 + torch.randint(0, 8192, (2, 6), generator=g),
                    torch.full((2, 1), STRUCT_EOS)], 1)
    st[:, 3] = STRUCT_MASK
    aa = torch.cat([torch.full((2, 1), CLS_AA), torch.randint(4, 24, (2, 6), generator=g),
                    torch.full((2, 1), EOS_AA)], 1)
    aa[:, 2] = MASK
    return torch.cat([st, aa], 1)


def _logits(model, ids):
    model.eval()
    with torch.no_grad():
        st, aa = model(ids)
    return st, aa


def test_lora_trains_the_bit_modules_and_merges(tmp_path):
    torch.manual_seed(0)
    model = bit.tiny_bit_model(hidden=32, layers=2, heads=2, seed=0)
    apply_lora(model, LoraConfig.from_dict(dict(enabled=True, rank=2, dropout=0.0)))
    trainable = {n for n, p in model.net.named_parameters() if p.requires_grad}
    for name in BIT_MODULES_TO_SAVE:
        assert any(n.startswith(f"{name}.modules_to_save.") for n in trainable), name
        assert not any(n.startswith(f"{name}.original_module.") for n in trainable), name
    for name in BIT_PARAMETERS:
        assert name in trainable, name
    assert any("lora_" in n for n in trainable)
    assert any(n.startswith("lm_head.modules_to_save.") for n in trainable)
    assert not any(n.startswith("esm.encoder.") and "lora_" not in n for n in trainable)

    # one step moves every bit-specific parameter (the rows hold a <mask_struct> and <eos_struct>)
    ids = _rows()
    before = {n: p.detach().clone() for n, p in model.net.named_parameters() if p.requires_grad}
    model.train()
    st, aa = model(ids)
    loss = -(st.log_softmax(-1)[..., 1].mean() + aa.log_softmax(-1)[..., 5].mean())
    loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5).step()
    moved = {n for n, p in model.net.named_parameters()
             if n in before and not torch.equal(p.detach(), before[n])}
    for name in (*BIT_PARAMETERS, "quant2emb.modules_to_save.default.weight",
                 "lm_head_struct.modules_to_save.default.decoder.weight"):
        assert name in moved, name

    want_st, want_aa = _logits(model, ids)
    merged = merged_copy(model)
    assert isinstance(merged, bit.DPLM2BitLM)
    assert not any("lora_" in n or "modules_to_save" in n for n, _ in merged.net.named_parameters())
    got = _logits(merged, ids)
    torch.testing.assert_close(got, (want_st, want_aa), atol=1e-5, rtol=1e-5)

    merged.save_pretrained(tmp_path / "model")
    again = bit.DPLM2BitLM.from_pretrained(tmp_path / "model")
    torch.testing.assert_close(_logits(again, ids), (want_st, want_aa), atol=1e-5, rtol=1e-5)
    bit.export_official_bit(merged, tmp_path / "official")
    released = bit.load_official_bit(tmp_path / "official")
    torch.testing.assert_close(_logits(released, ids), (want_st, want_aa), atol=1e-5, rtol=1e-5)


def test_train_lm_bit_objective_with_lora(tmp_path):
    """lm.objective bit with LoRA on: train_lm runs, exports a merged bit model whose own
    modules moved from the warm start."""
    import numpy as np

    from dplm2.lm.train import LMConfig, train_lm
    from dplm2.lm.warm_start import warm_start

    from .helpers import write_token_shard
    from .test_bit_training import proteins

    cfg = LMConfig.from_dict({
        "objective": "bit",
        "init": {"model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                           "intermediate_size": 64}},
        "lora": {"enabled": True, "rank": 2},
        "data": {"max_tokens": 256, "max_length": 64},
        "train": {"max_steps": 3, "val_every": 3, "ckpt_every": 3, "log_every": 1},
    })
    init = warm_start(cfg.init, tmp_path / "init", objective="bit")
    shard = write_token_shard(proteins(n=4, length=20), tmp_path / "tokens.parquet")
    last = train_lm(cfg, init, [shard], tmp_path / "run")
    assert np.isfinite(last["loss"])
    start = bit.DPLM2BitLM.from_pretrained(init).net.state_dict()
    end = bit.DPLM2BitLM.from_pretrained(tmp_path / "run" / "model").net.state_dict()
    assert set(start) == set(end)
    for name in ("quant2emb.weight", "lm_head_struct.decoder.weight", "struct_bos_emb"):
        assert not torch.equal(start[name], end[name]), name
