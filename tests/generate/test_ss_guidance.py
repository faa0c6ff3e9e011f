"""Secondary-structure-conditioned co-generation: the p(SS | token) table, the guidance hook,
the ss_cogen task and its CLI / workflow target (tiny random models; fast)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import biotite.structure as struc
from biotite.structure.io.pdb import PDBFile
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import torch

from dplm2.cli import main as dplm2_main
from dplm2.config import ConfigError
from dplm2.generate import tasks
from dplm2.generate.config import GenerateConfig, SSCogenConfig
from dplm2.generate.runtime import Runtime
from dplm2.generate.ss_guidance import (
    SSGuidance,
    SSTable,
    agreement,
    build_table,
    chain_ss,
    count_states,
    parse_ss,
)
from dplm2.io import read_parquet_metadata, write_parquet
from dplm2.lm.sampling import SamplerConfig, iterative_unmask
from dplm2.lm.vocab import STRUCT_OFFSET, VOCAB_SIZE
from dplm2.structure import read_chains

from .tiny import build_tiny_models

REPO = Path(__file__).resolve().parents[2]
EVAL = REPO / "tests" / "data" / "eval"
BITS = 6  # tiny tokenizer: 64 codes
TARGET = "LLHHHHHHHHHHLLLEEEEELLLEEEEELL"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    return build_tiny_models(tmp_path_factory.mktemp("tiny_ss"), codebook_bits=BITS)


@pytest.fixture(scope="module")
def runtime(models) -> Runtime:
    torch.set_num_threads(1)
    return Runtime.load(*models, device="cpu")


def banded_table(k: int = 2**BITS, sha: str | None = None) -> SSTable:
    """Codes [0, k/3) mostly H, [k/3, 2k/3) mostly E, the rest mostly L."""
    counts = np.zeros((k, 3), dtype=np.int64)
    for c in range(k):
        state = min(3 * c // k, 2)
        counts[c, state] = 18
        counts[c, [s for s in range(3) if s != state]] = 1
    return SSTable.from_counts(counts, 1.0, tokenizer_sha256=sha)


# -- the table ------------------------------------------------------------------------------
def test_table_counts_and_smoothing_from_synthetic_tokens(tmp_path):
    codes = [np.array([0, 0, 1, 1, 1, 5, 64, 2]), np.array([0, 2, 2])]
    states = [np.array([0, 0, 1, 1, 2, -1, 0, 2]), np.array([0, 2, 2])]  # -1: no CA; 64: unknown
    counts = count_states(zip(codes, states), codebook_size=8)
    want = np.zeros((8, 3), dtype=np.int64)
    want[0] = [3, 0, 0]
    want[1] = [0, 2, 1]
    want[2] = [0, 0, 3]
    np.testing.assert_array_equal(counts, want)
    table = SSTable.from_counts(counts, smoothing=2.0, split="train")
    prior = np.array([3, 2, 4]) / 9
    np.testing.assert_allclose(table.prior, prior)
    np.testing.assert_allclose(table.prob[0], (np.array([3, 0, 0]) + 2 * prior) / 5)
    np.testing.assert_allclose(table.prob[1], (np.array([0, 2, 1]) + 2 * prior) / 5)
    np.testing.assert_allclose(table.prob[7], prior)  # unseen code: the prior
    np.testing.assert_allclose(table.prob.sum(axis=1), 1.0)
    assert table.argmax_ss(np.array([0, 1, 2, 7, -1])) == "HELL?"
    table.write(tmp_path / "t.parquet")
    df = pl.read_parquet(tmp_path / "t.parquet")
    assert df.columns[:5] == ["code", "n", "p_H", "p_E", "p_L"] and df["n"].to_list()[:3] == [3, 3, 3]
    back = SSTable.read(tmp_path / "t.parquet")
    np.testing.assert_allclose(back.prob, table.prob)
    np.testing.assert_allclose(back.prior, table.prior)
    np.testing.assert_array_equal(back.counts, counts)


def test_table_from_token_and_chain_shards_matches_biotite(tmp_path):
    """Tokens = each residue's P-SEA state computed independently (biotite on the file): the
    table must then put every code's mass on its own state, and skip the other split."""
    files = {"train": EVAL / "1tim_A.pdb.gz", "test": EVAL / "1hml_A.pdb.gz"}
    chains, tok_rows = [], []
    for split, f in files.items():
        chain = read_chains(f)[0]
        with gzip.open(f, "rt") as fh:
            atoms = PDBFile.read(fh).get_structure(model=1)
        atoms = atoms[struc.filter_amino_acids(atoms) & (atoms.chain_id == chain.chain_id)]
        sse = struc.annotate_sse(atoms)  # one letter per residue of the file's chain
        assert len(sse) == len(chain)
        codes = np.array([{"a": 0, "b": 1, "c": 2}.get(s, 63) for s in sse])
        tok_rows.append({"id": chain.id, "source": "pdb", "split": split, "sequence": chain.sequence,
                         "struct_tokens": codes.tolist(), "length": len(chain), "plddt": None})
        chains.append({**chain.to_row(), "source": "pdb", "split": split})
        if split == "train":
            expect = np.bincount(codes, minlength=64)[:3]
            np.testing.assert_array_equal(chain_ss(chain), codes)  # same states, our CA trace
    schema = pa.schema([("id", pa.string()), ("source", pa.string()), ("split", pa.string()),
                        ("sequence", pa.string()), ("struct_tokens", pa.list_(pa.int16())),
                        ("length", pa.int32()), ("plddt", pa.list_(pa.float32()))])
    write_parquet(pa.Table.from_pylist(tok_rows, schema=schema), tmp_path / "tokens-00000-of-00001.parquet",
                  {"tokenizer_sha256": "ab" * 32, "codebook_size": 64})
    write_parquet(pl.DataFrame(chains), tmp_path / "chains-00000-of-00001.parquet")
    table = build_table([tmp_path], [tmp_path], split="train", smoothing=1.0)
    assert table.codebook_size == 64 and table.meta["n_chains"] == 1
    assert table.meta["tokenizer_sha256"] == "ab" * 32
    np.testing.assert_array_equal(table.counts[:3].sum(axis=1), expect)
    np.testing.assert_array_equal(table.counts[:3], np.diag(expect))  # code k only in state k
    assert expect[0] > 50 and expect[1] > 20  # a TIM barrel: helices and strands
    assert table.argmax_ss(np.arange(3)) == "HEL"
    np.testing.assert_allclose(table.prob[10], table.prior)
    # the CLI writes the same table
    out = tmp_path / "ss_table.parquet"
    assert dplm2_main(["generate", "ss-table", "--tokens", str(tmp_path / "tokens-00000-of-00001.parquet"),
                       "--chains", str(tmp_path / "chains-00000-of-00001.parquet"), "--out", str(out)]) == 0
    np.testing.assert_allclose(SSTable.read(out).prob, table.prob)
    assert read_parquet_metadata(out)["split"] == "train"


