"""A DPLM-2 Bit LM (released layout, no import step) through generate, the dplm2 folding
backend and embed; a tokenizer with fewer than 13 bits is refused."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch

from dplm2.cli import main as dplm2_main

from .tiny import build_tiny_models


@pytest.fixture(scope="module")
def bit_models(tmp_path_factory):
    from tests.lm.helpers import write_official_bit

    folder = tmp_path_factory.mktemp("bit")
    _, tok13 = build_tiny_models(folder / "t13", codebook_bits=13)
    _, tok6 = build_tiny_models(folder / "t6", codebook_bits=6)
    write_official_bit(folder / "released_bit")
    return folder / "released_bit", tok13, tok6


def test_bit_lm_generates_folds_and_embeds(bit_models, tmp_path):
    from dplm2.embed.config import EmbedConfig
    from dplm2.embed.embed import embed_proteins
    from dplm2.embed.inputs import Record
    from dplm2.evaluate.folding import Dplm2FoldingBackend
    from dplm2.lm.load import load_lm

    torch.set_num_threads(1)
    lm, tok, _ = bit_models
    fast = {"max_iter": 3, "strategy": "annealing@1.1:0.1"}
    code = dplm2_main(["generate", "cogen", "--lm", str(lm), "--tokenizer", str(tok), "--out",
                       str(tmp_path / "out"), "--device", "cpu", "--params",
                       json.dumps({"cogen": {"lengths": [10], "samples_per_length": 2,
                                             "sampling": fast}})])
    assert code == 0
    df = pl.read_parquet(tmp_path / "out" / "samples.parquet")
    assert df.height == 2 and (df["length"] == 10).all()
    assert all(set(s) <= set("LAGVSERTIDPKQNFYMHWC") for s in df["sequence"])
    (result,) = Dplm2FoldingBackend(lm, tok, device="cpu", max_iter=2).fold(["ACDEFGHIKL"])
    assert result.coords.shape == (10, 4, 3) and np.isfinite(result.coords).all()
    rows = embed_proteins(load_lm(lm), [Record("p1", "MKVLA")], EmbedConfig.from_dict(dict(mode="sequence")))
    assert rows[0].vector.shape == (32,) and np.isfinite(rows[0].vector).all()


def test_bit_lm_refuses_a_tokenizer_of_other_width(bit_models):
    from dplm2.generate.runtime import Runtime

    lm, _, tok6 = bit_models
    with pytest.raises(ValueError, match="13-bit"):
        Runtime.load(lm, tok6, device="cpu")


@pytest.mark.parametrize("task", ["sequence", "backbone"])
def test_bit_lm_refuses_one_half_tasks_before_sampling(bit_models, tmp_path, caplog, task):
    lm, tok, _ = bit_models
    code = dplm2_main(["generate", task, "--lm", str(lm), "--tokenizer", str(tok), "--out",
                       str(tmp_path / "out"), "--device", "cpu", "--params",
                       json.dumps({task: {"lengths": [10], "samples_per_length": 1}})])
    assert code == 2
    assert f"cannot run {task}: " in caplog.text
    assert not (tmp_path / "out").exists()
