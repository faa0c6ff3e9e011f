"""Token shards: schema, metadata hash, determinism, unknown tokens, bad input; hub loading;
detokenized files readable by biotite and TM-align."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import torch

from dplm2.io import read_parquet_metadata
from dplm2.tokenizer.detokenize import decode_tokens, detokenize_shard
from dplm2.tokenizer.hub import load_tokenizer, save_tokenizer, sha256_file
from dplm2.tokenizer.tokenize import TOKEN_COLUMNS, read_token_shard, tokenize_shard


@pytest.fixture()
def saved(tiny_model, tmp_path):
    folder = save_tokenizer(tiny_model.eval(), tmp_path / "tok")
    return folder


def test_save_load_round_trip(saved, tiny_model):
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "model.safetensors",
                                                      "model.safetensors.sha256"]
    assert json.loads((saved / "config.json").read_text())["codebook_bits"] == 13
    model, sha = load_tokenizer(saved)
    assert sha == sha256_file(saved / "model.safetensors")
    for a, b in zip(model.state_dict().values(), tiny_model.state_dict().values()):
        assert torch.equal(a, b)


def test_tokenizers_saved_with_the_three_decoder_switches_still_load(saved, tiny_model):
    """config.json written before ``decoder`` replaced post_transformer / trunk_input_mlp / heads
    (a compact decoder's values): it loads as ``decoder: compact`` with the same weights; a
    combination that is neither decoder is refused naming the file."""
    cfg = json.loads((saved / "config.json").read_text())
    assert cfg.pop("decoder") == "compact"
    legacy = {"post_transformer": "sinusoidal", "trunk_input_mlp": False, "heads": "dplm2"}
    (saved / "config.json").write_text(json.dumps({**cfg, **legacy}))
    model, _ = load_tokenizer(saved)
    assert model.cfg == tiny_model.cfg
    for a, b in zip(model.state_dict().values(), tiny_model.state_dict().values()):
        assert torch.equal(a, b)
    (saved / "config.json").write_text(json.dumps({**cfg, **legacy, "heads": "esmfold"}))
    with pytest.raises(ValueError, match="config.json: decoder options"):
        load_tokenizer(saved)


def test_load_errors_name_the_problem(tmp_path, saved):
    with pytest.raises(FileNotFoundError, match="neither an existing folder"):
        load_tokenizer(tmp_path / "nope")
    (saved / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json"):
        load_tokenizer(saved)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="model.safetensors|config.json"):
        load_tokenizer(tmp_path / "empty")


def test_token_shard_schema_metadata_and_determinism(saved, chain_shard, tmp_path):
    model, sha = load_tokenizer(saved)
    a = tokenize_shard(model, sha, chain_shard, tmp_path / "a" / "tokens-00000-of-00001.parquet")
    b = tokenize_shard(model, sha, chain_shard, tmp_path / "b" / "tokens-00000-of-00001.parquet")
    schema = pq.read_schema(a)
    assert schema.names == list(TOKEN_COLUMNS)
    assert str(schema.field("struct_tokens").type) == "list<element: int16>"
    assert str(schema.field("plddt").type) == "list<element: float>"
    meta = read_parquet_metadata(a)
    assert meta["tokenizer_sha256"] == sha and meta["unknown_token"] == 8192
    da, db = read_token_shard(a, expect_sha256=sha), read_token_shard(b)
    assert da.equals(db)
    chains = pl.read_parquet(chain_shard)
    assert da["id"].to_list() == chains["id"].to_list()
    assert set(da["split"].to_list()) == {"train", "valid", "test"}
    for row in da.iter_rows(named=True):
        toks = np.array(row["struct_tokens"])
        assert len(toks) == row["length"] == len(row["sequence"])
        assert ((toks >= 0) & (toks <= 8192)).all()
    broken = da.filter(pl.col("split") == "test").row(0, named=True)
    assert broken["struct_tokens"][5] == 8192  # residue without N
    assert da.filter(pl.col("source") == "afdb")["plddt"].to_list()[0] is not None
    with pytest.raises(ValueError, match="tokenizer_sha256"):
        read_token_shard(a, expect_sha256="0" * 64)


def test_bad_chain_shard_names_the_file(saved, tmp_path):
    model, sha = load_tokenizer(saved)
    bad = tmp_path / "chains-bad.parquet"
    pl.DataFrame({"id": ["x"], "sequence": ["AAA"]}).write_parquet(bad)
    with pytest.raises(ValueError, match="chains-bad.parquet.*missing column"):
        tokenize_shard(model, sha, bad, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()
    trunc = tmp_path / "chains-trunc.parquet"
    trunc.write_bytes(b"PAR1garbage")
    with pytest.raises(ValueError, match="chains-trunc.parquet"):
        tokenize_shard(model, sha, trunc, tmp_path / "out.parquet")


def test_detokenize_writes_files_biotite_and_tmalign_read(saved, chain_shard, tmp_path):
    import biotite.structure.io as strucio
    import tmtools

    model, sha = load_tokenizer(saved)
    tokens = tokenize_shard(model, sha, chain_shard, tmp_path / "tokens.parquet")
    paths = detokenize_shard(model, tokens, tmp_path / "pdb", "pdb", limit=2)
    cifs = detokenize_shard(model, tokens, tmp_path / "cif", "cif", ids=["1aki_A"])
    assert [p.name for p in paths] == ["1aki_A.pdb", "2d7t_H.pdb"] and cifs[0].suffix == ".cif"
    for p in paths + cifs:
        atoms = strucio.load_structure(p, extra_fields=["b_factor"])
        ca = atoms[atoms.atom_name == "CA"]
        assert len(ca) == 129 if "1aki" in p.name else len(ca) > 0
        assert set(np.unique(atoms.atom_name)) <= {"N", "CA", "C", "O", "CB"}
        assert ((ca.b_factor >= 0) & (ca.b_factor <= 100)).all()
        res = tmtools.tm_align(ca.coord.astype(float), ca.coord.astype(float),
                               "A" * len(ca), "A" * len(ca))
        assert res.tm_norm_chain1 == pytest.approx(1.0)
    with pytest.raises(ValueError, match="outside"):
        decode_tokens(model, [1, 2, 9000])
