"""End to end through the CLI: manifests with good and broken files -> parse shards -> gather."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from dplm2.cli import main
from dplm2.io import read_parquet_metadata
from dplm2.process.gather import CHAIN_SCHEMA
from dplm2.structure import Chain, read_chains

DATA = Path(__file__).parents[1] / "data" / "structures"


def manifest(path: Path, rows: list[tuple[str, str | None, str]]) -> Path:
    pl.DataFrame(
        {
            "id": [r[0] for r in rows],
            "url": [f"https://example.org/{r[0]}" for r in rows],
            "path": [r[1] for r in rows],
            "bytes": [Path(r[1]).stat().st_size if r[1] else None for r in rows],
            "sha256": [None] * len(rows),
            "status": [r[2] for r in rows],
            "error": ["HTTP 404" if r[2] == "failed" else None for r in rows],
        }
    ).write_parquet(path)
    return path


def test_parse_and_gather(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    raw = (DATA / "1aki.cif.gz").read_bytes()
    (bad / "trnc.cif.gz").write_bytes(raw[:2000])
    (bad / "html.cif").write_text("<html><body>502 Bad Gateway</body></html>")
    (bad / "empt.cif").write_bytes(b"")
    (bad / "junk.cif").write_bytes(bytes(range(256)) * 10)
    # the same entry under another id: an identical sequence for dedup
    shutil.copy(DATA / "1aki.cif.gz", bad / "9aki.cif.gz")
    pdb = manifest(tmp_path / "pdb.parquet", [
        ("1aki", str(DATA / "1aki.cif.gz"), "ok"), ("1tim", str(DATA / "1tim.pdb.gz"), "skipped"),
        ("1k6p", str(DATA / "1k6p.cif.gz"), "ok"), ("4p5j", str(DATA / "4p5j.cif.gz"), "ok"),
        ("trnc", str(bad / "trnc.cif.gz"), "ok"), ("html", str(bad / "html.cif"), "ok"),
        ("empt", str(bad / "empt.cif"), "ok"), ("junk", str(bad / "junk.cif"), "ok"),
        ("9aki", str(bad / "9aki.cif.gz"), "ok"), ("7xyz", None, "failed"),
    ])  # fmt: skip
    afdb = manifest(tmp_path / "afdb.parquet",
                    [("Q9GZY4", str(DATA / "AF-Q9GZY4-F1-model_v1.pdb.gz"), "ok")])
    params = json.dumps({"parse_shards": 2, "n_shards": 2,
                         "filters": {"rg_quantile": None, "max_loop_fraction": 0.8}})
    parsed = [tmp_path / f"parsed-{i}.parquet" for i in range(2)]
    for i, out in enumerate(parsed):
        assert main(["process", "parse", "--pdb-manifest", str(pdb), "--afdb-manifest", str(afdb),
                     "--shard", str(i), "--shards", "2", "--output", str(out),
                     "--params", params]) == 0
    outdir = tmp_path / "chains"
    assert main(["process", "gather", "--parsed", *map(str, parsed), "--outdir", str(outdir),
                 "--params", params]) == 0

    meta = pl.read_parquet(outdir / "metadata.parquet")
    by_id = {r["id"]: r for r in meta.iter_rows(named=True)}
    # every failed file is recorded with its reason
    assert "truncated or corrupt gzip" in by_id["trnc"]["drop_reason"]
    assert "HTML" in by_id["html"]["drop_reason"]
    assert "empty file" in by_id["empt"]["drop_reason"]
    assert "binary data" in by_id["junk"]["drop_reason"]
    assert "no protein chain" in by_id["4p5j"]["drop_reason"]
    assert "download failed: HTTP 404" in by_id["7xyz"]["drop_reason"]
    # filters: 1tim and 1k6p are dimers; 9aki duplicates 1aki (same resolution -> id order)
    assert by_id["1tim_A"]["pass_oligomer"] is False and not by_id["1tim_A"]["kept"]
    assert by_id["9aki_A"]["duplicate_of"] == "1aki_A" and by_id["9aki_A"]["pass_dedup"] is False
    assert by_id["1aki_A"]["kept"] and by_id["1aki_A"]["split"] == "train"
    af = by_id["AF-Q9GZY4-F1"]
    assert af["kept"] and af["pass_plddt"] and af["trim_start"] + af["trim_end"] > 0
    assert af["pass_resolution"] is None and af["reason_resolution"] == "not applicable"

    # chain shards: kept chains only, schema as documented, rows round-trip to Chain
    shards = sorted(outdir.glob("chains-*-of-00002.parquet"))
    assert [p.name for p in shards] == ["chains-00000-of-00002.parquet",
                                        "chains-00001-of-00002.parquet"]
    assert pq.read_schema(shards[0]).remove_metadata() == CHAIN_SCHEMA
    chains = pl.concat([pl.read_parquet(p) for p in shards])
    assert sorted(chains["id"]) == sorted(meta.filter(pl.col("kept"))["id"])
    row = chains.filter(pl.col("id") == "1aki_A").row(0, named=True)
    assert row["plddt"] is None and len(row["coords"]) == 129 * 12
    assert Chain.from_row(row) == read_chains(DATA / "1aki.cif.gz")[0]
    afrow = chains.filter(pl.col("id") == "AF-Q9GZY4-F1").row(0, named=True)
    stored = Chain.from_row(afrow)
    assert len(stored) == af["length"] and min(stored.plddt[[0, -1]]) > 70
    assert read_parquet_metadata(shards[0])["config"]["n_shards"] == 2

    report = (outdir / "filter_report.md").read_text()
    assert "| chains parsed |" in report and "trnc.cif.gz" in report
    assert "dropped by `oligomer`" in report
    assert not list(outdir.glob(".*tmp"))


def test_bad_params_are_rejected(tmp_path, caplog):
    rc = main(["process", "gather", "--parsed", str(tmp_path / "x.parquet"), "--outdir",
               str(tmp_path), "--params", json.dumps({"filters": {"min_lenght": 3}})])
    assert rc == 2 and "min_lenght" in caplog.text


