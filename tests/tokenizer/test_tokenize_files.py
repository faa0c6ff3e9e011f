"""``dplm2 tokenizer tokenize --structures``: structure files, folders and globs straight to a
token shard, equal to tokenizing the same chains through a chain shard; bad files reported
together or skipped with their reasons."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import torch

from dplm2.cli import main
from dplm2.io import read_parquet_metadata
from dplm2.tokenizer.hub import save_tokenizer
from dplm2.tokenizer.tokenize import read_token_shard, tokenize_records
from dplm2.tokenizer.data import ShardChain
from dplm2.structure import read_chains

from tests.embed.helpers import globin_files, tiny_tokenizer


def test_tokenize_structure_files(tmp_path, caplog):
    torch.set_num_threads(1)
    model = tiny_tokenizer()
    save_tokenizer(model, tmp_path / "tok")
    folder = tmp_path / "my pdbs"
    (folder / "more").mkdir(parents=True)
    files = globin_files()[:3]
    (folder / "first one.pdb.gz").write_bytes(files[0].read_bytes())
    (folder / "more" / "second.pdb.gz").write_bytes(files[1].read_bytes())
    (folder / "readme.txt").write_text("not a structure")
    (folder / "bad.cif").write_text("<html>gone</html>")
    out = tmp_path / "tokens.parquet"
    base = ["tokenizer", "tokenize", "--tokenizer", str(tmp_path / "tok"), "--out", str(out)]
    assert main(base + ["--structures", str(folder), str(files[2])]) == 2
    assert "1 of 4 structure file(s) cannot be used" in caplog.text and "bad.cif" in caplog.text
    assert not out.exists()
    assert main(base + ["--structures", str(folder), str(files[2]), "--skip-bad-structures"]) == 0
    df = read_token_shard(out)
    assert df["id"].to_list() == ["first one_A", "second_A", files[2].name.split(".")[0] + "_A"]
    assert set(df["source"]) == {"files"} and df["split"].null_count() == 3
    meta = read_parquet_metadata(out)
    assert [Path(s["file"]).name for s in meta["skipped_inputs"]] == ["bad.cif"]
    chains = [read_chains(f)[0] for f in files]
    expect = tokenize_records(model, [ShardChain(c, "pdb", "train") for c in chains], progress=False)
    assert [list(t) for t in expect] == df["struct_tokens"].to_list()
    # a glob
    assert main(base + ["--structures", str(folder / "**" / "*.pdb.gz")]) == 0
    assert pl.read_parquet(out).height == 2
