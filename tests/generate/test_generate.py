"""Generation end to end on tiny random models: conditioning kept, files, schema, seeds, motif."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from dplm2.cli import main as dplm2_main
from dplm2.generate import tasks
from dplm2.generate.config import GenerateConfig
from dplm2.generate.contig import ContigSpec
from dplm2.generate.motif import resolve_motif
from dplm2.generate.problems import ScaffoldProblem
from dplm2.generate.runtime import Runtime
from dplm2.io import read_parquet_metadata
from dplm2.lm.vocab import STRUCT_OFFSET
from dplm2.structure import read_chains
from dplm2.structure.compare import motif_rmsd

from .tiny import build_tiny_models

REPO = Path(__file__).resolve().parents[2]
SCAFFOLDING = REPO / "resources" / "scaffolding"
FAST = {"max_iter": 4}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    return build_tiny_models(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def runtime(models) -> Runtime:
    torch.set_num_threads(1)
    return Runtime.load(*models, device="cpu")


def run_cli(models, task: str, out: Path, params: dict, *extra: str) -> pl.DataFrame:
    lm, tok = models
    code = dplm2_main(["generate", task, "--lm", str(lm), "--tokenizer", str(tok), "--out", str(out),
                       "--device", "cpu", "--params", json.dumps(params), *extra])
    assert code == 0
    return pl.read_parquet(out / "samples.parquet")


def test_conditioning_never_changes_during_scaffolding(runtime, tmp_path):
    problem = ScaffoldProblem("1YCR", SCAFFOLDING / "1ycr.pdb.gz", ContigSpec.parse("3-6,B19-27,3-6"))
    pm = tasks.prepare_motif(runtime, problem)
    cfg = GenerateConfig.from_dict({"scaffold": {"samples_per_problem": 3, "sampling": {"max_iter": 6}}})
    seen = []

    def check(step, x):
        width = x.shape[1] // 2
        seen.append(step)
        for row in range(x.shape[0]):
            s = x[row, :width]
            a = x[row, width:]
            body = (s >= STRUCT_OFFSET) & (s < STRUCT_OFFSET + 8192)
            # every row's motif (wherever the contig put it) is still there, tokens and residues
            codes = (s[body] - STRUCT_OFFSET).tolist()
            seq = runtime.lm.vocab.decode_aa(a)
            assert "FSDLWKLLP" in seq
            assert any(codes[i : i + 9] == pm.tokens.tolist() for i in range(len(codes) - 8))

    samples = tasks.generate_scaffold(runtime, [problem], cfg.scaffold, seed=0, batch_size=3,
                                      decode_batch_size=3, out_dir=tmp_path,
                                      callback=check)
    assert seen and max(seen) <= 6
    for s in samples:
        idx = list(s.motif_indices)
        assert "".join(s.sequence[i] for i in idx) == "FSDLWKLLP"
        assert s.struct_tokens[idx].tolist() == pm.tokens.tolist()


def test_folding_keeps_the_sequence_and_inverse_folding_the_tokens(runtime, tmp_path):
    chain = read_chains(REPO / "tests" / "data" / "eval" / "1ycr_B.pdb.gz")[0]
    from dplm2.generate.targets import Target

    tokens = runtime.tokenize_chain(chain)
    target = Target(id="t1", sequence=chain.sequence, struct_tokens=tokens)
    cfg = GenerateConfig.from_dict({"folding": {"sampling": FAST}, "inverse_folding": {"sampling": FAST}})
    fold = tasks.generate_conditional(runtime, "folding", [target], cfg.folding, seed=0, batch_size=2,
                                      decode_batch_size=2)
    assert fold[0].sequence == chain.sequence and fold[0].backbone.shape == (len(chain), 4, 3)
    inv = tasks.generate_conditional(runtime, "inverse_folding", [target], cfg.inverse_folding,
                                     seed=0, batch_size=2, decode_batch_size=2)
    assert inv[0].struct_tokens.tolist() == tokens.tolist()
    assert len(inv[0].sequence) == len(chain) and set(inv[0].sequence) <= set("ACDEFGHIKLMNPQRSTVWY")


def test_scaffold_cli_files_schema_and_motif_round_trip(models, tmp_path):
    out = tmp_path / "scaffold"
    params = {"seed": 3, "scaffold": {"benchmark": None, "samples_per_problem": 2, "sampling": FAST,
                                      "problems": [{"name": "own", "pdb": str(SCAFFOLDING / "1bcf.pdb.gz"),
                                                    "contig": "2-5/A92-99/4-8/A47-54/2-5",
                                                    "length": "25-30"}]}}
    df = run_cli(models, "scaffold", out, params)
    for name in ("aatype.fasta", "struct_token.fasta", "samples.parquet", "references/own.pdb"):
        assert (out / name).is_file(), name
    header = (out / "aatype.fasta").read_text().splitlines()[0]
    for key in ("task=scaffold", "seed=", "model=", "tokenizer=", "git=", "sampling=", "contig="):
        assert key in header
    meta = read_parquet_metadata(out / "samples.parquet")
    assert meta["task"] == "scaffold" and meta["sampling"]["max_iter"] == 4
    assert df["length"].to_list() == [len(s) for s in df["sequence"]]
    assert all(25 <= n <= 30 for n in df["length"])
    from dplm2.evaluate.samples import read_samples  # the evaluation stage's contract

    read_samples(out / "samples.parquet", "scaffold")
    spec = ContigSpec.parse("2-5/A92-99/4-8/A47-54/2-5", "25-30")
    motif = resolve_motif(SCAFFOLDING / "1bcf.pdb.gz", spec)
    ref = read_chains(out / "references" / "own.pdb")[0]
    np.testing.assert_allclose(ref.coords[:, :3], motif.coords[:, :3], atol=1e-3)
    for row in df.iter_rows(named=True):
        idx = row["motif_indices"]
        assert row["motif_positions"] == idx and row["reference_motif_positions"] == list(range(16))
        assert "".join(row["sequence"][i] for i in idx) == motif.sequence  # residues kept
        assert ContigSpec.parse(row["contig"]).total_range() == (row["length"], row["length"])
        design = read_chains(out / row["pdb_path"])[0]
        assert len(design) == row["length"]
        assert design.sequence == row["sequence"]  # the PDB carries the design's own sequence
        assert np.isfinite(motif_rmsd(design.coords, ref.coords, idx, row["reference_motif_positions"]))
        assert motif_rmsd(ref.coords, motif.coords, range(16), range(16)) < 1e-3
    # motif tokens are exactly the tokenizer's tokens of the motif in its native chain
    lm, tok = models
    rt = Runtime.load(lm, tok, "cpu")
    native = rt.tokenize_chain([c for c in read_chains(SCAFFOLDING / "1bcf.pdb.gz") if c.chain_id == "A"][0])
    want = np.concatenate([native[idx] for _, idx in motif.positions]).tolist()
    for row in df.iter_rows(named=True):
        assert [row["struct_tokens"][i] for i in row["motif_indices"]] == want


def test_same_seed_same_samples_other_seed_other_samples(models, tmp_path):
    params = {"cogen": {"lengths": [12, 16], "samples_per_length": 2, "sampling": FAST}}
    a = run_cli(models, "cogen", tmp_path / "a", params)
    b = run_cli(models, "cogen", tmp_path / "b", params)
    c = run_cli(models, "cogen", tmp_path / "c", {**params, "seed": 1})
    assert a.select("sample_id", "sequence", "struct_tokens").equals(b.select("sample_id", "sequence", "struct_tokens"))
    assert not a["sequence"].equals(c["sequence"])
    # one length's samples do not depend on the other lengths requested
    d = run_cli(models, "cogen", tmp_path / "d", {"cogen": {**params["cogen"], "lengths": [12]}})
    assert d["sequence"].to_list() == a.filter(pl.col("length") == 12)["sequence"].to_list()
    assert (tmp_path / "a" / "length_12" / "aatype.fasta").is_file()
    assert sorted((tmp_path / "a" / "pdb").iterdir())[0].name == "cogen_L12_0000.pdb"
    pdb_text = (tmp_path / "a" / "pdb" / "cogen_L12_0000.pdb").read_text()
    assert " CA " in pdb_text


def test_sequence_only_and_backbone_only(models, tmp_path):
    params = {"sequence": {"lengths": [10], "samples_per_length": 2, "sampling": FAST},
              "backbone": {"lengths": [10], "samples_per_length": 2, "sampling": FAST}}
    seq = run_cli(models, "sequence", tmp_path / "seq", params)
    assert seq["struct_tokens"].null_count() == 2 and seq["pdb_path"].null_count() == 2
    assert not (tmp_path / "seq" / "pdb").exists()
    bb = run_cli(models, "backbone", tmp_path / "bb", params)
    assert bb["sequence_source"].to_list() == ["tokenizer_decoder"] * 2
    assert all(len(t) == 10 for t in bb["struct_tokens"])
    assert all((tmp_path / "bb" / p).is_file() for p in bb["pdb_path"])


@pytest.mark.parametrize("task", ["sequence", "backbone"])
def test_one_modality_tasks_feed_one_half(runtime, task):
    """As the reference: sequence-only feeds the amino-acid half alone (L + 2 columns),
    backbone-only the structure half alone."""
    seen = []
    cfg = GenerateConfig.from_dict({task: {"lengths": [7], "samples_per_length": 2, "sampling": FAST}})
    samples = tasks.generate_unconditional(runtime, task, getattr(cfg, task), seed=0, batch_size=2,
                                           decode_batch_size=2, callback=lambda step, x: seen.append(x.clone()))
    assert {tuple(x.shape) for x in seen} == {(2, 9)}
    first = seen[-1][:, 0].tolist()
    assert first == [0, 0] if task == "sequence" else first == [33, 33]  # <cls> / <cls_struct>
    assert all(len(s) == 7 for s in samples)


def test_folding_and_inverse_folding_inputs(models, tmp_path):
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">a first\nMKVLAAGIVG\n>b\nACDEFGHIKL\nMNPQ\n")
    fold = run_cli(models, "folding", tmp_path / "fold", {"folding": {"sampling": FAST}},
                   "--fasta", str(fasta))
    assert fold["sample_id"].to_list() == ["a", "b"] and fold["sequence"][1] == "ACDEFGHIKLMNPQ"
    inv = run_cli(models, "inverse-folding", tmp_path / "inv", {"inverse_folding": {"sampling": FAST}},
                  "--structures", str(REPO / "tests" / "data" / "eval" / "1ycr_B.pdb.gz"))
    assert inv["reference_chain"].to_list() == ["B"] and inv["length"][0] == 13


def test_cli_errors_are_clear(models, tmp_path, caplog):
    lm, tok = models
    args = ["generate", "scaffold", "--lm", str(lm), "--tokenizer", str(tok), "--out", str(tmp_path),
            "--pdb", str(SCAFFOLDING / "1ycr.pdb.gz"), "--contig", "10-40,B19-99,10-40"]
    assert dplm2_main(args) == 2
    assert "no residue 99" in caplog.text and "1ycr.pdb.gz" in caplog.text
    args = ["generate", "cogen", "--lm", str(tmp_path / "none"), "--tokenizer", str(tok),
            "--out", str(tmp_path)]
    assert dplm2_main(args) == 2
    assert "none: neither an existing folder nor a hub id" in caplog.text


def test_shipped_generate_sections_are_valid():
    for cfg_file in ("config.yaml", "config/paper.yaml"):
        GenerateConfig.from_dict(yaml.safe_load((REPO / cfg_file).read_text())["generate"])


def test_folding_from_token_and_chain_shards(models, tmp_path):
    import pyarrow as pa

    from dplm2.io import write_parquet

    lm, tok = models
    rt = Runtime.load(lm, tok, "cpu")
    chains = [read_chains(REPO / "tests" / "data" / "eval" / f)[0] for f in ("1ycr_B.pdb.gz", "2nwd_X.pdb.gz")]
    rows = [{"id": c.id, "source": "pdb", "split": split, "sequence": c.sequence,
             "struct_tokens": rt.tokenize_chain(c).tolist(), "length": len(c), "plddt": None}
            for c, split in zip(chains, ("test", "train"))]
    write_parquet(pa.Table.from_pylist(rows), tmp_path / "tokens-00000-of-00001.parquet",
                  {"tokenizer_sha256": rt.tokenizer_sha256})
    write_parquet(pl.DataFrame([{**c.to_row(), "split": "test"} for c in chains]),
                  tmp_path / "chains-00000-of-00001.parquet")
    out = tmp_path / "fold"
    df = run_cli(models, "folding", out, {"folding": {"sampling": FAST}},
                 "--tokens", str(tmp_path / "tokens-00000-of-00001.parquet"),
                 "--chains", str(tmp_path / "chains-00000-of-00001.parquet"))
    assert df["target_id"].to_list() == [chains[0].id]  # the test split only
    ref = read_chains(out / df["reference_path"][0])[0]
    np.testing.assert_allclose(ref.coords[:, :3], chains[0].coords[:, :3], atol=1e-3)
    assert ref.sequence == chains[0].sequence == df["sequence"][0]
    # token shards made by other tokenizer weights are refused
    write_parquet(pa.Table.from_pylist(rows), tmp_path / "stale.parquet", {"tokenizer_sha256": "0" * 64})
    code = dplm2_main(["generate", "inverse-folding", "--lm", str(lm), "--tokenizer", str(tok),
                       "--out", str(tmp_path / "inv"), "--tokens", str(tmp_path / "stale.parquet")])
    assert code == 2


def test_released_lm_folder_generates_and_refolds_directly(models, tmp_path):
    """--lm takes a released checkpoint as it is (no import step): generation and the dplm2
    folding backend load it through dplm2.lm.load.load_lm; provenance hashes its file."""
    from dplm2.evaluate.folding import Dplm2FoldingBackend
    from dplm2.io import sha256_file

    from tests.lm.helpers import official_names, write_official

    released = tmp_path / "released_lm"
    write_official(released, official_names())
    _, tok = models
    df = run_cli((released, tok), "cogen", tmp_path / "out",
                 {"cogen": {"lengths": [12], "samples_per_length": 2, "sampling": FAST}})
    assert df.height == 2 and (df["length"] == 12).all()
    weights = next(p for p in released.iterdir() if p.name.endswith((".safetensors", ".bin")))
    header = (tmp_path / "out" / "aatype.fasta").read_text().splitlines()[0]
    assert f"model={sha256_file(weights)[:16]}" in header
    backend = Dplm2FoldingBackend(released, tok, device="cpu", max_iter=2)
    (result,) = backend.fold(["ACDEFGHIKL"])
    assert result.coords.shape == (10, 4, 3) and np.isfinite(result.coords).all()


def test_a_failing_scaffold_command_writes_nothing(models, tmp_path, caplog):
    """A contig that cannot meet the length range fails with a clear error, and the output
    folder stays empty (references were written before the check)."""
    lm, tok = models
    out = tmp_path / "out"
    args = ["generate", "scaffold", "--lm", str(lm), "--tokenizer", str(tok), "--out", str(out),
            "--device", "cpu", "--pdb", str(SCAFFOLDING / "1ycr.pdb.gz"),
            "--contig", "5-15/B19-27/5-10", "--length", "100-120"]
    assert dplm2_main(args) == 2
    assert "100-120" in caplog.text or "length" in caplog.text
    assert not out.exists() or not any(out.rglob("*"))


def test_bad_structure_inputs_reported_together_or_skipped(models, tmp_path, caplog):
    """inverse-folding --structures on a folder with three bad files: one run names all three;
    --skip-bad-structures leaves them out and records each with its reason."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "good target.pdb.gz").write_bytes((REPO / "tests/data/eval/1ycr_B.pdb.gz").read_bytes())
    (folder / "a.pdb").write_text("<html>404</html>")
    (folder / "b.cif").write_bytes(b"")
    (folder / "c.cif.gz").write_bytes(b"\x1f\x8b\x08\x00broken")
    (folder / "notes.md").write_text("not a structure")
    lm, tok = models
    base = ["generate", "inverse-folding", "--lm", str(lm), "--tokenizer", str(tok), "--device",
            "cpu", "--params", json.dumps({"inverse_folding": {"sampling": FAST}}),
            "--structures", str(folder)]
    assert dplm2_main(base + ["--out", str(tmp_path / "fail")]) == 2
    text = caplog.text
    assert "3 of 4 structure file(s) cannot be used" in text
    assert all(name in text for name in ("a.pdb", "b.cif", "c.cif.gz")) and "--skip-bad-structures" in text
    assert not (tmp_path / "fail").exists() or not any((tmp_path / "fail").rglob("*"))
    df = run_cli(models, "inverse-folding", tmp_path / "ok", {"inverse_folding": {"sampling": FAST}},
                 "--structures", str(folder), "--skip-bad-structures")
    assert df["reference_chain"].to_list() == ["B"]
    skipped = read_parquet_metadata(tmp_path / "ok" / "samples.parquet")["skipped_inputs"]
    assert sorted(Path(s["file"]).name for s in skipped) == ["a.pdb", "b.cif", "c.cif.gz"]
    assert any("empty file" in s["reason"] for s in skipped)
