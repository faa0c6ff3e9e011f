"""The streaming gather: chain shards equal to sorting every kept chain in memory, however small
the pieces it streams through; extra parse-shard columns pass through."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dplm2.cli import main
from dplm2.io import write_parquet
from dplm2.process import gather

from .test_stage import DATA, manifest

PARAMS = {"parse_shards": 1, "n_shards": 3,
          "filters": {"rg_quantile": None, "max_loop_fraction": 1.0, "monomers_only": False}}


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    """Three parse shards of 70 chains: real parsed chains under new random ids (so the id order
    scatters over the shards) and new random sequences, a failed file, an extra column."""
    tmp = tmp_path_factory.mktemp("gather")
    pdb = manifest(tmp / "pdb.parquet", [("1aki", str(DATA / "1aki.cif.gz"), "ok"),
                                         ("1tim", str(DATA / "1tim.pdb.gz"), "ok"),
                                         ("7xyz", None, "failed")])
    assert main(["process", "parse", "--pdb-manifest", str(pdb), "--shard", "0", "--shards", "1",
                 "--output", str(tmp / "template.parquet"), "--params", json.dumps(PARAMS)]) == 0
    template = pq.read_table(tmp / "template.parquet")
    ok = np.flatnonzero(template.column("error").is_null().to_numpy(zero_copy_only=False))
    failed = np.flatnonzero(template.column("error").is_valid().to_numpy(zero_copy_only=False))
    rng = np.random.default_rng(0)
    paths = []
    for s in range(3):
        take = np.concatenate([rng.choice(ok, 23), failed if s == 0 else []]).astype(int)
        t = template.take(take)
        n = t.num_rows
        ids = [orig if err is not None else f"x{rng.integers(10**6):06d}_{s}{k}"
               for k, (orig, err) in enumerate(zip(t.column("id").to_pylist(),
                                                   t.column("error").to_pylist()))]
        seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), length)) if length else s0
                for length, s0 in zip(t.column("length").to_pylist(), t.column("sequence").to_pylist())]
        t = t.set_column(t.schema.get_field_index("id"), "id", pa.array(ids, pa.string()))
        t = t.set_column(t.schema.get_field_index("sequence"), "sequence", pa.array(seqs, pa.string()))
        t = t.append_column("taxon", pa.array([f"t{k}" for k in range(n)], pa.string()))
        paths.append(write_parquet(t, tmp / f"parsed-{s}.parquet", {"stage": "process.parse"}))
    return paths


def _gather(paths, outdir):
    assert main(["process", "gather", "--parsed", *map(str, paths), "--outdir", str(outdir),
                 "--params", json.dumps(PARAMS)]) == 0
    return [pq.read_table(outdir / f"chains-{i:05d}-of-00003.parquet") for i in range(3)]


def test_streamed_shards_equal_the_in_memory_sort(parsed, tmp_path, monkeypatch):
    shards = _gather(parsed, tmp_path / "default")
    # tiny pieces, batches and spills: many spill files per piece, pieces across batches
    monkeypatch.setattr(gather, "PIECE_ROWS", 4)
    monkeypatch.setattr(gather, "BATCH_ROWS", 3)
    monkeypatch.setattr(gather, "SPILL_ROWS", 5)
    monkeypatch.setattr(gather, "META_ROWS", 7)
    small = _gather(parsed, tmp_path / "small")
    for a, b in zip(shards, small, strict=True):
        assert a.equals(b)
    assert small[0].schema.names == gather.CHAIN_SCHEMA.names + ["taxon"]
    assert pq.ParquetFile(tmp_path / "small" / "chains-00000-of-00003.parquet").num_row_groups > 2

    # oracle: every kept chain of the parse shards, sorted by id, cut into 3 contiguous blocks
    meta = pl.read_parquet(tmp_path / "small" / "metadata.parquet")
    assert meta.equals(pl.read_parquet(tmp_path / "default" / "metadata.parquet"))
    assert meta["taxon"].null_count() == 0 and meta.height == 70
    kept = meta.filter(pl.col("kept")).sort("id")
    allrows = pl.concat([pl.read_parquet(p) for p in parsed]).drop("split")
    want = allrows.join(kept.select("id", "split"), on="id").sort("id")
    got = pl.from_arrow(pa.concat_tables(small))
    assert got["id"].to_list() == kept["id"].to_list() and got.height > 30
    assert got.equals(want.select(got.columns).cast(got.schema))
    sizes = [t.num_rows for t in small]
    assert max(sizes) - min(sizes) <= 1
    assert not list((tmp_path / "small").glob(".gather-*"))


def test_parse_shards_with_different_extra_columns_are_refused(parsed, tmp_path):
    other = pq.read_table(parsed[1]).drop_columns(["taxon"])
    odd = write_parquet(other, tmp_path / "odd.parquet", {"stage": "process.parse"})
    out = tmp_path / "chains"
    assert main(["process", "gather", "--parsed", str(parsed[0]), str(odd), "--outdir", str(out),
                 "--params", json.dumps(PARAMS)]) == 2
    assert not out.exists() or not list(out.glob("chains-*"))
