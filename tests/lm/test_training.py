"""Training on the shared loop: exact resume, DDP (2 CPU processes), CLI end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import torch
from safetensors.torch import load_file

from dplm2.lm.train import LMConfig, build_trainer
from dplm2.lm.warm_start import InitConfig, warm_start

from .helpers import demo_proteins, write_token_shard

TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}


def _setup(tmp_path: Path, lora: bool = True, steps: int = 6,
           **extra) -> tuple[dict, Path, Path]:
    ps = demo_proteins(6)  # full-length real chains: cropping + token-budget batching at work
    write_token_shard(ps[:5], tmp_path / "tokens-00000-of-00002.parquet")
    write_token_shard(ps[5:], tmp_path / "tokens-00001-of-00002.parquet", split="valid")
    params = {
        "init": {"seed": 0, "model": TINY},
        "lora": {"enabled": lora, "rank": 4, "alpha": 8.0},
        "data": {"max_length": 90, "min_crop_length": 60, "max_tokens": 200, "max_batch_size": 8},
        "train": {"max_steps": steps, "lr": 1e-3, "warmup_steps": 2, "ckpt_every": 3,
                  "val_every": 3, "seed": 7},
        **extra,
    }
    cfg = LMConfig.from_dict(params)
    init = warm_start(cfg.init, tmp_path / "init", objective=cfg.objective)
    return params, init, tmp_path


class Stop(Exception):
    pass


def test_resume_gives_same_trajectory(tmp_path):
    params, init, d = _setup(tmp_path)
    cfg = LMConfig.from_dict(params)
    shards = sorted(d.glob("tokens-*.parquet"))
    full = build_trainer(cfg, init, shards, d / "full").fit()
    a = pl.read_parquet(d / "full" / "metrics.parquet")

    crashing = build_trainer(cfg, init, shards, d / "resumed")
    inner = crashing.batch_fn

    def batch_fn(micro, rank, world):
        if micro == 4:  # dies during step 5, after the step-3 checkpoint
            raise Stop
        return inner(micro, rank, world)

    crashing.batch_fn = batch_fn
    with pytest.raises(Stop):
        crashing.fit()
    last = build_trainer(cfg, init, shards, d / "resumed").fit()
    b = pl.read_parquet(d / "resumed" / "metrics.parquet")
    assert a["loss"].to_list() == b["loss"].to_list()
    assert len(a) == 6 and last["loss"] == full["loss"]
    assert a["val_folding_nll_full_struct"].drop_nulls().len() == 2
    assert a["val_folding_acc_full_struct"].drop_nulls().len() == 2
    wa = load_file(d / "full" / "model" / "model.safetensors")
    wb = load_file(d / "resumed" / "model" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
@pytest.mark.parametrize("extra", [{}, {"objective": "bit", "self_mixup": True}],
                         ids=["index", "bit-self-mixup"])
def test_ddp_two_processes_identical_parameters(tmp_path, extra):
    params, init, d = _setup(tmp_path, lora=False, steps=3, **extra)
    shards = sorted(d.glob("tokens-*.parquet"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(Path(__file__).with_name("ddp_worker.py")),
        json.dumps(params), str(init), str(shards[0]), str(d / "run"),
    ]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    r0 = load_file(d / "run" / "params-rank0.safetensors")
    r1 = load_file(d / "run" / "params-rank1.safetensors")
    start = load_file(init / "model.safetensors")
    assert r0.keys() == r1.keys()
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    assert not torch.equal(r0["net.esm.encoder.layer.0.attention.self.query.weight"],
                           start["esm.encoder.layer.0.attention.self.query.weight"])
    if extra:  # the bit model's own modules train under DDP too
        heads = [k for k in r0 if "struct" in k or "quant2emb" in k]
        assert heads and any(not torch.equal(r0[k], start[k.removeprefix("net.")]) for k in heads)


def test_cli_warm_start_train_export(tmp_path):
    params, _, d = _setup(tmp_path, steps=2)
    shards = [str(p) for p in sorted(d.glob("tokens-*.parquet"))]
    py = [sys.executable, "-m", "dplm2.cli", "lm"]

    def run(*a):
        return subprocess.run(py + list(a), capture_output=True, text=True, timeout=300)

    r = run("warm-start", "--out", str(d / "cli_init"), "--params", json.dumps(params))
    assert r.returncode == 0, r.stderr
    r = run("train", "--init", str(d / "cli_init"), "--shards", *shards, "--out", str(d / "lm"),
            "--model", str(d / "lm" / "model"), "--threads", "1", "--params", json.dumps(params))
    assert r.returncode == 0, r.stderr[-3000:]
    from transformers import EsmForMaskedLM

    from dplm2.lm.model import DPLM2LM

    assert EsmForMaskedLM.from_pretrained(d / "lm" / "model").config.vocab_size == 8229
    model = DPLM2LM.from_pretrained(d / "lm" / "model")
    assert not any("lora" in k for k in model.state_dict())
    assert pl.read_parquet(d / "lm" / "metrics.parquet")["step"].to_list() == [1, 2]
    # the run's TensorBoard dashboard: losses per modality and task, accuracies, optimiser,
    # speed and the per-task validation, every training step
    from dplm2.train.tracking import read_scalars

    ev = read_scalars(d / "lm" / "tensorboard")
    assert {"train/loss", "optim/lr", "optim/grad_norm", "speed/step_time_s",
            "speed/tokens_per_s", "val/joint_nll_full_struct", "val/joint_acc_full_aa",
            "val/inverse_folding_acc_full_aa", "val/folding_nll_full_struct"} <= set(ev), sorted(ev)
    assert [s for s, _ in ev["train/loss"]] == [1, 2]
    assert any(t.startswith("train/loss_") for t in ev) and any(t.startswith("accuracy/") for t in ev)
    assert any(t.startswith("task/") and t.endswith(("/loss_struct", "/loss_aa")) for t in ev)
    bad = dict(params, lora={"rnak": 3})
    r = run("warm-start", "--out", str(d / "x"), "--params", json.dumps(bad))
    assert r.returncode == 2 and "rnak" in r.stderr


def test_state_of_another_run_is_not_resumed(tmp_path, caplog):
    from dplm2.lm.train import guard_state

    state = tmp_path / "state"
    guard_state(state, "aaa")
    (state / "step-00000003").mkdir()
    guard_state(state, "aaa")
    assert (state / "step-00000003").is_dir()  # same run: kept for resume
    with caplog.at_level("WARNING"):
        guard_state(state, "bbb")
    assert not (state / "step-00000003").exists() and "different run" in caplog.text


def test_cli_sample_folding(tmp_path):
    from dplm2.cli import main
    from dplm2.lm.warm_start import warm_start

    ps = demo_proteins(2, length=20)
    shard = write_token_shard(ps, tmp_path / "tokens-00000-of-00001.parquet")
    init = warm_start(InitConfig.from_dict({"model": TINY}), tmp_path / "m")
    out = tmp_path / "fold.parquet"
    rc = main(["lm", "sample", "--model", str(init), "--shards", str(shard), "--task", "folding",
               "--out", str(out), "--sampler", json.dumps({"max_iter": 4})])
    assert rc == 0
    df = pl.read_parquet(out)
    assert df["sequence"].to_list() == [p.sequence for p in sorted(ps, key=lambda p: p.id)]  # kept
    assert all(len(t) == 20 and min(t) >= 0 for t in df["struct_tokens"].to_list())


def test_fingerprint_allows_extending_a_run_but_not_changing_it(tmp_path):
    """Raising max_steps (or checkpoint/log cadence) continues a run; a change of what is
    trained (learning rate, model, data) starts over."""
    from dplm2.lm.train import LMConfig, run_fingerprint

    shard = write_token_shard(demo_proteins(2, length=20), tmp_path / "tokens-00000-of-00001.parquet")
    base = {"train": {"max_steps": 10, "lr": 1e-3, "ckpt_every": 5}}
    fp = run_fingerprint(LMConfig.from_dict(base), tmp_path, [shard])
    longer = {"train": {"max_steps": 50, "lr": 1e-3, "ckpt_every": 25, "val_every": 7}}
    assert run_fingerprint(LMConfig.from_dict(longer), tmp_path, [shard]) == fp
    other = {"train": {"max_steps": 10, "lr": 2e-3, "ckpt_every": 5}}
    assert run_fingerprint(LMConfig.from_dict(other), tmp_path, [shard]) != fp


def test_task_losses_average_each_tasks_rows():
    from dplm2.lm.diffusion import TASKS
    from dplm2.lm.train import task_losses

    joint, folding = TASKS.index("joint"), TASKS.index("folding")
    sel = torch.tensor([[True, True, False], [False, True, False], [False, False, True]])
    wce = torch.tensor([1.0, 2.0, 3.0, 4.0])  # row-major order: rows 0, 0, 1, 2
    out = task_losses("aa", wce, sel, torch.tensor([joint, folding, joint]))
    assert out == {"task_loss_joint_aa": pytest.approx(7 / 3), "task_loss_folding_aa": 3.0}
    assert task_losses("aa", wce, sel, None) == {}
