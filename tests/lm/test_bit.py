"""DPLM-2 Bit: bits <-> tokens, the released layout through every loader, the forward pass
against a plain-torch restatement of the reference's facts (module docstring of
:mod:`dplm2.lm.bit`)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dplm2.lm import bit, official
from dplm2.lm.load import lm_weights_file, load_lm
from dplm2.lm.vocab import DPLM2Vocab

from .helpers import (
    OFFICIAL_HEADS,
    OFFICIAL_HIDDEN,
    OFFICIAL_LAYERS,
    official_bit_tensor_names,
    write_official_bit,
)

H, LAYERS, HEADS = OFFICIAL_HIDDEN, OFFICIAL_LAYERS, OFFICIAL_HEADS


def test_bits_tokens_round_trip_all_codes():
    codes = torch.arange(8192)
    ids = codes + 36
    bits = bit.tokens_to_bits(ids)  # (8192, 13)
    assert bits.shape == (8192, 13) and set(bits.unique().tolist()) == {0, 1}
    assert torch.equal(bit.bits_to_tokens(bits), ids)
    # most significant bit first: token = 36 + sum_j bit_j 2^(12-j)
    manual = 36 + sum(bits[:, j] * 2 ** (12 - j) for j in range(13))
    assert torch.equal(manual, ids)
    assert bits[1].tolist() == [0] * 12 + [1] and bits[4096].tolist() == [1] + [0] * 12
    # the structure tokenizer's convention (LFQ, +-1 quantized feature)
    from dplm2.tokenizer.quantizer import indices_to_bits

    assert torch.equal(bit.tokens_to_quant(ids), indices_to_bits(codes, 13))
    # the reference's get_codebook_entry on specials: two's complement of id - 36
    assert bit.tokens_to_bits(torch.tensor([35])).tolist() == [[1] * 13]  # <unk_struct> = -1


def plain_bit_forward(state, ids: torch.Tensor, token_dropout=True):
    """The reference's DPLM2Bit.forward + EsmForDPLM2Bit on ids (B, N = 2W), in plain torch:
    returns struct logits (B, W, 13, 2) and aa logits (B, W, 33)."""
    B, N = ids.shape
    W = N // 2
    st_ids, aa_ids = ids[:, :W], ids[:, W:]
    valid = ids != 1

    def dropout(x, tok):
        ok = tok != 1
        m = tok == 32
        ratio = m.sum(-1).float() / ok.sum(-1).float()
        return (x.masked_fill(m[..., None], 0.0) * (0.88 / (1 - ratio))[:, None, None]) * ok[..., None]

    aa = state["esm.embeddings.word_embeddings.weight"][aa_ids]
    if token_dropout:
        aa = dropout(aa, aa_ids)
    quant = torch.stack([((st_ids - 36) >> (12 - j)) & 1 for j in range(13)], -1).float() * 2 - 1
    st = quant @ state["quant2emb.weight"].T + state["quant2emb.bias"]
    st[:, 0] = state["struct_bos_emb"]
    st[st_ids == 34] = state["struct_eos_emb"]
    st[st_ids == 8228] = state["struct_mask_emb"]
    x = torch.cat([st, aa], 1)
    x = dropout(x, ids) if token_dropout else x * valid[..., None]
    d = H // HEADS
    bias = torch.zeros(B, 1, 1, N).masked_fill(~valid[:, None, None, :], -math.inf)
    if ((ids < 33) & valid).any() and (ids >= 33).any():
        pos = torch.cat([torch.arange(W), torch.arange(W)]).float()
    else:
        pos = torch.arange(N).float()
    inv = 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d))
    ang = torch.outer(pos, inv)
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()

    def rot(t):
        t1, t2 = t.chunk(2, dim=-1)
        return t * cos + torch.cat([-t2, t1], -1) * sin

    def lin(h, name):
        return h @ state[name + ".weight"].T + state[name + ".bias"]

    def ln(h, name):
        return F.layer_norm(h, (H,), state[name + ".weight"], state[name + ".bias"], 1e-5)

    for i in range(LAYERS):
        p = f"esm.encoder.layer.{i}."
        h = ln(x, p + "attention.LayerNorm")
        q, k, v = (lin(h, p + f"attention.self.{n}").view(B, N, HEADS, d).transpose(1, 2)
                   for n in ("query", "key", "value"))
        q, k = rot(q * d**-0.5), rot(k)
        att = (q @ k.transpose(-1, -2) + bias).softmax(-1)
        x = x + lin((att @ v).transpose(1, 2).reshape(B, N, H), p + "attention.output.dense")
        h = ln(x, p + "LayerNorm")
        x = x + lin(F.gelu(lin(h, p + "intermediate.dense")), p + "output.dense")
    x = ln(x, "esm.encoder.emb_layer_norm_after")

    def head(h, name):
        h = ln(F.gelu(lin(h, name + ".dense")), name + ".layer_norm")
        return h @ state[name + ".decoder.weight"].T + state[name + ".bias"]

    return head(x[:, :W], "lm_head_struct").reshape(B, W, 13, 2), head(x[:, W:], "lm_head")


def bit_batch(seed: int = 0) -> torch.Tensor:
    vocab = DPLM2Vocab()
    rng = np.random.default_rng(seed)
    a = vocab.encode("MKVLAAGIWQ", rng.integers(0, 8192, 10))
    b = (vocab.encode(None, rng.integers(0, 8192, 7))[0].clone(), vocab.encode_aa("ACDEFGH"))
    b[0][2:5] = 8228
    b[0][6] = 35  # an <unk_struct>
    a[1][3:6] = 32
    ids, _ = vocab.collate([a, b])
    return ids


@pytest.mark.parametrize("prefix,token_dropout,vocab", [("", True, False), ("net.", False, True)])
def test_released_bit_layout_loads_and_matches_plain_forward(tmp_path, prefix, token_dropout,
                                                              vocab):
    state = write_official_bit(tmp_path / "ckpt", prefix=prefix, token_dropout=token_dropout,
                               vocab=vocab)
    model = load_lm(tmp_path / "ckpt")
    assert isinstance(model, bit.DPLM2BitLM) and not model.training
    ids = bit_batch()
    W = ids.shape[1] // 2
    with torch.no_grad():
        st, aa = model(ids)
        ref_st, ref_aa = plain_bit_forward(state, ids, token_dropout)
    valid = ids != 1
    torch.testing.assert_close(st[valid[:, :W]], ref_st[valid[:, :W]], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(aa[valid[:, W:]], ref_aa[valid[:, W:]], atol=1e-4, rtol=1e-4)


def test_bit_checkpoint_imports_and_exports(tmp_path):
    state = write_official_bit(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="Bit"):
        official.load_official(tmp_path / "ckpt")  # the index loader says what it is
    out = official.import_official(tmp_path / "ckpt", tmp_path / "ours")
    assert json.loads((out / "official.json").read_text())["objective"] == "bit"
    ours = load_lm(out)
    assert isinstance(ours, bit.DPLM2BitLM)
    assert lm_weights_file(out).name == "model.safetensors"
    assert lm_weights_file(tmp_path / "ckpt").name == "model.safetensors"
    ids = bit_batch(1)
    with torch.no_grad():
        ref = plain_bit_forward(state, ids)
        got = ours(ids)
    W = ids.shape[1] // 2
    valid = ids != 1
    torch.testing.assert_close(got[0][valid[:, :W]], ref[0][valid[:, :W]], atol=1e-4, rtol=1e-4)
    # export in the released layout: same names, keys, tensors
    back = bit.export_official_bit(ours, tmp_path / "back")
    from safetensors.torch import load_file

    written = load_file(str(back / "model.safetensors"))
    assert sorted(written) == sorted(official_bit_tensor_names())
    for k, v in state.items():
        if k != "esm.embeddings.position_embeddings.weight":
            torch.testing.assert_close(written[k], v)
    cfg = json.loads((back / "config.json").read_text())
    assert cfg["dplm_type"] == "dplm2_bit_esm" and cfg["vocab_size"] == 33
    assert cfg["architectures"] == ["EsmForDPLM2Bit"] and cfg["token_dropout"] is True
    again = load_lm(back)
    for (k, v), (k2, v2) in zip(ours.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_import_official_cli_accepts_bit(tmp_path):
    from dplm2.cli import main

    write_official_bit(tmp_path / "ckpt")
    assert main(["lm", "import-official", "--source", str(tmp_path / "ckpt"),
                 "--out", str(tmp_path / "ours")]) == 0
    assert bit.is_bit_folder(tmp_path / "ours")
    assert main(["lm", "export-official", "--lm", str(tmp_path / "ours"),
                 "--out", str(tmp_path / "back")]) == 0
    assert json.loads((tmp_path / "back" / "config.json").read_text())["vocab_size"] == 33


def test_own_bit_folder_round_trip(tmp_path):
    model = bit.tiny_bit_model(seed=3)
    model.save_pretrained(tmp_path / "m")
    again = load_lm(tmp_path / "m")
    assert isinstance(again, bit.DPLM2BitLM)
    ids = bit_batch()
    model.eval()
    with torch.no_grad():
        a, b = model(ids), again(ids)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])


def test_released_bit_from_hub_id(tmp_path, fake_hub):
    """``airkingbd/dplm2_bit_650m``-style hub id: config.json, optional vocab.txt, weights."""
    state = write_official_bit(tmp_path / "hub")
    asked = fake_hub(tmp_path / "hub")
    model = load_lm("airkingbd/dplm2_bit_tiny@abc")
    assert isinstance(model, bit.DPLM2BitLM)
    assert {a[1] for a in asked} == {"config.json", "vocab.txt", "model.safetensors"}
    assert {a[2] for a in asked} == {"abc"}
    ids = bit_batch()
    with torch.no_grad():
        got, ref = model(ids), plain_bit_forward(state, ids)
    W = ids.shape[1] // 2
    valid = ids != 1
    torch.testing.assert_close(got[1][valid[:, W:]], ref[1][valid[:, W:]], atol=1e-4, rtol=1e-4)
