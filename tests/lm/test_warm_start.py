"""Warm start: the extended model keeps the source's amino-acid logits exactly."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import EsmConfig, EsmForMaskedLM

from dplm2.lm.model import DPLM2LM
from dplm2.lm.vocab import N_AA, VOCAB_SIZE, DPLM2Vocab
from dplm2.lm.warm_start import InitConfig, warm_start


def _source(tmp_path, tied: bool = True):
    torch.manual_seed(1)
    cfg = EsmConfig(
        vocab_size=33, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, position_embedding_type="rotary", pad_token_id=1,
        mask_token_id=32, token_dropout=False, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, tie_word_embeddings=tied,
        max_position_embeddings=1026, emb_layer_norm_before=False,
    )
    net = EsmForMaskedLM(cfg).eval()
    with torch.no_grad():  # a nonzero head bias makes the check stricter
        net.lm_head.bias.normal_()
    net.save_pretrained(tmp_path / "src")
    return net


@pytest.mark.parametrize("tied", [True, False])
def test_amino_acid_logits_equal_source(tmp_path, tied):
    src = _source(tmp_path, tied)
    out = warm_start(InitConfig.from_dict(dict(source=str(tmp_path / "src"), seed=3)), tmp_path / "init")
    model = DPLM2LM.from_pretrained(out).eval()
    assert model.config.vocab_size == VOCAB_SIZE and not model.config.token_dropout
    v = DPLM2Vocab()
    seqs = ["MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDPVAG"]
    ref_ids = torch.full((2, 24), 1)
    for i, s in enumerate(seqs):
        ref_ids[i, : len(s) + 2] = v.encode_aa(s)
    with torch.no_grad():
        ref = src(input_ids=ref_ids, attention_mask=(ref_ids != 1).long()).logits  # (2, 24, 33)
        # Amino-acid-only input: structure half all masks, halves blind to each other.
        ids, width = v.collate([v.encode(s, None) for s in seqs])
        got = model(ids, single_modality=torch.tensor([True, True]))  # (2, 2W, V)
    for i, s in enumerate(seqs):
        n = len(s) + 2
        torch.testing.assert_close(got[i, width : width + n, :N_AA], ref[i, :n], atol=1e-5, rtol=1e-5)
        assert torch.isinf(got[i, width : width + n, N_AA:]).all() or (
            got[i, width : width + n, N_AA:] <= torch.finfo(got.dtype).min
        ).all()
    # New rows: LM-head bias 0; embedding rows drawn around the old rows' statistics.
    emb = model.net.esm.embeddings.word_embeddings.weight
    assert torch.equal(model.net.lm_head.bias[N_AA:], torch.zeros(VOCAB_SIZE - N_AA))
    old = src.esm.embeddings.word_embeddings.weight
    assert torch.allclose(emb[N_AA:].mean(0), old.mean(0), atol=0.5 * float(old.std().detach()))
    assert torch.equal(emb[:N_AA], old)
    assert json.loads((out / "init.json").read_text())["from_scratch"] is False


def test_dplm2_source_loads_as_is_and_bad_vocab_fails(tmp_path):
    from dplm2.lm.warm_start import build_network

    first = warm_start(InitConfig.from_dict(dict(seed=0)), tmp_path / "a")  # from scratch, logged
    net = build_network(InitConfig.from_dict(dict(source=str(first))))
    ref = DPLM2LM.from_pretrained(first).net
    assert torch.equal(net.lm_head.decoder.weight, ref.lm_head.decoder.weight)
    bad = EsmForMaskedLM(EsmConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1,
                                   num_attention_heads=2, intermediate_size=32))
    bad.save_pretrained(tmp_path / "bad")
    with pytest.raises(ValueError, match="vocab_size 40"):
        build_network(InitConfig.from_dict(dict(source=str(tmp_path / "bad"))))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_network(InitConfig.from_dict(dict(source=str(tmp_path / "missing"))))


def test_from_scratch_is_logged(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        warm_start(InitConfig.from_dict(), tmp_path / "init")
    assert "FROM SCRATCH" in caplog.text


@pytest.mark.parametrize("tie", [True, False])
def test_from_scratch_tied_embeddings_round_trip(tmp_path, tie):
    """tie_embeddings (default): one matrix for input embedding and output projection, kept
    tied through save/load; untied: two matrices. LoRA unties (modules_to_save copies)."""
    from dplm2.lm.lora import LoraConfig, apply_lora, merged_copy
    from dplm2.lm.model import embeddings_tied

    init = InitConfig.from_dict({"model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                           "intermediate_size": 64, "tie_embeddings": tie}})
    out = warm_start(init, tmp_path / "init")
    model = DPLM2LM.from_pretrained(out).eval()
    assert embeddings_tied(model.net) is tie and model.config.tie_word_embeddings is tie
    n_vocab_rows = VOCAB_SIZE * 32
    untied = DPLM2LM.from_pretrained(
        warm_start(InitConfig.from_dict({"model": {**init.model.to_dict(), "tie_embeddings": False}}),
                   tmp_path / "u"))
    assert untied.num_parameters() - model.num_parameters() == (0 if not tie else n_vocab_rows)
    # a training step on a tied model moves the shared matrix; save/load keeps logits equal
    ids = torch.tensor([[33, 40, 41, 34, 0, 5, 6, 2]])
    model.train()
    model(ids).logsumexp(-1).mean().backward()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    model.eval()
    model.save_pretrained(tmp_path / "saved")
    again = DPLM2LM.from_pretrained(tmp_path / "saved").eval()
    assert embeddings_tied(again.net) is tie
    with torch.no_grad():
        torch.testing.assert_close(again.vocab_log_probs(again.hidden_states(ids)),
                                   model.vocab_log_probs(model.hidden_states(ids)))
    apply_lora(model, LoraConfig.from_dict(dict(enabled=True, rank=2)))
    assert not embeddings_tied(model.net) and not model.config.tie_word_embeddings
    merged = merged_copy(model)
    merged.save_pretrained(tmp_path / "merged")
    assert not embeddings_tied(DPLM2LM.from_pretrained(tmp_path / "merged").net)
