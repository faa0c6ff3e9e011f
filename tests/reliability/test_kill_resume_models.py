"""Both trainings (tokenizer and LM), killed with SIGKILL mid-run through their real CLI and
restarted, resume from the last complete checkpoint and end with exactly the parameters of an
uninterrupted run with the same seed (the tokenizer with 2 threads, as the workflow runs it),
and the metrics table of the resumed run is the uninterrupted run's, from step 1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import torch
from safetensors.torch import load_file

from tests.lm.helpers import demo_proteins, write_token_shard
from tests.tokenizer.conftest import TINY_MODEL, _load, write_chain_shard

REPO = Path(__file__).resolve().parents[2]
DPLM2 = [sys.executable, "-m", "dplm2.cli"]


def _run(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(DPLM2 + args, cwd=REPO, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)


def _complete(state: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in state.glob("step-*")
                  if (p / "trainer.json").exists())


def _kill_after_checkpoint(args, state: Path, log: Path, max_steps: int) -> int:
    proc = _run(args, log)
    deadline = time.time() + 240
    while time.time() < deadline and not _complete(state) and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _complete(state)
    assert done, f"no checkpoint before the kill; log:\n{log.read_text()[-2000:]}"
    assert done[-1] < max_steps, "run finished before it could be killed"
    return done[-1]


def _finish(args, log: Path) -> None:
    proc = _run(args, log)
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(a), load_file(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def _same_metrics(a: Path, b: Path, steps: int) -> None:
    ka, kb = pl.read_parquet(a), pl.read_parquet(b)
    assert ka["step"].to_list() == list(range(1, steps + 1))
    assert ka["loss"].to_list() == kb["loss"].to_list()


@pytest.mark.slow
def test_tokenizer_training_killed_and_resumed(tmp_path):
    shard = write_chain_shard(_load()[:4], tmp_path / "chains-00000-of-00001.parquet")
    # 2 threads (the rule's default) and an encoder wide enough for torch to split its
    # kernels over both: resume is exact only if training is deterministic at that count.
    params = json.dumps({
        "model": {**TINY_MODEL, "encoder_dim": 64, "encoder_neighbors": 16},
        "data": {"crop_length": 64, "batch_size": 2, "min_length": 30, "val_max_chains": 1},
        "train": {"max_steps": 4, "lr": 1e-3, "ckpt_every": 2, "val_every": 0, "seed": 3},
    })

    def args(out):
        return ["tokenizer", "train", "--chains", str(shard), "--out-dir", str(out),
                "--params", params, "--device", "cpu", "--threads", "2"]

    killed_at = _kill_after_checkpoint(args(tmp_path / "k"), tmp_path / "k" / "state",
                                       tmp_path / "k.log", 4)
    _finish(args(tmp_path / "k"), tmp_path / "k2.log")
    assert "resumed from" in (tmp_path / "k2.log").read_text()
    _finish(args(tmp_path / "u"), tmp_path / "u.log")
    _same_weights(tmp_path / "k" / "model.safetensors", tmp_path / "u" / "model.safetensors")
    _same_metrics(tmp_path / "k" / "metrics.parquet", tmp_path / "u" / "metrics.parquet", 4)
    assert killed_at == 2


@pytest.mark.slow
def test_lm_training_killed_and_resumed(tmp_path):
    shard = write_token_shard(demo_proteins(3, length=40), tmp_path / "tokens-00000-of-00001.parquet")
    params = json.dumps({
        "init": {"source": None, "model": {"hidden_size": 32, "num_layers": 2, "num_heads": 2,
                                           "intermediate_size": 64, "dropout": 0.0}},
        "lora": {"enabled": False},
        "data": {"max_length": 64, "max_tokens": 256, "max_batch_size": 4},
        "train": {"max_steps": 8, "lr": 1e-3, "ckpt_every": 2, "val_every": 0, "seed": 5},
    })
    init = tmp_path / "init"
    _finish(["lm", "warm-start", "--out", str(init), "--params", params], tmp_path / "ws.log")

    def args(run):
        return ["lm", "train", "--init", str(init), "--shards", str(shard), "--out", str(run),
                "--model", str(run / "model"), "--threads", "1", "--params", params]

    _kill_after_checkpoint(args(tmp_path / "k"), tmp_path / "k" / "state", tmp_path / "k.log", 8)
    _finish(args(tmp_path / "k"), tmp_path / "k2.log")
    assert "resumed from" in (tmp_path / "k2.log").read_text()
    _finish(args(tmp_path / "u"), tmp_path / "u.log")
    _same_weights(tmp_path / "k" / "model" / "model.safetensors",
                  tmp_path / "u" / "model" / "model.safetensors")
    _same_metrics(tmp_path / "k" / "metrics.parquet", tmp_path / "u" / "metrics.parquet", 8)
