"""Downloads against a real loopback HTTP server with injected network faults."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dplm2.download.batch import fetch_all
from dplm2.download.config import DownloadConfig, HttpConfig
from dplm2.download.fetch import Fetcher, gzip_digest, resolve_base
from dplm2.download.manifest import check_failures, to_frame
from dplm2.download.sources import pdb_candidates, pdb_relpath

from tests.download.conftest import MIRROR, server  # noqa: F401  (the loopback fault server fixture)

HTTP = HttpConfig.from_dict(dict(connect_timeout=2, read_timeout=0.4, retries=2, backoff=0.01, backoff_max=5))


def _cands(server, raw: Path, formats=("mmcif", "pdb")):
    cfg = DownloadConfig.from_dict({"pdb": {"base_url": server.url, "formats": list(formats)}})
    return lambda e: pdb_candidates(e, cfg.pdb, server.url + "/pdb", raw)


def _path(entry: str, fmt: str = "mmcif") -> str:
    return "/pdb/" + pdb_relpath(entry, fmt)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_faults_are_retried_reported_and_resumed(server, tmp_path):
    server.stall_s = 1.0
    server.faults = {
        _path("1dix"): ["500"],  # then success
        _path("1hml"): ["429:3"],  # Retry-After 3 s, then success
        _path("3lzm"): ["short"],  # body shorter than Content-Length once
        _path("3zee"): ["stall"] * 3,  # stalls on every attempt -> read timeout
        _path("4zey"): ["reset"] * 3,  # connection reset on every attempt
        _path("3eiy"): ["truncate"] * 3,  # truncated gzip on every attempt
    }
    waits: list[float] = []
    fetcher = Fetcher(HTTP, sleep=waits.append)
    ids = ["1aki", "1dix", "1hml", "3lzm", "3zee", "4zey", "3eiy", "1qys", "9zzz"]
    raw = tmp_path / "raw"
    rows = {r.id: r for r in fetch_all(ids, _cands(server, raw), fetcher, threads=3)}

    for ok in ("1aki", "1dix", "1hml", "3lzm"):
        row = rows[ok]
        assert row.status == "ok", row
        local = Path(row.path)
        mirror = MIRROR / "pdb" / pdb_relpath(ok, "mmcif")
        assert local.read_bytes() == mirror.read_bytes()
        assert row.sha256 == _sha(mirror) and row.bytes == mirror.stat().st_size
    assert server.requests[_path("1dix")] == 2
    assert server.requests[_path("1hml")] == 2
    assert any(w >= 3.0 for w in waits), waits  # Retry-After honoured
    # PDB-format-only entry: the mmCIF 404 falls back to divided/pdb/.
    assert rows["1qys"].status == "ok" and rows["1qys"].format == "pdb"
    assert rows["1qys"].path.endswith("divided/pdb/qy/pdb1qys.ent.gz")

    assert rows["3zee"].status == "failed" and "timed out" in rows["3zee"].error.lower()
    assert rows["4zey"].status == "failed" and "interrupted" in rows["4zey"].error
    assert rows["3eiy"].status == "failed" and "gzip integrity" in rows["3eiy"].error
    assert rows["9zzz"].status == "failed" and rows["9zzz"].error.startswith("not found at")
    for bad in ("3zee", "4zey", "3eiy"):
        assert server.requests[_path(bad)] == HTTP.retries + 1
        assert "gave up after 3 attempts" in rows[bad].error
    # Nothing half-written is left behind.
    assert not [p for p in raw.rglob("*") if p.is_file() and p.name.startswith(".")]
    assert {p.name for p in raw.rglob("*.gz")} == {
        "1aki.cif.gz", "1dix.cif.gz", "1hml.cif.gz", "3lzm.cif.gz", "pdb1qys.ent.gz"
    }

    # The failure fraction gate.
    df = to_frame(rows.values())
    with pytest.raises(RuntimeError, match="4 of 9 downloads failed"):
        check_failures(df, 0.2, "test")
    check_failures(df, 0.5, "test")

    # Rerun without faults: complete files are skipped without a request, a corrupted one is
    # detected and fetched again, the failed ones are fetched now.
    (raw / pdb_relpath("1aki", "mmcif")).write_bytes(b"\x1f\x8b garbage")
    before = dict(server.requests)
    rows2 = {r.id: r for r in fetch_all(ids, _cands(server, raw), fetcher, threads=2)}
    delta = {p: server.requests[p] - before.get(p, 0) for p in server.requests}
    skipped = {r.id for r in rows2.values() if r.status == "skipped"}
    assert skipped == {"1dix", "1hml", "3lzm", "1qys"}
    assert {r.id for r in rows2.values() if r.status == "ok"} == {"1aki", "3zee", "4zey", "3eiy"}
    for skipped in ("1dix", "1hml", "3lzm"):
        assert delta.get(_path(skipped), 0) == 0
    assert delta[_path("1aki")] == 1 and delta[_path("3zee")] == 1
    assert gzip_digest(Path(rows2["1aki"].path))[1] == rows["1aki"].sha256


def test_retry_after_http_date_and_cap(server, tmp_path):
    server.faults = {_path("1aki"): ["429:100000"]}  # capped by backoff_max
    waits: list[float] = []
    rows = fetch_all(["1aki"], _cands(server, tmp_path), Fetcher(HTTP, sleep=waits.append))
    assert rows[0].status == "ok"
    assert 5.0 <= waits[0] <= 5.5


def test_resolve_base_forms(tmp_path):
    assert resolve_base("https://x.org/a/") == "https://x.org/a"
    assert resolve_base(str(tmp_path)) == tmp_path.resolve().as_uri()
    assert resolve_base("m", tmp_path) == (tmp_path / "m").resolve().as_uri()
    with pytest.raises(ValueError, match="unsupported URL scheme"):
        resolve_base("ftp://example.org/x")


def test_unreachable_server_stops_early_with_one_message(tmp_path):
    """Every connection refused: the job stops after `unreachable_after` consecutive refusals
    (not after retrying each of the 40 files with back-off) and says why, naming the host."""
    import socket
    import time

    from dplm2.download.fetch import ServerUnreachable

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    cfg = DownloadConfig.from_dict({"pdb": {"base_url": base}})
    waits: list[float] = []
    fetcher = Fetcher(HttpConfig.from_dict(dict(retries=3, backoff=0.5, unreachable_after=4)), sleep=waits.append)
    ids = [f"{i}abc" for i in range(1, 10)] + [f"{i}xyz" for i in range(1, 10)] * 2 + ["1aki"] * 4
    t0 = time.time()
    with pytest.raises(ServerUnreachable, match=f"127.0.0.1:{port}: server unreachable "
                                                "\\(4 consecutive connection failures"):
        fetch_all(ids, lambda e: pdb_candidates(e, cfg.pdb, base + "/pdb", tmp_path), fetcher,
                  threads=2)
    assert time.time() - t0 < 10
    assert len(waits) <= 4  # back-off waits before the stop, not 3 per file
    assert isinstance(ServerUnreachable("x"), OSError)  # the CLI prints it as one line


def test_symlink_in_a_local_mirror_is_refused(tmp_path):
    """A link in the mirror would import whatever it points at under an entry's name."""
    import shutil

    mirror = tmp_path / "mirror"
    shutil.copytree(MIRROR / "pdb", mirror / "pdb")
    target = mirror / "pdb" / pdb_relpath("1aki", "mmcif")
    secret = tmp_path / "secret.txt"
    secret.write_text("not a structure")
    target.unlink()
    target.symlink_to(secret)
    cfg = DownloadConfig.from_dict({"pdb": {"base_url": str(mirror / "pdb"), "formats": ["mmcif"]}})
    base = resolve_base(cfg.pdb.base_url)
    rows = fetch_all(["1aki", "1dix"], lambda e: pdb_candidates(e, cfg.pdb, base, tmp_path / "raw"),
                     Fetcher(HTTP))
    assert rows[1].status == "ok"
    assert rows[0].status == "failed" and "symbolic link in the local mirror" in rows[0].error
    assert str(secret) in rows[0].error
    assert not any((tmp_path / "raw").rglob("*1aki*"))
