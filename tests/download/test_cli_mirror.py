"""The stage's commands end to end over the repo's file:// mirror, and the config contract."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from dplm2.cli import main
from dplm2.config import ConfigError
from dplm2.download.config import DownloadConfig
from dplm2.download.manifest import COLUMNS, read_manifest

from .conftest import REPO

DEMO = yaml.safe_load((REPO / "config.yaml").read_text())["download"]


def _run(*args: str) -> int:
    return main(["download", *args])


def test_demo_config_end_to_end(tmp_path):
    cfg = json.loads(json.dumps(DEMO))
    ids = tmp_path / "pdb.txt"
    ids.write_text("1aki\n1qys\n4gxy\n")  # mmCIF, PDB-format only, no protein chain
    acc = tmp_path / "afdb.txt"
    acc.write_text("P60709\nQ9GZY4\nO15552\n")  # v4 pdb, v1 fallback, cif fallback
    cfg["pdb"]["id_file"], cfg["afdb"]["accession_file"] = str(ids), str(acc)
    p = json.dumps(cfg)
    root = ["--relative-to", str(REPO), "--params", p]
    d = tmp_path / "results"
    assert _run("ids", "--source", "pdb", "--output", str(d / "pdb_ids.txt"), *root) == 0
    for shard in ("1-of-2", "2-of-2"):
        assert _run("fetch", "--source", "pdb", "--ids", str(d / "pdb_ids.txt"), "--shard", shard,
                    "--raw", str(d / "raw/pdb"), "--manifest", str(d / f"pdb-{shard}.parquet"),
                    "--threads", "2", *root) == 0
    assert _run("ids", "--source", "afdb", "--output", str(d / "afdb_ids.txt"), *root) == 0
    assert _run("fetch", "--source", "afdb", "--ids", str(d / "afdb_ids.txt"),
                "--raw", str(d / "raw/afdb"), "--manifest", str(d / "afdb-1.parquet"), *root) == 0
    assert _run("swissprot", "--raw", str(d / "raw/afdb/swissprot"),
                "--manifest", str(d / "sp.parquet"), *root) == 0
    assert _run("gather", "--inputs", str(d / "pdb-1-of-2.parquet"), str(d / "pdb-2-of-2.parquet"),
                "--output", str(d / "pdb_manifest.parquet")) == 0
    assert _run("gather", "--inputs", str(d / "afdb-1.parquet"), str(d / "sp.parquet"),
                "--output", str(d / "afdb_manifest.parquet")) == 0

    pdb = read_manifest(d / "pdb_manifest.parquet")
    assert tuple(pdb.columns) == COLUMNS
    assert pdb["id"].to_list() == ["1aki", "1qys", "4gxy"]
    assert pdb["status"].to_list() == ["ok"] * 3
    assert pdb["format"].to_list() == ["mmcif", "pdb", "mmcif"]
    assert all(Path(x).is_file() for x in pdb["path"])
    afdb = read_manifest(d / "afdb_manifest.parquet")
    by_id = {r["id"]: r for r in afdb.iter_rows(named=True)}
    assert set(by_id) == {"P60709", "Q9GZY4", "O15552", "P60713", "Q6QAQ1", "Q96HM7"}
    assert by_id["Q9GZY4"]["path"].endswith("AF-Q9GZY4-F1-model_v1.pdb.gz")
    assert by_id["O15552"]["path"].endswith("AF-O15552-F1-model_v4.cif.gz")
    assert by_id["Q96HM7"]["origin"] == "swissprot_tar"

    # Second run: every file is skipped; the gathered manifest stays usable.
    assert _run("fetch", "--source", "pdb", "--ids", str(d / "pdb_ids.txt"), "--shard", "1-of-1",
                "--raw", str(d / "raw/pdb"), "--manifest", str(d / "again.parquet"), *root) == 0
    assert pl.read_parquet(d / "again.parquet")["status"].to_list() == ["skipped"] * 3


def test_failure_fraction_exit_code(tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("1aki\n9zzz\n")  # 9zzz is not in the mirror
    p = json.dumps({"pdb": {"base_url": str(REPO / "resources/mirror/pdb")},
                    "http": {"max_failed_fraction": 0.4}})
    out = tmp_path / "m.parquet"
    rc = _run("fetch", "--source", "pdb", "--ids", str(ids), "--raw", str(tmp_path / "raw"),
              "--manifest", str(out), "--params", p)
    assert rc == 1
    df = read_manifest(out)  # written anyway, failures listed with the reason
    assert df.filter(pl.col("status") == "failed")["error"].to_list()[0].startswith("not found at")


def test_gather_prefers_usable_rows_and_accepts_no_input(tmp_path):
    from dplm2.download.manifest import Row, gather, to_frame, write_manifest

    a = to_frame([Row("P1", "u", None, None, "files", None, None, "failed", "boom")])
    b = to_frame([Row("P1", "t", "/x", "pdb", "swissprot_tar", 3, "ab", "ok"),
                  Row("P2", "t", "/y", "pdb", "swissprot_tar", 3, "cd", "ok")])
    write_manifest(a, tmp_path / "a.parquet")
    write_manifest(b, tmp_path / "b.parquet")
    df = gather([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    assert df.select("id", "status").rows() == [("P1", "ok"), ("P2", "ok")]
    assert _run("gather", "--output", str(tmp_path / "empty.parquet")) == 0
    assert read_manifest(tmp_path / "empty.parquet").height == 0


def test_demo_section_is_valid():
    DownloadConfig.from_dict(DEMO)


def test_unknown_keys_rejected():
    with pytest.raises(ConfigError, match=r"download.pdb.*'bogus'"):
        DownloadConfig.from_dict({"pdb": {"bogus": 1}}, "download")
    with pytest.raises(ConfigError, match="formats"):
        DownloadConfig.from_dict({"afdb": {"formats": ["xml"]}})
