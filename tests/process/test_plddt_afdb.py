"""The AFDB pLDDT filter on the 24 real AlphaFold DB models of the resources mirror.

Independent expectation (resources/README, computed when the corpus was gathered): 9 models pass
when the whole model is tested, 19 when the low-confidence ends (pLDDT <= 70) are trimmed first.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from dplm2.process.config import FilterConfig, ProcessConfig
from dplm2.process.parse import process_file

MIRROR = Path(__file__).parents[2] / "resources" / "mirror" / "afdb"
UNTRIMMED_PASS = {"A0A1W2PQ64", "A0A286Q506", "A0A2Y9FRR4", "A0A3L8SFX2", "D7RIF5", "I1MDT4",
                  "P60709", "P60713", "Q6QAQ1"}
TRIMMED_ONLY_PASS = {"A0A3P6STH8", "A0A3Q3SLX0", "A0A507BZ37", "O15552", "P40452", "P53220",
                     "Q7Z6M3", "Q96HM7", "Q9BVV7", "Q9GZY4"}
ALL = UNTRIMMED_PASS | TRIMMED_ONLY_PASS | {"A0A009DXE7", "P04629", "Q5T5X7", "Q5VSL9",
                                            "Q96PD2"}


@pytest.fixture(scope="module")
def afdb_files(tmp_path_factory) -> dict[str, Path]:
    """The mirror's single-file models plus the ones only in its SwissProt tar."""
    files = {p.name.split("-")[1]: p for p in (MIRROR / "files").glob("AF-*-F1-model*.gz")}
    tmp = tmp_path_factory.mktemp("swissprot")
    for tar_path in MIRROR.glob("pub/databases/alphafold/latest/swissprot_pdb_v4.tar"):
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                if member.name.startswith("AF-") and member.name.endswith(".gz"):
                    out = tmp / Path(member.name).name
                    out.write_bytes(tar.extractfile(member).read())
                    files.setdefault(out.name.split("-")[1], out)
    if not files:
        pytest.skip(f"{MIRROR} not populated (the download stage's resources)")
    assert set(files) == ALL, f"mirror accessions differ: {sorted(set(files) ^ ALL)}"
    return files


@pytest.mark.parametrize(
    "order, expected",
    [("test_then_trim", UNTRIMMED_PASS), ("trim_then_test", UNTRIMMED_PASS | TRIMMED_ONLY_PASS)],
)
def test_plddt_order_per_file(afdb_files, order, expected):
    cfg = ProcessConfig.from_dict(dict(filters=FilterConfig.from_dict(dict(plddt_order=order))))
    passed = set()
    for acc, path in afdb_files.items():
        ((rec, chain),) = list(process_file(path, "afdb", None, cfg))
        v = rec.verdict("plddt")
        assert v.passed is not None
        if v.passed:
            passed.add(acc)
        else:
            assert "pLDDT" in v.reason
        # stored chains are trimmed: both ends above the threshold, lengths add up
        assert chain.plddt[0] > 70 and chain.plddt[-1] > 70
        assert rec.parsed_length == len(chain) + rec.trim_start + rec.trim_end
    assert passed == expected
    assert len(passed) == (9 if order == "test_then_trim" else 19)
