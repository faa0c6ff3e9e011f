"""tools/compare_results.py: the check that a refactoring leaves the workflow's outputs as they
were (docs/results.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[2]


def _results(root: Path, wall: float, seq: str) -> Path:
    (root / "lm").mkdir(parents=True)
    (root / "logs").mkdir()
    pl.DataFrame({"step": [1, 2], "loss": [2.0, 1.5], "wall_s": [wall, wall * 2]}).write_parquet(
        root / "lm" / "metrics.parquet")
    (root / "aatype.fasta").write_text(f">s0\n{seq}\n")
    (root / "logs" / "x.log").write_text(f"took {wall} s\n")  # logs are not compared
    return root


def _compare(a: Path, b: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tools/compare_results.py", str(a), str(b)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_names_the_differing_files_and_columns(tmp_path):
    a = _results(tmp_path / "a", 1.0, "MKV")
    out = _compare(a, _results(tmp_path / "b", 1.0, "MKV"))
    assert out.returncode == 0 and "2 of 2 common files identical" in out.stdout, out.stdout
    c = _results(tmp_path / "c", 3.0, "MKL")
    out = _compare(a, c)
    assert "differs: lm/metrics.parquet (columns: wall_s)" in out.stdout
    assert "differs: aatype.fasta" in out.stdout and "0 of 2" in out.stdout
    (c / "extra.txt").write_text("x")
    out = _compare(a, c)
    assert out.returncode == 1 and f"only in {c}: extra.txt" in out.stdout