# -- the guidance hook ------------------------------------------------------------------------
def test_guidance_touches_only_structure_codes():
    L, K = 5, 64
    log_p = banded_table(K).log_p()
    guide = SSGuidance(log_p, parse_ss("HHELC"), weight=2.0)
    x = torch.zeros(2, 2 * (L + 2), dtype=torch.long)
    rows, cols = torch.ones_like(x, dtype=torch.bool).nonzero(as_tuple=True)  # every position
    lp = torch.randn(len(rows), VOCAB_SIZE)
    lp[:, STRUCT_OFFSET + 3] = float("-inf")  # a forbidden code stays forbidden
    before = lp.clone()
    after = guide(1, x, rows, cols, lp).view(2, 2 * (L + 2), VOCAB_SIZE)
    before = before.view_as(after)
    changed = (after != before) & torch.isfinite(before)
    assert changed[:, 1 : L + 1, STRUCT_OFFSET : STRUCT_OFFSET + K].any()
    changed[:, 1 : L + 1, STRUCT_OFFSET : STRUCT_OFFSET + K] = False
    assert not changed.any()  # specials, masks, other codes, cls/eos columns, amino acids
    assert torch.isinf(after[:, :, STRUCT_OFFSET + 3]).all()
    delta = (after - before)[0, 3, STRUCT_OFFSET : STRUCT_OFFSET + K].numpy()
    keep = np.arange(K) != 3
    np.testing.assert_allclose(delta[keep], 2.0 * log_p[keep, 1].numpy(), rtol=1e-6)  # residue 3 -> E
    with pytest.raises(ValueError, match="length 5"):
        one = torch.zeros(1, dtype=torch.long)
        guide(1, torch.zeros(1, 2 * 9, dtype=torch.long), one, one, torch.zeros(1, VOCAB_SIZE))


def test_weight_zero_is_unguided_sampling_bit_for_bit(runtime):
    vocab = runtime.lm.vocab
    L = len(TARGET)
    ids, _ = vocab.collate([(vocab.encode_struct(None, L), vocab.encode_aa(None, L))] * 3)
    cfg = SamplerConfig.from_dict(dict(max_iter=8, strategy="annealing@2.0:1.0", unmasking="stochastic1.0"))
    model, banned = runtime.lm, runtime.banned_codes()
    guide = SSGuidance(banded_table().log_p(), parse_ss(TARGET), weight=0.0)
    a = iterative_unmask(model, ids, cfg, generator=torch.Generator().manual_seed(7), banned=banned)
    b = iterative_unmask(model, ids, cfg, generator=torch.Generator().manual_seed(7), banned=banned,
                         processor=guide)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = iterative_unmask(model, ids, cfg, generator=torch.Generator().manual_seed(7), banned=banned,
                         processor=SSGuidance(banded_table().log_p(), parse_ss(TARGET), 3.0))
    assert not torch.equal(a[0], c[0])


