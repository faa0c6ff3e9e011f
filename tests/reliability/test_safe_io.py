"""Nothing half-written is ever read; nothing loaded can execute code."""

from __future__ import annotations

import os
import pickle

import polars as pl
import pytest
import torch

from dplm2.io import atomic_path, read_parquet_checked, write_parquet
from tests.train.toy import make_trainer


class _Evil:
    """Unpickling this would run a shell command: safe loaders must refuse it."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/dplm2-pwned",))


def test_malicious_optimizer_state_is_refused(tmp_path):
    t = make_trainer(tmp_path, max_steps=4, ckpt_every=2)
    t.fit()
    ckpt = t.checkpoints()[-1]
    (ckpt / "optimizer.pt").write_bytes(pickle.dumps({"state": _Evil()}))
    again = make_trainer(tmp_path, max_steps=8, ckpt_every=2)
    with pytest.raises(ValueError, match=str(ckpt)):
        again.load_latest()
    assert not os.path.exists("/tmp/dplm2-pwned")


def test_truncated_parquet_is_refused_with_its_name(tmp_path):
    path = tmp_path / "chains-00000-of-00001.parquet"
    write_parquet(pl.DataFrame({"id": ["a", "b"], "length": [3, 4]}), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="chains-00000-of-00001.parquet.*not a readable"):
        read_parquet_checked(path)


def test_stale_shard_metadata_is_refused(tmp_path):
    path = tmp_path / "tokens.parquet"
    write_parquet(pl.DataFrame({"id": ["a"]}), path, {"tokenizer_sha256": "old"})
    with pytest.raises(ValueError, match="stale shard"):
        read_parquet_checked(path, expect={"tokenizer_sha256": "new"})
    with pytest.raises(ValueError, match="missing column"):
        read_parquet_checked(path, required_columns=["struct_tokens"])


def test_interrupted_write_leaves_old_file_intact(tmp_path):
    path = tmp_path / "metrics.parquet"
    write_parquet(pl.DataFrame({"step": [1]}), path)
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("killed mid-write")
    assert pl.read_parquet(path)["step"].to_list() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.parquet"]


def test_interrupted_folder_write_leaves_no_checkpoint(tmp_path):
    target = tmp_path / "state" / "step-00000010"
    with pytest.raises(RuntimeError):
        with atomic_path(target, is_dir=True) as tmp:
            torch.save({"x": torch.ones(2)}, tmp / "optimizer.pt")
            raise RuntimeError("killed mid-write")
    assert not target.exists()
    assert list((tmp_path / "state").iterdir()) == []


def test_atomic_files_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
        with atomic_path(tmp_path / "d", is_dir=True) as tmp:
            (tmp / "a").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_full_disk_parquet_write_names_the_file(tmp_path):
    """pyarrow reports a full disk without the path: atomic_path restates it (a real 64 KiB
    tmpfs; needs root, skipped otherwise)."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        df = pl.DataFrame({"x": list(range(200_000))})
        with pytest.raises(OSError, match=f"No space left on device while writing {disk}/"
                                          "big.parquet"):
            write_parquet(df, disk / "big.parquet")
        assert list(disk.iterdir()) == []  # nothing half-written
    finally:
        subprocess.run(["umount", str(disk)], check=False)
