"""Fault injection on the real workflow (Snakemake, tiny config, see ``project.py``): every
trained model survives, and every recovery command docs/cluster.md gives works.

One tiny project is run once to the end of LM training (both trainings, 6 steps each); every
test works on its own copy of that finished project:

- ``--forcerun`` of each training on a finished run (docs/cluster.md, "Rerunning one stage"): the
  training resumes from its ``state/`` at ``max_steps`` and rewrites every declared output,
  identical, instead of deleting the model and failing;
- SIGINT and SIGKILL sent to the ``snakemake`` process alone during each training: the training
  process stops with it (no orphan), and the recovery commands of docs/cluster.md (the same command
  again; ``--unlock`` then ``--rerun-incomplete``) finish the training from its last
  checkpoint with the full metrics history (steps 1..N);
- garbled and truncated weights (tokenizer, LM) are refused by the next job with an error
  naming the file, and ``--forcerun`` restores them from ``state/``;
- a finished project copied to another folder plans nothing (no absolute paths in params).

Counts for the closing note: 13 faults injected (2 forced reruns, 4 interrupts, 2 stale locks
left by a killed Snakemake, 4 damaged weights files, 1 moved project); all survived; 0 outputs
lost.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
from pathlib import Path

import polars as pl
import pytest

from tests.reliability.project import (
    LM_OUT,
    TARGETS,
    TOK_OUT,
    checkpoints,
    interrupt_during_training,
    kill_all,
    make_project,
    running_anywhere,
    set_config,
    snakemake,
    wait_gone,
)

pytestmark = pytest.mark.long

N = 20  # training steps in the interrupt tests
TOK_STATE = "results/tokenizer/state"
LM_STATE = "results/lm/state"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ok(out, what: str) -> str:
    text = out.stdout + out.stderr
    assert out.returncode == 0, f"{what} failed:\n{text[-4000:]}"
    return text


def _steps(path: Path) -> list[int]:
    return pl.read_parquet(path)["step"].to_list()


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """The tiny project, run once through both trainings."""
    folder = make_project(tmp_path_factory.mktemp("finished") / "project")
    _ok(snakemake(folder, *TARGETS), "the first run")
    return folder


@pytest.fixture
def project(finished, tmp_path) -> Path:
    """A private copy of the finished project (timestamps kept, as `cp -a`)."""
    folder = tmp_path / "project"
    shutil.copytree(finished, folder, symlinks=True)
    yield folder
    kill_all("dplm2", folder)  # only if a test failed half-way


def _outputs(folder: Path) -> dict[str, str]:
    return {f: _sha(folder / f) for f in TOK_OUT + LM_OUT if f.endswith(".safetensors")}


# --- 1. --forcerun of each training on a finished run ------------------------------------------
def test_forcerun_each_training_keeps_the_model(project):
    before = _outputs(project)
    tok_metrics = pl.read_parquet(project / "results/tokenizer/metrics.parquet")
    lm_metrics = pl.read_parquet(project / "results/lm/metrics.parquet")
    # docs/cluster.md's commands, verbatim but for the profile.
    _ok(snakemake(project, "--forcerun", "train_tokenizer", "--",
                  "results/tokenizer/model.safetensors"), "--forcerun train_tokenizer")
    _ok(snakemake(project, "--forcerun", "train_lm", "--", "results/lm/metrics.parquet"),
        "--forcerun train_lm")
    for f in TOK_OUT + LM_OUT:
        assert (project / f).is_file(), f"{f} lost"
    assert _outputs(project) == before
    assert pl.read_parquet(project / "results/tokenizer/metrics.parquet").equals(tok_metrics)
    assert pl.read_parquet(project / "results/lm/metrics.parquet").equals(lm_metrics)
    log = (project / "results/logs/lm/train_lm.log").read_text()
    assert "already at step 6 of 6" in log
    # and the same command again has nothing left to do
    assert "Nothing to be done" in _ok(snakemake(project, "-n", *TARGETS), "dry run")


# --- 2-3. interrupt snakemake during each training, recover as docs/cluster.md says ---------
def _recover(project: Path, sig: int, targets: list[str]) -> None:
    if sig == signal.SIGKILL:
        # A killed Snakemake leaves its lock: the same command is refused until --unlock.
        refused = snakemake(project, *targets)
        assert refused.returncode != 0 and "--unlock" in refused.stdout + refused.stderr
        _ok(snakemake(project, "--unlock"), "--unlock")
        _ok(snakemake(project, "--rerun-incomplete", *targets), "--rerun-incomplete")
    else:
        _ok(snakemake(project, *targets), "the same command again")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("part", ["tokenizer", "lm"])
def test_interrupted_snakemake_loses_no_training(project, tmp_path, part, sig):
    """The training, continued to N steps, is interrupted through the ``snakemake`` process at
    its first new checkpoint: no training process outlives Snakemake, and docs/cluster.md's recovery
    resumes from that checkpoint to a complete model with the metrics of steps 1..N."""
    state = project / f"results/{part}/state"
    words = f"{part} train"
    # N = 20: the rest after the signal is long enough not to finish within the lifeline's
    # poll even at 0.15 s per step.
    set_config(project, **{part: {"train": {"max_steps": N}}})
    targets = TOK_OUT if part == "tokenizer" else LM_OUT
    interrupt_during_training(project, words, state, 6, sig, tmp_path / "first.log",
                              targets=targets)
    assert not wait_gone(words, project), f"{words} outlived snakemake"
    at = checkpoints(state)[-1]  # (a step may end between the signal and the stop)
    assert 6 < at < N
    outputs = TOK_OUT if part == "tokenizer" else LM_OUT
    _recover(project, sig, targets)
    log = (project / f"results/logs/{part}/train_{part}.log").read_text()
    assert f"resumed from results/{part}/state/step-{at:08d}" in log
    metrics = project / f"results/{part}/metrics.parquet"
    assert _steps(metrics) == list(range(1, N + 1))
    for f in outputs:
        assert (project / f).is_file(), f"{f} lost"
    assert "Nothing to be done" in _ok(snakemake(project, "-n", *targets), "dry run")
    assert not running_anywhere("dplm2", project)


# --- 5. damaged weights are refused, naming the file; --forcerun restores them ------------------
def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 256] = bytes(b ^ 0x5A for b in data[mid : mid + 256])
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


@pytest.mark.parametrize(
    "weights,rule,consumer,log",
    [("results/tokenizer/model.safetensors", "train_tokenizer",
      "results/tokens/tokens-00000-of-00001.parquet",
      "results/logs/tokenizer/tokenize-00000-of-00001.log"),
     ("results/lm/model/model.safetensors", "train_lm",
      "results/generate/cogen/samples.parquet", "results/logs/generate/cogen.log")],
    ids=["tokenizer", "lm"])
def test_damaged_weights_are_refused_and_restored(project, weights, rule, consumer, log):
    path = project / weights
    good = _sha(path)
    for damage in (_garble, _truncate):
        damage(path)
        out = snakemake(project, "--", consumer)
        assert out.returncode != 0, f"{damage.__name__}d weights were used:\n{out.stderr[-3000:]}"
        text = (project / log).read_text()
        assert f"{weights}: " in text and ("corrupted" in text or "truncated" in text), text[-2000:]
        assert "Traceback" not in text
    # docs/cluster.md's repair: rerun the training, which re-exports the weights from state/.
    _ok(snakemake(project, "--forcerun", rule, "--", weights), f"--forcerun {rule}")
    assert _sha(path) == good
    _ok(snakemake(project, "--", consumer), "the consumer after the repair")


# --- 7. a finished project moved elsewhere plans nothing ----------------------------------------
def test_moved_project_plans_nothing(finished, tmp_path):
    moved = tmp_path / "elsewhere" / "renamed-project"
    shutil.copytree(finished, moved, symlinks=True)
    out = _ok(snakemake(moved, "-n", *TARGETS), "dry run of the moved project")
    assert "Nothing to be done" in out, out[-3000:]
    assert str(finished) not in (moved / "results/tokenizer/training_record.json").read_text()
