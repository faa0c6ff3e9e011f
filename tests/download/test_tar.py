"""Safe streaming extraction of the bulk SwissProt archive."""

from __future__ import annotations

import gzip
import io
import tarfile

from dplm2.download.config import HttpConfig
from dplm2.download.fetch import Fetcher
from dplm2.download.tarball import extract_stream, fetch_swissprot

from .conftest import MIRROR

SWISSPROT = "afdb/pub/databases/alphafold/latest/swissprot_pdb_v4.tar"
GOOD = gzip.compress(b"ATOM      1  N   MET A   1      0.0   0.0   0.0  1.00 90.00           N\n")


def _add(tf: tarfile.TarFile, name: str, data: bytes = GOOD, **kw) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data) if kw.get("type", tarfile.REGTYPE) == tarfile.REGTYPE else 0
    for k, v in kw.items():
        setattr(info, k, v)
    tf.addfile(info, io.BytesIO(data) if info.size else None)


def _evil_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        _add(tf, "AF-P12345-F1-model_v4.pdb.gz")
        _add(tf, "../AF-P11111-F1-model_v4.pdb.gz")
        _add(tf, "/tmp/AF-P22222-F1-model_v4.pdb.gz")
        _add(tf, "AF-P33333-F1-model_v4.pdb.gz", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        _add(tf, "AF-P44444-F1-model_v4.pdb.gz", type=tarfile.LNKTYPE, linkname="AF-P12345.gz")
        _add(tf, "AF-P55555-F1-model_v4.pdb.gz", type=tarfile.CHRTYPE)
        _add(tf, "sub/AF-P66666-F1-model_v4.pdb.gz")
        _add(tf, "README.txt", b"hello")
        _add(tf, "AF-P77777-F1-model_v4.pdb.gz", b"\x1f\x8b not gzip")
        _add(tf, "AF-Q99999-F1-model_v4.cif.gz")
    return buf.getvalue()


def test_refuses_unsafe_members(tmp_path):
    dest = tmp_path / "out" / "swissprot"
    rows, refused = extract_stream(io.BytesIO(_evil_tar()), dest, "mem://tar")
    reasons = dict(refused)
    assert set(reasons) == {
        "../AF-P11111-F1-model_v4.pdb.gz",
        "/tmp/AF-P22222-F1-model_v4.pdb.gz",
        "AF-P33333-F1-model_v4.pdb.gz",
        "AF-P44444-F1-model_v4.pdb.gz",
        "AF-P55555-F1-model_v4.pdb.gz",
        "sub/AF-P66666-F1-model_v4.pdb.gz",
        "README.txt",
    }
    assert "escapes" in reasons["../AF-P11111-F1-model_v4.pdb.gz"]
    assert "absolute" in reasons["/tmp/AF-P22222-F1-model_v4.pdb.gz"]
    assert "link" in reasons["AF-P33333-F1-model_v4.pdb.gz"]
    assert "link" in reasons["AF-P44444-F1-model_v4.pdb.gz"]
    assert "regular file" in reasons["AF-P55555-F1-model_v4.pdb.gz"]
    by_id = {r.id: r for r in rows}
    assert by_id["P12345"].status == "ok" and by_id["Q99999"].format == "mmcif"
    assert by_id["P77777"].status == "failed" and "gzip" in by_id["P77777"].error
    # Only the two good members exist, and nothing was written outside the destination.
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "AF-P12345-F1-model_v4.pdb.gz",
        "AF-Q99999-F1-model_v4.cif.gz",
    ]
    assert (dest / "AF-P12345-F1-model_v4.pdb.gz").read_bytes() == GOOD


def test_mirror_tar_over_http_only_listed_and_resume(server, tmp_path):
    fetcher = Fetcher(HttpConfig.from_dict(dict(retries=2, backoff=0.01, read_timeout=2)), sleep=lambda s: None)
    url = f"{server.url}/{SWISSPROT}"
    server.faults = {f"/{SWISSPROT}": ["503", "short"]}  # a 503, then a cut stream, then OK
    rows, refused = fetch_swissprot(url, tmp_path, fetcher, only=["Q6QAQ1", "P99999"])
    assert refused == []
    by_id = {r.id: r for r in rows}
    assert by_id["Q6QAQ1"].status == "ok" and by_id["P99999"].status == "failed"
    assert by_id["P99999"].error == "not in archive"
    assert [p.name for p in tmp_path.iterdir()] == ["AF-Q6QAQ1-F1-model_v4.pdb.gz"]
    with tarfile.open(MIRROR / SWISSPROT) as tf:
        want = tf.extractfile("AF-Q6QAQ1-F1-model_v4.pdb.gz").read()
    assert (tmp_path / "AF-Q6QAQ1-F1-model_v4.pdb.gz").read_bytes() == want
    assert server.requests[f"/{SWISSPROT}"] == 3
    # Rerun over a file:// URL, everything: the extracted member is skipped, others added.
    rows2, _ = fetch_swissprot((MIRROR / SWISSPROT).as_uri(), tmp_path, fetcher)
    assert {r.id: r.status for r in rows2} == {"P60713": "ok", "Q6QAQ1": "skipped", "Q96HM7": "ok"}
