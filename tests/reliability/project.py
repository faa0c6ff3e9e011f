"""A tiny but real copy of the workflow project for fault injection: the repository's
Snakefile, rules, package sources and bundled data in a folder of its own, a config with
demo-data downloads (no SwissProt tar), a tiny tokenizer and a tiny LM, and helpers to run
Snakemake there, interrupt it and look at the processes it started."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
#: What a project folder needs (the rest of the repository is documentation and tests).
PARTS = ("Snakefile", "config.yaml", "workflow", "src", "envs", "resources/demo",
         "resources/mirror")

TOK_OUT = ["results/tokenizer/model.safetensors", "results/tokenizer/config.json",
           "results/tokenizer/metrics.parquet", "results/tokenizer/training_record.json"]
LM_OUT = ["results/lm/model/model.safetensors", "results/lm/model/config.json",
          "results/lm/metrics.parquet"]
#: The targets of the fault suite: both trainings and what lies between them.
TARGETS = ["results/lm/model/model.safetensors", "results/lm/metrics.parquet",
           "results/tokenizer/training_record.json"]

TINY = {
    "download": {"afdb": {"swissprot": {"enabled": False}}},
    "process": {"parse_shards": 1, "n_shards": 1},
    "tokenizer": {
        "model": {"decoder": "compact", "encoder_dim": 32, "encoder_neighbors": 8, "encoder_message_layers": 1,
                  "encoder_layers": 1, "encoder_heads": 4, "post_dim": 32, "post_layers": 1,
                  "post_heads": 4, "pair_dim": 8, "seq_head_width": 8, "pair_head_width": 8,
                  "sm_blocks": 1, "ipa_heads": 2, "recycles": 0},
        "data": {"crop_length": 48, "batch_size": 2, "val_max_chains": 2, "val_max_length": 64},
        "train": {"max_steps": 6, "ckpt_every": 2, "val_every": 0, "warmup_steps": 0},
    },
    "lm": {
        "init": {"model": {"hidden_size": 32, "num_layers": 2, "num_heads": 2,
                           "intermediate_size": 64}},
        "data": {"max_length": 64, "max_tokens": 256, "max_batch_size": 4,
                 "val_max_samples": 2},
        "train": {"max_steps": 6, "ckpt_every": 2, "val_every": 0, "warmup_steps": 0},
    },
}


def _merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def make_project(folder: Path) -> Path:
    """Copy the workflow into ``folder`` with the tiny config as its ``config.yaml``."""
    folder.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        src, dst = REPO / part, folder / part
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    cfg = _merge(yaml.safe_load((REPO / "config.yaml").read_text()), TINY)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder


def set_config(folder: Path, **sections) -> None:
    """Change keys of the project's config.yaml (nested dicts merged)."""
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    (folder / "config.yaml").write_text(yaml.safe_dump(_merge(cfg, sections), sort_keys=False))


def env() -> dict[str, str]:
    """The environment of the jobs: this interpreter's bin first, the package of this
    checkout importable, one thread per library."""
    return {**os.environ, "PATH": f"{SNAKEMAKE.parent}:{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


def snakemake(folder: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``snakemake --cores 2 ARGS`` in ``folder`` (the user's command line)."""
    return subprocess.run([str(SNAKEMAKE), "--cores", "2", *args], cwd=folder, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def start(folder: Path, *args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(SNAKEMAKE), "--cores", "2", *args], cwd=folder, env=env(),
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def checkpoints(state: Path, since: float = 0.0) -> list[int]:
    """Steps of the complete checkpoints in ``state`` (written after ``since``)."""
    out = []
    for p in state.glob("step-*"):
        try:
            if (p / "trainer.json").stat().st_mtime >= since:
                out.append(int(p.name.split("-")[1]))
        except OSError:  # not complete, or removed meanwhile
            pass
    return sorted(out)


def training_processes(root: psutil.Process, words: str) -> list[psutil.Process]:
    """Descendants of ``root`` whose command line contains ``words`` (e.g. 'lm train')."""
    out = []
    for p in root.children(recursive=True):
        try:
            if words in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            pass
    return out


def running_anywhere(words: str, cwd: Path) -> list[psutil.Process]:
    """Live processes (anywhere, orphans included) running ``words`` in ``cwd``."""
    out = []
    for p in psutil.process_iter(["cmdline", "cwd", "status"]):
        try:
            if (words in " ".join(p.info["cmdline"] or []) and p.info["cwd"] == str(cwd)
                    and p.info["status"] != psutil.STATUS_ZOMBIE):
                out.append(p)
        except psutil.Error:
            pass
    return out


def interrupt_during_training(folder: Path, words: str, state: Path, after_step: int,
                              sig: int, log: Path, args: tuple[str, ...] = (),
                              targets: list[str] = TARGETS) -> int:
    """Start ``snakemake`` on the targets, wait until the training (``words``) has written a
    checkpoint beyond ``after_step``, send ``sig`` to the snakemake process alone and wait for
    it to end. Returns the newest checkpoint step at the signal."""
    t0 = time.time()
    proc = start(folder, *args, *targets, log=log)
    deadline = t0 + 300
    try:
        while time.time() < deadline:
            done = checkpoints(state, since=t0)  # not those of an earlier run
            if done and done[-1] > after_step:
                break
            assert proc.poll() is None, f"snakemake ended early:\n{log.read_text()[-3000:]}"
            time.sleep(0.05)
        else:
            raise AssertionError(f"no checkpoint beyond {after_step}:\n{log.read_text()[-3000:]}")
        assert training_processes(psutil.Process(proc.pid), words), "no training running"
        at = checkpoints(state, since=t0)[-1]
        proc.send_signal(sig)
        proc.wait(timeout=120)
        return at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_gone(words: str, cwd: Path, timeout: float = 30) -> list[psutil.Process]:
    """Wait until no process runs ``words`` in ``cwd``; returns those still alive."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        alive = running_anywhere(words, cwd)
        if not alive:
            return []
        time.sleep(0.2)
    return running_anywhere(words, cwd)


def kill_all(words: str, cwd: Path) -> None:
    """Clean-up after a failed test: end the processes this test left behind (by pid)."""
    for p in running_anywhere(words, cwd):
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
