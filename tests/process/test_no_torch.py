"""The data stage and the model-free evaluation metrics run without importing PyTorch (it
costs every one of thousands of cluster jobs ~0.4 GB and seconds of start-up for nothing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.process.test_stage import DATA, manifest

TORCH_FREE_MODULES = [
    "dplm2.cli", "dplm2.download.cli", "dplm2.download.fetch", "dplm2.download.batch",
    "dplm2.download.manifest", "dplm2.download.sources", "dplm2.download.tarball",
    "dplm2.process.cli", "dplm2.process.parse", "dplm2.process.gather", "dplm2.process.cluster",
    "dplm2.process.report", "dplm2.evaluate.cli", "dplm2.evaluate.novelty",
    "dplm2.evaluate.diversity", "dplm2.evaluate.self_consistency", "dplm2.evaluate.recovery",
    "dplm2.evaluate.motif", "dplm2.evaluate.fold_accuracy", "dplm2.evaluate.summary",
    "dplm2.structure.compare", "dplm2.lm.objective",
]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


def test_data_stage_modules_import_no_torch():
    code = ("import importlib, sys\n"
            f"for m in {TORCH_FREE_MODULES!r}:\n"
            "    importlib.import_module(m)\n"
            "    assert 'torch' not in sys.modules, m\n")
    res = _run(code)
    assert res.returncode == 0, res.stderr[-2000:]


def test_parse_and_gather_commands_run_without_torch(tmp_path: Path):
    pdb = manifest(tmp_path / "pdb.parquet", [("1aki", str(DATA / "1aki.cif.gz"), "ok")])
    afdb = manifest(tmp_path / "afdb.parquet",
                    [("Q9GZY4", str(DATA / "AF-Q9GZY4-F1-model_v1.pdb.gz"), "ok")])
    params = json.dumps({"parse_shards": 1, "n_shards": 1, "filters": {"rg_quantile": None}})
    parsed, out = tmp_path / "parsed.parquet", tmp_path / "chains"
    argv = [["process", "parse", "--pdb-manifest", str(pdb), "--afdb-manifest", str(afdb),
             "--shard", "0", "--shards", "1", "--output", str(parsed), "--params", params],
            ["process", "gather", "--parsed", str(parsed), "--outdir", str(out),
             "--params", params]]
    code = ("import sys\nfrom dplm2.cli import main\n"
            f"for argv in {argv!r}:\n"
            "    assert main(argv) == 0, argv\n"
            "    assert 'torch' not in sys.modules, argv\n")
    res = _run(code)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (out / "chains-00000-of-00001.parquet").is_file()
