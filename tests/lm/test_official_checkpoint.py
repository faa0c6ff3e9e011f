"""Released DPLM-2 layout (airkingbd/dplm2_*): ids and logits map exactly onto DPLM2LM.

The tests write tiny checkpoints in the released layout themselves (vocab.txt with the
``<cls_aa>``-style names and ``<mask_struct>`` last, an ESM config with ``token_dropout`` and
the misleading ``tie_word_embeddings: true``, weights named ``net.esm.encoder.layer.N...`` /
``esm...``), then compare our loaded model against an independent re-statement of the
reference's forward pass (``EsmForDPLM2`` behind its DPLM-2 wrapper), computed here in plain
torch from the raw official tensors and official ids.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dplm2.lm import official
from dplm2.lm.load import load_lm
from dplm2.lm.vocab import N_AA, VOCAB_SIZE, DPLM2Vocab, official_id_map

from .helpers import (
    OFFICIAL_CONFIG_KEYS,
    OFFICIAL_HEADS,
    OFFICIAL_HIDDEN,
    OFFICIAL_LAYERS,
    official_names,
    official_tensor_names,
    write_official,
)

HIDDEN, LAYERS, HEADS = OFFICIAL_HIDDEN, OFFICIAL_LAYERS, OFFICIAL_HEADS


def reference_logits(state, names: list[str], ids: torch.Tensor, token_dropout=True) -> torch.Tensor:
    """The reference's forward on official ids (B, N=2W) -> (B, N, V_official)."""
    tok = {n: i for i, n in enumerate(names)}
    pad, mask_aa = tok["<pad>"], tok["<mask_aa>"]
    valid = ids != pad
    x = state["esm.embeddings.word_embeddings.weight"][ids]
    for _ in range(2 if token_dropout else 0):  # wrapper embeds, then the network again
        masked = ids == mask_aa
        ratio = masked.sum(-1).float() / valid.sum(-1).float()
        x = x.masked_fill(masked[..., None], 0.0) * (0.88 / (1 - ratio))[:, None, None]
        x = x * valid[..., None]
    B, N, H = x.shape
    d = H // HEADS
    bias = torch.zeros(B, 1, 1, N).masked_fill(~valid[:, None, None, :], -math.inf)
    if ((ids < 33) & valid).any() and (ids >= 33).any():  # both modalities: restart per half
        pos = torch.cat([torch.arange(N // 2), torch.arange(N // 2)]).float()
    else:  # one modality alone (sequence- / backbone-only): positions 0..N-1
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
        ctx = (att @ v).transpose(1, 2).reshape(B, N, H)
        x = x + lin(ctx, p + "attention.output.dense")
        h = ln(x, p + "LayerNorm")
        x = x + lin(F.gelu(lin(h, p + "intermediate.dense")), p + "output.dense")
    x = ln(x, "esm.encoder.emb_layer_norm_after")
    x = ln(F.gelu(lin(x, "lm_head.dense")), "lm_head.layer_norm")
    return x @ state["lm_head.decoder.weight"].T + state["lm_head.bias"]


def our_batch(seed: int = 0) -> torch.Tensor:
    """Two proteins of different lengths (padding), with some masked positions."""
    vocab = DPLM2Vocab()
    rng = np.random.default_rng(seed)
    a = vocab.encode("MKVLAAGIWQ", rng.integers(0, 8192, 10))
    b = vocab.encode(None, rng.integers(0, 8192, 7))  # inverse-folding style: <mask> residues
    b = (b[0].clone(), vocab.encode_aa("ACDEFGH"))
    b[0][2:5] = 8228  # some <mask_struct>
    a[1][3:6] = 32  # some <mask>
    ids, _ = vocab.collate([a, b])
    return ids


@pytest.mark.parametrize("permute", [False, True])
@pytest.mark.parametrize("prefix,fmt", [("net.", "safetensors"), ("", "bin")])
def test_ids_and_logits_map_exactly(tmp_path, permute, prefix, fmt):
    names = official_names(permute)
    state = write_official(tmp_path / "ckpt", names, prefix=prefix, fmt=fmt)
    m = official_id_map(tmp_path / "ckpt" / "vocab.txt")
    # ids: every official token lands on our id of the same token
    ours = DPLM2Vocab().names
    aliases = {"<cls_aa>": "<cls>", "<eos_aa>": "<eos>", "<unk_aa>": "<unk>", "<mask_aa>": "<mask>"}
    aliases.update({f"{k:04d}": f"<s{k}>" for k in range(8192)})  # released code spelling
    assert all(ours[m[i]] == aliases.get(n, n) for i, n in enumerate(names))
    if not permute:
        assert (m == np.arange(VOCAB_SIZE)).all() and names[-1] == "<mask_struct>"

    model = official.load_official(tmp_path / "ckpt")
    ids = our_batch()
    inv = np.argsort(m)  # inv[our_id] = official_id
    official_ids = torch.as_tensor(inv)[ids]
    with torch.no_grad():
        got = model(ids)  # (B, N, V) in our ids, -inf-like outside each half's modality
        ref = reference_logits(state, names, official_ids)[..., inv]  # -> our id order
    W = ids.shape[1] // 2
    valid = ids != 1
    st = got[:, :W, N_AA:][valid[:, :W]]
    aa = got[:, W:, :N_AA][valid[:, W:]]
    torch.testing.assert_close(st, ref[:, :W, N_AA:][valid[:, :W]], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(aa, ref[:, W:, :N_AA][valid[:, W:]], atol=1e-4, rtol=1e-4)


def test_token_dropout_matters_and_is_read_from_config(tmp_path):
    names = official_names(False)
    state = write_official(tmp_path / "on", names, token_dropout=True)
    ids = our_batch()
    model = official.load_official(tmp_path / "on")
    plain = official.load_official(tmp_path / "on", token_dropout_passes=0)
    with torch.no_grad():
        ref = reference_logits(state, names, ids)[:, ids.shape[1] // 2 :, :N_AA]
        got = model(ids)[:, ids.shape[1] // 2 :, :N_AA]
        wrong = plain(ids)[:, ids.shape[1] // 2 :, :N_AA]
    keep = ids[:, ids.shape[1] // 2 :] != 1
    torch.testing.assert_close(got[keep], ref[keep], atol=1e-4, rtol=1e-4)
    assert (wrong[keep] - ref[keep]).abs().max() > 1e-2  # the rescaling is not a no-op
    # a config with token_dropout off loads with no rescaling
    state = write_official(tmp_path / "off", names, token_dropout=False, seed=1)
    off = official.load_official(tmp_path / "off")
    with torch.no_grad():
        ref = reference_logits(state, names, ids, token_dropout=False)[:, ids.shape[1] // 2 :, :N_AA]
        got = off(ids)[:, ids.shape[1] // 2 :, :N_AA]
    torch.testing.assert_close(got[keep], ref[keep], atol=1e-4, rtol=1e-4)


def test_import_then_load_like_our_own_and_export_round_trip(tmp_path):
    from dplm2.lm.model import DPLM2LM

    write_official(tmp_path / "ckpt", official_names(False))
    a = official.load_official(tmp_path / "ckpt")
    official.import_official(tmp_path / "ckpt", tmp_path / "ours")
    b = DPLM2LM.from_pretrained(tmp_path / "ours").eval()  # what generate/evaluate load
    assert json.loads((tmp_path / "ours" / "official.json").read_text())["token_dropout_passes"] == 2
    official.export_official(b, tmp_path / "back")
    c = load_lm(tmp_path / "back")
    ids = our_batch(1)
    with torch.no_grad():
        la, lb, lc = a(ids), b(ids), c(ids)
    torch.testing.assert_close(la, lb)
    torch.testing.assert_close(la, lc)
    assert official.is_official_folder(tmp_path / "back")
    assert not official.is_official_folder(tmp_path / "ours")


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_hub_id_fetches_only_the_named_files(tmp_path, fake_hub, fmt):
    src = tmp_path / "hub"
    state = write_official(src, official_names(False), fmt=fmt)
    asked = fake_hub(src)
    model = load_lm("airkingbd/dplm2_tiny@abc123")
    assert model.config.num_hidden_layers == LAYERS
    wanted = ["config.json", "vocab.txt", "model.safetensors"]
    assert [a[1] for a in asked] == wanted + (["pytorch_model.bin"] if fmt == "bin" else [])
    assert {a[2] for a in asked} == {"abc123"}
    ids = our_batch()
    with torch.no_grad():
        ref = reference_logits(state, official_names(False), ids)
        got = model(ids)
    W, keep = ids.shape[1] // 2, ids != 1
    torch.testing.assert_close(got[:, W:, :N_AA][keep[:, W:]], ref[:, W:, :N_AA][keep[:, W:]],
                               atol=1e-4, rtol=1e-4)


def test_clear_errors(tmp_path):
    names = official_names(False)
    write_official(tmp_path / "a", names)
    (tmp_path / "a" / "vocab.txt").unlink()
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        official.load_official(tmp_path / "a")
    write_official(tmp_path / "b", names[:-1] + ["<bogus>"])
    with pytest.raises(ValueError, match="unknown token '<bogus>'"):
        official.load_official(tmp_path / "b")
    write_official(tmp_path / "c", names)
    cfg = json.loads((tmp_path / "c" / "config.json").read_text())
    cfg["num_hidden_layers"] = LAYERS + 1
    (tmp_path / "c" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="do not fit"):
        official.load_official(tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="neither"):
        official.load_official(tmp_path / "nothing-here")


def test_cli_import_official(tmp_path):
    from dplm2.cli import main
    from dplm2.lm.model import DPLM2LM

    write_official(tmp_path / "ckpt", official_names(False))
    assert main(["lm", "import-official", "--source", str(tmp_path / "ckpt"),
                 "--out", str(tmp_path / "ours")]) == 0
    ids = our_batch()
    with torch.no_grad():
        torch.testing.assert_close(DPLM2LM.from_pretrained(tmp_path / "ours")(ids),
                                   official.load_official(tmp_path / "ckpt")(ids))
    assert main(["lm", "import-official", "--source", str(tmp_path / "none"),
                 "--out", str(tmp_path / "x")]) == 2


# -- the transformers 4 layout: what is skipped, what is refused ------------------------------
def test_fixture_has_the_layout_transformers_4_writes(tmp_path):
    from safetensors import safe_open

    state = write_official(tmp_path / "ckpt", official_names(False))
    with safe_open(str(tmp_path / "ckpt" / "model.safetensors"), "pt") as f:
        assert sorted(f.keys()) == sorted(official_tensor_names())
    assert "esm.embeddings.position_embeddings.weight" in state
    cfg = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert tuple(cfg) == OFFICIAL_CONFIG_KEYS  # sorted, as to_json_string writes them
    assert cfg["architectures"] == ["EsmForDPLM2"] and cfg["dplm_type"] == "dplm2_esm"
    assert cfg["tie_word_embeddings"] is False  # EsmForDPLM2.__init__ sets it
    text = (tmp_path / "ckpt" / "vocab.txt").read_text()
    assert not text.endswith("\n")  # EsmTokenizer.save_vocabulary: "\n".join(tokens)
    lines = text.split("\n")
    assert lines[:4] == ["<cls_aa>", "<pad>", "<eos_aa>", "<unk_aa>"] and lines[32] == "<mask_aa>"
    assert lines[33:37] == ["<cls_struct>", "<eos_struct>", "<unk_struct>", "0000"]
    assert lines[-2:] == ["8191", "<mask_struct>"] and len(lines) == VOCAB_SIZE


def test_skips_exactly_what_transformers_skips(tmp_path):
    """The position table is skipped by our loader and by transformers' own from_pretrained
    (same rule); an unknown tensor is reported by both."""
    from transformers import EsmForMaskedLM

    write_official(tmp_path / "ok", official_names(False))
    _, info = EsmForMaskedLM.from_pretrained(tmp_path / "ok", output_loading_info=True)
    assert not info["unexpected_keys"] and not info["missing_keys"]
    model = official.load_official(tmp_path / "ok")  # no error
    skip = official.ignored_unexpected(model.net)
    assert skip.search("esm.embeddings.position_embeddings.weight")
    assert not skip.search("esm.embeddings.position_embeddings.bias")
    assert not skip.search("esm.bogus.weight")
    bogus = {"esm.bogus.weight": torch.zeros(2)}
    write_official(tmp_path / "bad", official_names(False), extra=bogus)
    _, info = EsmForMaskedLM.from_pretrained(tmp_path / "bad", output_loading_info=True)
    assert set(info["unexpected_keys"]) == {"esm.bogus.weight"}


@pytest.mark.parametrize("extra", ["esm.bogus.weight", "esm.embeddings.position_embeddings.bias",
                                   "lm_head.extra_bias"])
@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_an_unknown_tensor_is_still_refused(tmp_path, extra, fmt):
    from dplm2.cli import main

    write_official(tmp_path / "ckpt", official_names(False), fmt=fmt,
                   extra={extra: torch.zeros(3)})
    weights = "model.safetensors" if fmt == "safetensors" else "pytorch_model.bin"
    with pytest.raises(ValueError, match=rf"{weights}: weights do not fit .*config.json "
                                         rf"\(missing \[\], unexpected \['{extra}'\]\)"):
        load_lm(tmp_path / "ckpt")
    assert main(["lm", "import-official", "--source", str(tmp_path / "ckpt"),
                 "--out", str(tmp_path / "ours")]) == 2
    assert not (tmp_path / "ours").exists()


def test_rotary_frequencies_come_from_the_file(tmp_path):
    names = official_names(False)
    state = write_official(tmp_path / "ckpt", names)
    model = official.load_official(tmp_path / "ckpt")
    file_inv = state["esm.encoder.layer.0.attention.self.rotary_embeddings.inv_freq"]
    assert torch.equal(model.net.esm.rotary_embeddings.inv_freq, file_inv)
    # per-layer copies that differ cannot be one shared buffer: refused, naming the file
    from safetensors.torch import load_file, save_file

    path = tmp_path / "ckpt" / "model.safetensors"
    tensors = load_file(str(path))
    tensors["esm.encoder.layer.1.attention.self.rotary_embeddings.inv_freq"] = file_inv * 2
    save_file(tensors, str(path))
    with pytest.raises(ValueError, match=r"model.safetensors: esm.encoder.layer.1.*differs"):
        official.load_official(tmp_path / "ckpt")


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_export_writes_the_fixture_layout_and_round_trips(tmp_path, fmt):
    from safetensors.torch import load_file

    names = official_names(False)
    state = write_official(tmp_path / "ckpt", names, fmt=fmt)
    a = load_lm(tmp_path / "ckpt")
    official.export_official(a, tmp_path / "back", name_or_path="/tmp/dplm2_tiny")
    src, back = tmp_path / "ckpt", tmp_path / "back"
    assert sorted(p.name for p in back.iterdir()) == ["config.json", "model.safetensors",
                                                      "vocab.txt"]
    assert (back / "config.json").read_text() == (src / "config.json").read_text()
    assert (back / "vocab.txt").read_bytes() == (src / "vocab.txt").read_bytes()
    written = load_file(str(back / "model.safetensors"))
    assert list(written) == sorted(official_tensor_names())
    for k, v in state.items():
        if k == "esm.embeddings.position_embeddings.weight":  # unused by rotary: zeros
            assert v.shape == written[k].shape and not written[k].any()
        else:
            assert torch.equal(written[k], v), k
    c = load_lm(back)
    ids = our_batch(1)
    with torch.no_grad():
        torch.testing.assert_close(c(ids), a(ids), atol=0, rtol=0)


def test_export_of_our_own_model_says_what_it_is(tmp_path):
    from .helpers import tiny_model

    model = tiny_model(hidden=32, layers=2, heads=4).eval()
    official.export_official(model, tmp_path / "out")
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert tuple(k for k in OFFICIAL_CONFIG_KEYS if k != "_name_or_path") == tuple(cfg)
    assert cfg["token_dropout"] is False and cfg["dplm_type"] == "dplm2_esm"
    back = load_lm(tmp_path / "out")
    ids = our_batch()
    with torch.no_grad():
        torch.testing.assert_close(back(ids), model(ids), atol=0, rtol=0)


def test_cli_export_official(tmp_path):
    from dplm2.cli import main
    from dplm2.lm.model import DPLM2LM

    write_official(tmp_path / "ckpt", official_names(False))
    assert main(["lm", "import-official", "--source", str(tmp_path / "ckpt"),
                 "--out", str(tmp_path / "ours")]) == 0
    assert main(["lm", "export-official", "--lm", str(tmp_path / "ours"),
                 "--out", str(tmp_path / "back")]) == 0
    ids = our_batch()
    with torch.no_grad():
        torch.testing.assert_close(load_lm(tmp_path / "back")(ids),
                                   DPLM2LM.from_pretrained(tmp_path / "ours")(ids), atol=0, rtol=0)
    assert (tmp_path / "back" / "vocab.txt").read_bytes() == \
        (tmp_path / "ckpt" / "vocab.txt").read_bytes()
    cfg = json.loads((tmp_path / "back" / "config.json").read_text())
    assert cfg["_name_or_path"] == "ours" and cfg["dplm_type"] == "dplm2_esm"
    # errors: exit 2, nothing written (no folder, no leftover temporary)
    (tmp_path / "ours" / "model.safetensors").write_bytes(b"not safetensors")
    for lm in (tmp_path / "none", tmp_path / "ours"):
        before = sorted(p.name for p in tmp_path.iterdir())
        assert main(["lm", "export-official", "--lm", str(lm), "--out", str(tmp_path / "x")]) == 2
        assert sorted(p.name for p in tmp_path.iterdir()) == before
