"""Identifier validation (no path traversal), ID files, sharding, server layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from dplm2.download.config import AfdbConfig, PdbConfig
from dplm2.download.ids import (
    parse_shard,
    pdb_id,
    read_id_file,
    shard_ids,
    uniprot_accession,
)
from dplm2.download.sources import afdb_candidates, afdb_name, pdb_candidates


@pytest.mark.parametrize("good,norm", [("1AKI", "1aki"), (" 4hhb\n", "4hhb"), ("9XYZ", "9xyz")])
def test_pdb_id_ok(good, norm):
    assert pdb_id(good) == norm


@pytest.mark.parametrize(
    "bad", ["../a", "1ab/", "/etc", "1a.b", "abcd", "1abcd", "1ab", "", "1a b", "1ab\\"]
)
def test_pdb_id_rejects(bad):
    with pytest.raises(ValueError, match="invalid PDB id"):
        pdb_id(bad)


@pytest.mark.parametrize("good", ["P60709", "A0A009DXE7", "q9gzy4", "A0A1W2PQ64", "O15552"])
def test_uniprot_ok(good):
    assert uniprot_accession(good) == good.upper()


@pytest.mark.parametrize("bad", ["../P60709", "P6070", "P60709/..", "AF-P60709", "12345", "P6070X"])
def test_uniprot_rejects(bad):
    with pytest.raises(ValueError, match="invalid UniProt accession"):
        uniprot_accession(bad)


def test_read_id_file_names_file_and_item(tmp_path):
    f = tmp_path / "ids.txt"
    f.write_text("# demo\n1aki 1AKI, 4hhb\n\n../../etc\n")
    with pytest.raises(ValueError, match=r"ids.txt: item 4: invalid PDB id '\.\./\.\./etc'"):
        read_id_file(f, "pdb")
    f.write_text("1aki\n4HHB # comment\n1aki\n")
    assert read_id_file(f, "pdb") == ["1aki", "4hhb"]
    f.write_text("# nothing\n")
    with pytest.raises(ValueError, match="empty"):
        read_id_file(f, "pdb")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_id_file(tmp_path / "missing.txt", "pdb")


@pytest.mark.parametrize("n,k", [(0, 3), (1, 3), (10, 3), (7, 7), (100, 8)])
def test_shards_partition(n, k):
    ids = [f"{i:04d}" for i in range(n)]
    parts = [shard_ids(ids, i, k) for i in range(k)]
    assert [x for p in parts for x in p] == ids
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_parse_shard():
    assert parse_shard("1-of-1") == (0, 1)
    for bad in ("0-of-2", "3-of-2", "1/2", "a-of-b"):
        with pytest.raises(ValueError, match="invalid shard"):
            parse_shard(bad)


def test_candidate_paths_stay_inside_raw(tmp_path):
    raw = tmp_path / "raw"
    pdb = PdbConfig.from_dict(dict(formats=["mmcif", "pdb"]))
    paths = [c.path for c in pdb_candidates("1AKI", pdb, "file:///m", raw)]
    assert [p.relative_to(raw).as_posix() for p in paths] == [
        "pub/pdb/data/structures/divided/mmCIF/ak/1aki.cif.gz",
        "pub/pdb/data/structures/divided/pdb/ak/pdb1aki.ent.gz",
    ]
    with pytest.raises(ValueError):
        pdb_candidates("../../x", pdb, "file:///m", raw)
    afdb = AfdbConfig.from_dict(dict(versions=[4, 1], formats=["pdb", "cif"], suffixes=["", ".gz"]))
    cands = afdb_candidates("p60709", afdb, "https://a.org", raw)
    assert len(cands) == 8
    assert cands[0].url == "https://a.org/files/AF-P60709-F1-model_v4.pdb"
    assert not cands[0].compressed and cands[1].compressed
    assert cands[0].path == cands[1].path == raw / "files/AF-P60709-F1-model_v4.pdb.gz"
    assert cands[-1].url.endswith("AF-P60709-F1-model_v1.cif.gz")
    assert all(Path(c.path).resolve().is_relative_to(raw.resolve()) for c in cands)
    with pytest.raises(ValueError):
        afdb_name("../P60709", 4, "pdb")
