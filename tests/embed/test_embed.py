"""Embedding API, batching, outputs and the ``dplm2 embed`` command on real structures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from dplm2.cli import main
from dplm2.embed.config import EmbedConfig
from dplm2.embed.embed import embed_proteins, longest_first_batches, resolve_layers
from dplm2.embed.inputs import Record, read_fasta_records, read_inputs, read_token_shard
from dplm2.embed.outputs import read_embeddings
from dplm2.io import read_parquet_metadata, write_parquet

from .helpers import globin_files

SEQS = {"a": "MKVLAAGIWQDEFRS", "b": "GSHMTTPLV", "c": "ACDEFGHIKLMNPQRSTVWYACDEFGHIKL"}


def records(seed=0):
    rng = np.random.default_rng(seed)
    return [Record(k, s, rng.integers(0, 8192, len(s))) for k, s in SEQS.items()]


@pytest.mark.parametrize("mode", ["sequence", "structure", "both"])
def test_padding_and_batching_do_not_change_vectors(lm, mode):
    recs = records()
    cfg = EmbedConfig.from_dict(dict(mode=mode, layers=(0, 1, -1), per_residue=True))
    together = embed_proteins(lm, recs, cfg)
    alone = [e for r in recs for e in embed_proteins(lm, [r], cfg)]
    assert [(e.id, e.layer) for e in together] == [(k, layer) for k in SEQS for layer in (0, 1, 2)]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a.vector, b.vector, atol=2e-5)
        assert a.residues.shape == (len(SEQS[a.id]), 128 if mode == "both" else 64)
        np.testing.assert_allclose(a.vector, a.residues.mean(0), atol=1e-6)  # specials stripped


def test_modes_see_only_their_modality(lm):
    a = records(0)
    b = [Record(r.id, r.sequence, (r.codes + 17) % 8192) for r in a]  # other structure
    c = [Record(r.id, r.sequence[::-1], r.codes) for r in a]  # other sequence
    seq = EmbedConfig.from_dict(dict(mode="sequence"))
    st = EmbedConfig.from_dict(dict(mode="structure"))
    both = EmbedConfig.from_dict(dict(mode="both"))

    def vec(recs, cfg):
        return np.stack([e.vector for e in embed_proteins(lm, recs, cfg)])

    np.testing.assert_allclose(vec(a, seq), vec(b, seq), atol=1e-6)
    np.testing.assert_allclose(vec(a, st), vec(c, st), atol=1e-6)
    assert np.abs(vec(a, both) - vec(b, both)).max() > 1e-3
    assert np.abs(vec(a, seq) - vec(c, seq)).max() > 1e-3


def test_layer_zero_is_the_token_embedding(lm):
    rec = records()[:1]
    e = embed_proteins(lm, rec, EmbedConfig.from_dict(dict(mode="sequence", layers=(0,), per_residue=True)))[0]
    ids = lm.vocab.encode_aa(rec[0].sequence)[1:-1]
    want = lm.net.esm.embeddings.word_embeddings.weight[ids].detach().numpy()
    np.testing.assert_allclose(e.residues, want, atol=1e-6)
    assert e.layer == 0


def test_plan_batches_and_layers():
    lengths = [5, 300, 40, 299, 7, 120]
    batches = longest_first_batches(lengths, max_tokens=700, max_batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for b in batches:
        assert len(b) <= 3 and len(b) * (max(lengths[i] for i in b) + 2) <= 700
    with pytest.raises(ValueError, match="exceeds max_tokens"):
        longest_first_batches([100], max_tokens=50, max_batch_size=4)
    assert resolve_layers([-1, 0, -3], 2) == [2, 0, 0]
    with pytest.raises(ValueError, match="out of range"):
        resolve_layers([3], 2)


def test_truncation_flagged(lm):
    rec = [Record("long", "A" * 50)]
    e = embed_proteins(lm, rec, EmbedConfig.from_dict(dict(mode="sequence", max_length=20)))[0]
    assert e.truncated and e.length == 20


def test_inputs_fasta_shards_structures(tmp_path, tokenizer):
    fa = tmp_path / "x.fasta"
    fa.write_text(">p1 desc\nMKV\nLA\n>p2\nGSH\n")
    assert [(r.id, r.sequence, r.codes) for r in read_fasta_records(fa)] == [
        ("p1", "MKVLA", None), ("p2", "GSH", None)]
    bad = tmp_path / "bad.fa"
    bad.write_text(">p1\nMK1\n")
    with pytest.raises(ValueError, match="bad.fa"):
        read_fasta_records(bad)
    shard = tmp_path / "tokens-00000-of-00001.parquet"
    df = pl.DataFrame({"id": ["t1", "t2"], "split": ["test", "train"], "sequence": ["MKV", "GS"],
                       "struct_tokens": [[1, 1024, 5], [0, 3]]})
    write_parquet(df, shard, {"codebook_size": 1024})
    rows = read_token_shard(shard, "test")
    assert len(rows) == 1 and rows[0].codes.tolist() == [1, -1, 5]  # unknown token -> -1
    recs = read_inputs(globin_files()[:2], lambda c: np.zeros(len(c), dtype=np.int64))
    assert len(recs) == 2 and all(r.codes is not None for r in recs)
    with pytest.raises(ValueError, match="duplicate id"):
        read_inputs([fa, fa])
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_inputs([tmp_path / "missing.fa"])


def test_structure_mode_needs_tokens(lm, tmp_path):
    fa = tmp_path / "x.fasta"
    fa.write_text(">p1\nMKVLA\n")
    with pytest.raises(ValueError, match=r"x\.fasta: 'p1' has no structure tokens"):
        embed_proteins(lm, read_fasta_records(fa), EmbedConfig.from_dict(dict(mode="structure")))


def test_cli_parquet_npy_and_released_layout(model_dirs, tmp_path):
    lm_dir, tok_dir = model_dirs
    pdbs = tmp_path / "pdbs"
    pdbs.mkdir()
    for f in globin_files()[:3]:
        (pdbs / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "emb.parquet"
    params = json.dumps({"mode": "both", "layers": [-1, 1], "per_residue": True})
    assert main(["embed", "--lm", str(lm_dir), "--tokenizer", str(tok_dir), "--inputs",
                 str(pdbs), "--out", str(out), "--params", params, "--device", "cpu"]) == 0
    df = pl.read_parquet(out)
    assert df.height == 6 and set(df["layer"]) == {1, 2}
    assert len(df["embedding"][0]) == 128 and len(df["residues"][0]) == df["length"][0]
    meta = read_parquet_metadata(out)
    assert meta["mode"] == "both" and len(meta["tokenizer_sha256"]) == 64
    ids, x = read_embeddings(out, layer=2)
    assert x.shape == (3, 128) and ids == df.filter(pl.col("layer") == 2)["id"].to_list()
    with pytest.raises(ValueError, match="choose one"):
        read_embeddings(out)

    # .npy, sequence only, from a FASTA, with the LM in the released layout
    from dplm2.lm.model import DPLM2LM
    from dplm2.lm.official import export_official

    export_official(DPLM2LM.from_pretrained(lm_dir), tmp_path / "released")
    fa = tmp_path / "x.fasta"
    fa.write_text("".join(f">{k}\n{s}\n" for k, s in SEQS.items()))
    npy = tmp_path / "emb.npy"
    for lm_arg, path in ((lm_dir, npy), (tmp_path / "released", tmp_path / "rel.npy")):
        assert main(["embed", "--lm", str(lm_arg), "--inputs", str(fa), "--out", str(path),
                     "--mode", "sequence", "--device", "cpu"]) == 0
    ids, x = read_embeddings(npy)
    _, y = read_embeddings(tmp_path / "rel.npy")
    assert ids == list(SEQS) and x.shape == (3, 64)
    np.testing.assert_allclose(x, y, atol=1e-5)  # released layout = same model
    # user errors: one line, exit code 2
    assert main(["embed", "--lm", str(lm_dir), "--inputs", str(fa), "--out", str(npy),
                 "--mode", "structure", "--device", "cpu"]) == 2
    assert main(["embed", "--lm", str(lm_dir), "--inputs", str(fa), "--out", str(npy),
                 "--params", '{"bogus": 1}']) == 2


def test_matches_direct_model_call(lm):
    """The pooled vector is the model's own last hidden state averaged over residues."""
    rec = records()[0]
    e = embed_proteins(lm, [rec], EmbedConfig.from_dict(dict(mode="both", combine="mean")))[0]
    s, a = lm.vocab.encode(rec.sequence, rec.codes)
    ids, w = lm.vocab.collate([(s, a)])
    with torch.no_grad():
        h = lm.hidden_states(ids)[0]
    n = len(rec)
    want = ((h[1 : n + 1] + h[w + 1 : w + 1 + n]) / 2).mean(0).numpy()
    np.testing.assert_allclose(e.vector, want, atol=1e-5)