def test_large_weight_follows_the_target(runtime):
    table = banded_table()
    fractions = {}
    for w in (0.0, 4.0):
        cfg = SSCogenConfig.from_dict({"ss": [TARGET], "samples_per_ss": 6, "guidance_weight": w,
                                       "sampling": {"max_iter": 6}})  # co-generation's sampler
        samples = tasks.generate_ss_cogen(runtime, cfg, table, seed=0, batch_size=6,
                                          decode_batch_size=6)
        assert len(samples) == 6 and all(len(s) == len(TARGET) for s in samples)
        fractions[w] = np.mean([agreement(TARGET, table.argmax_ss(s.struct_tokens)) for s in samples])
        assert np.mean([s.extra["token_ss_agreement"] for s in samples]) == pytest.approx(fractions[w])
    assert fractions[0.0] < 0.6, fractions
    assert fractions[4.0] > 0.9, fractions


# -- errors, CLI, workflow ------------------------------------------------------------------
def test_invalid_ss_string_names_the_character(models, tmp_path, caplog):
    with pytest.raises(ValueError, match=r"'X' at position 3"):
        parse_ss("HHXE")
    with pytest.raises(ConfigError, match=r"generate.ss_cogen.ss.1: 'hhee' does not match"):
        GenerateConfig.from_dict({"ss_cogen": {"ss": ["HHEE", "hhee"]}})
    lm, tok = models
    code = dplm2_main(["generate", "ss-cogen", "--lm", str(lm), "--tokenizer", str(tok), "--out",
                       str(tmp_path), "--ss-table", str(tmp_path / "none.parquet"), "--ss", "HHHQ"])
    assert code == 2 and "generate.ss_cogen.ss.0: 'HHHQ' does not match" in caplog.text


def test_cli_writes_samples_with_ss_agreement(models, runtime, tmp_path):
    table_path = tmp_path / "table.parquet"
    banded_table(sha=runtime.tokenizer_sha256).write(table_path)
    lm, tok = models
    out = tmp_path / "ss"
    params = {"ss_cogen": {"samples_per_ss": 5, "sampling": {"max_iter": 4}}}
    assert dplm2_main(["generate", "ss_cogen", "--lm", str(lm), "--tokenizer", str(tok), "--out", str(out),
                       "--device", "cpu", "--params", json.dumps(params), "--ss-table", str(table_path),
                       "--ss", "HHHHHHHHLLLEEEEE", "--ss", "LLEEEELLEEEELL", "--num-samples", "2",
                       "--guidance-weight", "2.5"]) == 0
    df = pl.read_parquet(out / "samples.parquet")
    assert df["target_id"].to_list() == ["ss00", "ss00", "ss01", "ss01"]
    assert df["length"].to_list() == [16, 16, 14, 14]
    for row in df.iter_rows(named=True):
        assert len(row["decoded_ss"]) == row["length"] and set(row["decoded_ss"]) <= set("HEL")
        assert row["ss_agreement"] == pytest.approx(agreement(row["target_ss"], row["decoded_ss"]))
        assert row["guidance_weight"] == 2.5
        assert (out / row["pdb_path"]).is_file()
    meta = read_parquet_metadata(out / "samples.parquet")
    assert meta["task"] == "ss_cogen" and meta["sampling"]["ss_guidance_weight"] == 2.5
    assert meta["ss_targets"] == ["HHHHHHHHLLLEEEEE", "LLEEEELLEEEELL"]
    assert "task=ss_cogen" in (out / "aatype.fasta").read_text()
    # a table counted with other tokenizer weights is refused
    banded_table(sha="0" * 64).write(tmp_path / "stale.parquet")
    assert dplm2_main(["generate", "ss-cogen", "--lm", str(lm), "--tokenizer", str(tok), "--out",
                       str(tmp_path / "stale"), "--device", "cpu", "--params", json.dumps(params),
                       "--ss-table", str(tmp_path / "stale.parquet")]) == 2


def test_workflow_target_dry_runs(tmp_path):
    from tests.workflow.test_snakemake import run_snakemake

    results = tmp_path / "results"
    out = run_snakemake("-n", "--config", f"results={results}", "--",
                        str(results / "generate" / "ss_cogen" / "samples.parquet"))
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "rule generate:" in text and "wildcards: task=ss_cogen" in text and "rule ss_table:" in text


def test_ss_cogen_evaluation_targets_dry_run(tmp_path):
    """With ss_cogen in both task lists the evaluation stage gets co-generation's metrics."""
    import yaml

    from tests.workflow.test_snakemake import REPO, run_snakemake

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["results"] = str(tmp_path / "results")
    cfg["generate"]["tasks"] = ["ss_cogen"]
    cfg["evaluate"]["tasks"] = ["ss_cogen"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    ev = tmp_path / "results" / "evaluate" / "ss_cogen"
    out = run_snakemake("-n", "--configfile", str(path), "--", str(ev / "summary.md"))
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    outputs = " ".join(line for line in text.splitlines() if line.strip().startswith("output:"))
    for table in ("self_consistency.parquet", "diversity.parquet", "novelty.parquet", "summary.md"):
        assert str(ev / table) in outputs, table
    assert "wildcards: task=ss_cogen" in text
