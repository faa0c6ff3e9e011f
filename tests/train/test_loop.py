"""The shared training loop: exact resume, NaN guard, atomic checkpoints, schedule."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import torch

from dplm2.train import NonFiniteLossError, TrainConfig, Trainer, lr_at

from .toy import batch_fn, loss_fn, make_trainer

HERE = Path(__file__).parent


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_loss_falls_and_metrics_written(tmp_path):
    t = make_trainer(tmp_path, max_steps=30)
    t.fit()
    df = pl.read_parquet(tmp_path / "metrics.parquet")
    assert df["step"].to_list() == list(range(1, 31))
    assert df["loss"][-5:].mean() < df["loss"][:5].mean() * 0.5
    assert {"lr", "mse", "grad_norm", "wall_s", "skipped"} <= set(df.columns)


def test_resume_is_exact(tmp_path):
    full = make_trainer(tmp_path / "a", max_steps=20)
    full.fit()
    part = make_trainer(tmp_path / "b", max_steps=20)
    crash = part.loss_fn

    def crash_at_13(model, batch):
        if part.step == 13:
            raise KeyboardInterrupt("simulated crash")
        return crash(model, batch)

    part.loss_fn = crash_at_13
    with pytest.raises(KeyboardInterrupt):
        part.fit()
    assert part.checkpoints()[-1].name == "step-00000010"
    resumed = make_trainer(tmp_path / "b", max_steps=20)
    resumed.fit()
    assert torch.equal(_params(full.model), _params(resumed.model))
    a = pl.read_parquet(tmp_path / "a" / "metrics.parquet")["loss"].to_list()
    b = pl.read_parquet(tmp_path / "b" / "metrics.parquet")["loss"].to_list()
    assert a == b


def test_finished_run_rewrites_its_outputs_from_state(tmp_path):
    """Outputs deleted after training finished (Snakemake's --forcerun, --rerun-incomplete):
    a rerun trains nothing and writes the same metrics (all steps) and weights again."""
    exported = []
    t = make_trainer(tmp_path, max_steps=12, ckpt_every=4)
    t.export_fn = lambda m, folder: exported.append(_params(m).clone())
    t.fit()
    first = pl.read_parquet(tmp_path / "metrics.parquet")
    (tmp_path / "metrics.parquet").unlink()
    again = make_trainer(tmp_path, max_steps=12, ckpt_every=4)
    again.export_fn = lambda m, folder: exported.append(_params(m).clone())
    last = again.fit()
    assert again.step == 12 and last["step"] == 12
    assert pl.read_parquet(tmp_path / "metrics.parquet").equals(first)
    assert len(exported) == 2 and torch.equal(exported[0], exported[1])


def test_history_survives_interruptions_and_lost_metrics(tmp_path):
    """Two interruptions, the declared metrics table deleted each time: the final table still
    starts at step 1 (the history lives in each checkpoint) and equals an uninterrupted run's."""
    full = make_trainer(tmp_path / "a", max_steps=12, ckpt_every=2)
    full.fit()
    for stop in (5, 9):
        part = make_trainer(tmp_path / "b", max_steps=12, ckpt_every=2)
        inner = part.loss_fn

        def crash(model, batch, part=part, inner=inner, stop=stop):
            if part.step == stop:
                raise KeyboardInterrupt("simulated interruption")
            return inner(model, batch)

        part.loss_fn = crash
        with pytest.raises(KeyboardInterrupt):
            part.fit()
        (tmp_path / "b" / "metrics.parquet").unlink(missing_ok=True)
    make_trainer(tmp_path / "b", max_steps=12, ckpt_every=2).fit()
    a = pl.read_parquet(tmp_path / "a" / "metrics.parquet")
    b = pl.read_parquet(tmp_path / "b" / "metrics.parquet")
    assert b["step"].to_list() == list(range(1, 13))
    assert a["loss"].to_list() == b["loss"].to_list()


def test_garbled_checkpoint_weights_are_refused_naming_the_file(tmp_path):
    make_trainer(tmp_path, max_steps=4, ckpt_every=2).fit()
    weights = tmp_path / "state" / "step-00000004" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-40:-8] = bytes(32)  # inside the tensor data: safetensors itself would not notice
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{weights}: corrupted weights.*delete this folder"):
        make_trainer(tmp_path, max_steps=6, ckpt_every=2).load_latest()