def test_cli_bad_structure_files_reported_together_or_skipped(model_dirs, tmp_path, caplog):
    """A folder with two bad files among good ones: one run names both (nothing written);
    --skip-bad-structures embeds the rest and records the skipped files with their reasons."""
    lm_dir, tok_dir = model_dirs
    pdbs = tmp_path / "pdbs"
    pdbs.mkdir()
    for f in globin_files()[:2]:
        (pdbs / f.name).write_bytes(f.read_bytes())
    (pdbs / "zz cut.pdb.gz").write_bytes(globin_files()[2].read_bytes()[:500])
    (pdbs / "aa error.cif").write_text("<!DOCTYPE html><html>500</html>")
    out = tmp_path / "emb.parquet"
    args = ["embed", "--lm", str(lm_dir), "--tokenizer", str(tok_dir), "--inputs", str(pdbs),
            "--out", str(out), "--device", "cpu", "--mode", "both"]
    assert main(args) == 2
    assert "2 of 4 structure file(s) cannot be used" in caplog.text
    assert "aa error.cif" in caplog.text and "zz cut.pdb.gz" in caplog.text
    assert not out.exists()
    assert main(args + ["--skip-bad-structures"]) == 0
    assert pl.read_parquet(out).height == 2
    skipped = read_parquet_metadata(out)["skipped_inputs"]
    assert [Path(s["file"]).name for s in skipped] == ["aa error.cif", "zz cut.pdb.gz"]
    assert "HTML" in skipped[0]["reason"] and "gzip" in skipped[1]["reason"]
