"""The data stage (download, parse, gather) and the model-free evaluation metrics run without
importing PyTorch: thousands of shard jobs must not pay its start-up time and memory."""

from __future__ import annotations

import subprocess
import sys

# Every module the commands of these stages import (the CLI functions import inside them).
TORCH_FREE = (
    "dplm2.cli",
    "dplm2.download.cli", "dplm2.download.batch", "dplm2.download.fetch", "dplm2.download.ids",
    "dplm2.download.manifest", "dplm2.download.sources", "dplm2.download.tarball",
    "dplm2.process.cli", "dplm2.process.parse", "dplm2.process.gather",
    "dplm2.evaluate.cli", "dplm2.evaluate.samples", "dplm2.evaluate.self_consistency",
    "dplm2.evaluate.fold_accuracy", "dplm2.evaluate.recovery", "dplm2.evaluate.diversity",
    "dplm2.evaluate.novelty", "dplm2.evaluate.motif", "dplm2.evaluate.summary",
)  # fmt: skip


def test_data_stage_and_metrics_do_not_import_torch():
    code = (
        "import importlib, sys\n"
        f"for m in {TORCH_FREE!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print(len(bad)); sys.exit(1 if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"torch imported by the data stage: {out.stdout}{out.stderr[-2000:]}"
