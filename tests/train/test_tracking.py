"""Live dashboards: the loop's TensorBoard event files (read back), optional W&B, tags."""

from __future__ import annotations

import importlib.machinery
import sys
import types

import polars as pl
import pytest

from dplm2.train import Trainer
from dplm2.train.tracking import read_scalars, row_scalars, scalar_tag

from .toy import make_trainer


def _with_tokens(t: Trainer) -> Trainer:
    t.count_tokens = lambda batch: batch["x"].shape[0]
    return t


def test_event_files_hold_every_step_of_the_metrics_table(tmp_path):
    _with_tokens(make_trainer(tmp_path, max_steps=12, ckpt_every=4)).fit()
    ev = read_scalars(tmp_path / "tensorboard")
    assert {"train/loss", "train/mse", "optim/lr", "optim/grad_norm", "optim/skipped",
            "speed/step_time_s", "speed/tokens_per_s", "speed/wall_s"} <= set(ev)
    df = pl.read_parquet(tmp_path / "metrics.parquet")
    assert [s for s, _ in ev["train/loss"]] == df["step"].to_list()
    assert [v for _, v in ev["train/loss"]] == pytest.approx(df["loss"].to_list(), rel=1e-6)
    assert all(v > 0 for _, v in ev["speed/tokens_per_s"])
    assert df["tokens_per_s"].min() > 0 and df["step_time_s"].min() > 0


def test_resumed_run_continues_the_curves_without_doubled_steps(tmp_path):
    part = make_trainer(tmp_path, max_steps=12, ckpt_every=4)
    inner = part.loss_fn

    def crash_at_11(model, batch):
        if part.step == 10:
            raise KeyboardInterrupt("simulated crash")
        return inner(model, batch)

    part.loss_fn = crash_at_11
    with pytest.raises(KeyboardInterrupt):
        part.fit()  # steps 9 and 10 were logged after the last checkpoint (step 8)
    make_trainer(tmp_path, max_steps=12, ckpt_every=4).fit()
    ev = read_scalars(tmp_path / "tensorboard")
    steps = [s for s, _ in ev["train/loss"]]
    assert steps == list(range(1, 13))
    df = pl.read_parquet(tmp_path / "metrics.parquet")
    assert [v for _, v in ev["train/loss"]] == pytest.approx(df["loss"].to_list(), rel=1e-6)
    # a fresh run in the same folder starts a fresh dashboard
    for p in (tmp_path / "state").iterdir():
        for f in p.iterdir():
            f.unlink()
        p.rmdir()
    make_trainer(tmp_path, max_steps=3, ckpt_every=4).fit()
    assert [s for s, _ in read_scalars(tmp_path / "tensorboard")["train/loss"]] == [1, 2, 3]


def test_tags_group_by_kind_and_skip_untrained_modalities():
    assert scalar_tag("val_ca_rmsd") == "val/ca_rmsd"
    assert scalar_tag("task_loss_inverse_folding_aa") == "task/inverse_folding/loss_aa"
    assert scalar_tag("acc_full_struct") == "accuracy/acc_full_struct"
    assert scalar_tag("batch_codes_used") == "codes/batch_codes_used"
    assert scalar_tag("fape") == "train/fape"
    row = {"step": 3, "loss": 2.0, "loss_struct": 0.0, "acc_full_struct": 0.0, "masked_struct": 0,
           "loss_aa": 1.5, "masked_aa": 40, "skipped": False, "note": "x", "grad_norm": float("nan")}
    out = row_scalars(row)
    assert out == {"train/loss": 2.0, "train/loss_aa": 1.5, "batch/masked_struct": 0.0,
                   "batch/masked_aa": 40.0, "optim/skipped": 0.0}


def test_wandb_gets_the_same_scalars_when_installed_and_configured(tmp_path, monkeypatch):
    calls: dict[str, list] = {"init": [], "log": [], "finish": []}
    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)

    class Run:
        def log(self, scalars, step):
            calls["log"].append((step, scalars))

        def finish(self):
            calls["finish"].append(True)

    fake.init = lambda **kw: calls["init"].append(kw) or Run()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    make_trainer(tmp_path / "off", max_steps=2).fit()
    assert calls["init"] == []  # installed but not configured: not used
    monkeypatch.setenv("WANDB_PROJECT", "dplm2-test")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    make_trainer(tmp_path / "on", max_steps=3).fit()
    (kw,) = calls["init"]
    assert kw["project"] == "dplm2-test" and kw["mode"] == "offline"
    assert [s for s, _ in calls["log"]] == [1, 2, 3] and calls["finish"] == [True]
    assert calls["log"][-1][1]["train/loss"] == pytest.approx(
        pl.read_parquet(tmp_path / "on" / "metrics.parquet")["loss"][-1])