def test_full_disk_names_the_checkpoint_and_the_cause(tmp_path):
    """A real full file system (a 256 KiB tmpfs; needs root, skipped otherwise)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        from .toy import Toy

        class Wide(Toy):
            def __init__(self):
                super().__init__()
                self.pad = torch.nn.Parameter(torch.zeros(40_000))  # 160 kB: 2 copies overflow

        t = Trainer(Wide(), loss_fn, batch_fn, TrainConfig.from_dict(dict(max_steps=4, ckpt_every=2)), disk)
        with pytest.raises(OSError, match=f"No space left on device while writing .*{disk}/"
                                          r"state/step-\d+ \(.* MiB free on that disk\)"):
            t.fit()
        assert [p.name for p in (disk / "state").iterdir() if not p.name.startswith(".")] \
            in ([], ["step-00000002"])
        assert not list((disk / "state").glob(".*tmp"))  # nothing half-written left behind
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_incomplete_checkpoint_is_ignored(tmp_path):
    t = make_trainer(tmp_path, max_steps=10)
    t.fit()
    # A crash mid-write leaves a folder without trainer.json: it must never be read.
    bogus = tmp_path / "state" / "step-00000099"
    bogus.mkdir()
    (bogus / "model.safetensors").write_bytes(b"garbage")
    assert t.checkpoints()[-1].name == "step-00000010"
    again = make_trainer(tmp_path, max_steps=10)
    assert again.load_latest() and again.step == 10


def test_only_newest_checkpoints_kept(tmp_path):
    make_trainer(tmp_path, max_steps=20, ckpt_every=2).fit()
    names = sorted(p.name for p in (tmp_path / "state").iterdir())
    assert names == ["step-00000016", "step-00000018", "step-00000020"]


def test_nan_step_skipped_and_logged(tmp_path):
    torch.manual_seed(0)
    from .toy import Toy

    def flaky(model, batch):
        loss, m = loss_fn(model, batch)
        return (loss * float("nan") if batch["step"] == 3 else loss), m

    def bf(step, rank, world):
        return {**batch_fn(step, rank, world), "step": step}

    t = Trainer(Toy(), flaky, bf, TrainConfig.from_dict(dict(max_steps=6, lr=1e-2)), tmp_path)
    t.fit()
    df = pl.read_parquet(tmp_path / "metrics.parquet")
    assert df.filter(pl.col("skipped"))["step"].to_list() == [4]
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_persistent_nan_stops_without_checkpoint(tmp_path):
    from .toy import Toy

    def always_nan(model, batch):
        loss, m = loss_fn(model, batch)
        return loss * float("inf"), m

    cfg = TrainConfig.from_dict(dict(max_steps=50, lr=1e-2, max_bad_steps=3, ckpt_every=1))
    t = Trainer(Toy(), always_nan, batch_fn, cfg, tmp_path)
    with pytest.raises(NonFiniteLossError, match="3 consecutive"):
        t.fit()
    # Skipped steps leave the weights untouched: any checkpoint written holds finite values.
    from safetensors.torch import load_file

    for ckpt in t.checkpoints():
        assert all(torch.isfinite(v).all() for v in load_file(ckpt / "model.safetensors").values())


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    """A run killed with SIGKILL mid-training resumes from its last complete checkpoint and
    ends with the same parameters as an uninterrupted run."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])}
    cmd = [sys.executable, "-m", "tests.train.toy", str(tmp_path / "killed"), "40", "0.05"]
    proc = subprocess.Popen(cmd, env=env, cwd=HERE.parents[1],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed" / "state"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(state.glob("step-*"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [p for p in state.glob("step-*") if (p / "trainer.json").exists()]
    assert done, "no checkpoint before the kill"
    assert max(int(p.name.split("-")[1]) for p in done) < 40, "killed too late to test resume"
    resumed = make_trainer(tmp_path / "killed", max_steps=40, ckpt_every=2)
    resumed.fit()
    full = make_trainer(tmp_path / "full", max_steps=40, ckpt_every=2)
    full.fit()
    assert torch.equal(_params(full.model), _params(resumed.model))


def test_schedule_warmup_and_decay():
    cfg = TrainConfig.from_dict(dict(max_steps=100, lr=1e-3, warmup_steps=10, start_lr=1e-7, end_lr=1e-5))
    assert lr_at(0, cfg) == pytest.approx(1e-7)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-5)
    assert lr_at(55, cfg) == pytest.approx((1e-3 + 1e-5) / 2)


def test_config_rejects_unknown_and_bad_values():
    from dplm2.config import ConfigError

    with pytest.raises(ConfigError, match="unknown key.*max_step"):
        TrainConfig.from_dict({"max_step": 3})
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig.from_dict({"precision": "fp16"})
