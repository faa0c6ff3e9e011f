"""Vocabulary: both modalities, save/load, EsmTokenizer compatibility, official ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dplm2.lm import vocab as V


def test_layout_matches_spec():
    names = V.all_token_names()
    assert len(names) == V.VOCAB_SIZE == 8229
    assert names[:5] == ["<cls>", "<pad>", "<eos>", "<unk>", "L"] and names[32] == "<mask>"
    assert names[33:36] == ["<cls_struct>", "<eos_struct>", "<unk_struct>"]
    assert names[36] == "<s0>" and names[36 + 8191] == "<s8191>" and names[-1] == "<mask_struct>"


def test_encode_decode_roundtrip():
    v = V.DPLM2Vocab()
    codes = np.array([0, 17, 8191, 8192, -1])  # 8192 / -1: the tokenizer's unknown codes
    s, a = v.encode("ACDEZ", codes)
    assert s.tolist() == [33, 36, 53, 8227, 35, 35, 34]
    assert a[0] == V.CLS and a[-1] == V.EOS and len(a) == 7
    assert v.decode_aa(a) == "ACDEZ"
    assert v.decode_struct(s).tolist() == [0, 17, 8191, -1, -1]
    assert v.decode_aa(v.encode_aa("AJ")) == "AX"  # unknown letter -> X
    with pytest.raises(ValueError, match="residues"):
        v.encode("AC", [1, 2, 3])


def test_masked_halves_and_collate():
    v = V.DPLM2Vocab()
    s, a = v.encode(None, [1, 2, 3])
    assert (a[1:-1] == V.MASK).all() and len(a) == 5
    s2, a2 = v.encode("AC", None)
    assert (s2[1:-1] == V.STRUCT_MASK).all()
    ids, width = v.collate([(s, a), (s2, a2)])
    assert ids.shape == (2, 10) and width == 5
    assert ids[1, 4] == V.PAD and ids[1, 9] == V.PAD and ids[1, 5] == V.CLS
    pos = V.position_ids(2, width)
    assert pos[0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]


def test_save_load_and_esm_tokenizer(tmp_path):
    from transformers import EsmTokenizer

    v = V.DPLM2Vocab()
    v.save(tmp_path)
    V.DPLM2Vocab.load(tmp_path)
    tok = EsmTokenizer(str(tmp_path / "vocab.txt"))
    assert len(tok) == V.VOCAB_SIZE
    assert tok("MKV")["input_ids"] == v.encode_aa("MKV").tolist()
    assert tok.convert_tokens_to_ids(["<cls_struct>", "<s5>", "<mask_struct>"]) == [33, 41, 8228]
    (tmp_path / "dplm2_vocab.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="dplm2_vocab.json"):
        V.DPLM2Vocab.load(tmp_path)


def test_official_id_map(tmp_path):
    # An official-style file: codes spelled as plain numbers, <mask_struct> out of place.
    names = V.all_token_names()
    official = names[:36] + ["<mask_struct>"] + [str(k) for k in range(8192)]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(official))
    m = V.official_id_map(path)
    assert m[36] == V.STRUCT_MASK and m[37] == V.STRUCT_OFFSET and m[32] == V.MASK
    path.write_text("\n".join(official[:-1] + ["<bogus>"]))
    with pytest.raises(ValueError, match="bogus"):
        V.official_id_map(path)


def test_special_mask():
    ids = torch.tensor([0, 1, 2, 5, 32, 33, 34, 35, 36, 8228])
    assert V.special_mask(ids).tolist() == [1, 1, 1, 0, 1, 1, 1, 1, 0, 1]
