"""The SLURM and local profiles as Snakemake reads them (YTE evaluated under a given
environment), and the cluster scripts' guards. Fast: no scheduler needed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.cluster.jobs import (
    LOCAL_PROFILE,
    REPO,
    SLURM_PROFILE,
    load_profile,
    pairs,
    profile_table,
    run_snakemake,
)

GPU_RULES = [
    "train_tokenizer", "train_lm", "generate", "generate_sequences", "evaluate_refold", "embed",
]
SITE = {"DPLM2_SLURM_ACCOUNT": "proj42", "DPLM2_SLURM_PARTITION": "cpu",
        "DPLM2_SLURM_GPU_PARTITION": "a100q", "DPLM2_GPU_MODEL": "a100", "DPLM2_GPUS": "4",
        "DPLM2_GPU_SLURM_EXTRA": "--qos=gpu"}


def _eval(expr: str, attempt: int) -> int:
    """A resource expression of the profile, evaluated as Snakemake does for one attempt."""
    return int(eval(str(expr), {"__builtins__": {"min": min, "max": max}}, {"attempt": attempt}))


@pytest.fixture(scope="module")
def workflow_rules() -> set[str]:
    out = run_snakemake(["--list-rules", "--configfile", str(REPO / "config.yaml")], timeout=300)
    assert out.returncode == 0, out.stderr
    # one rule a line, "name" or "name (docstring)"; a long docstring continues indented
    return {m[1] for line in out.stdout.splitlines() if (m := re.match(r"(\w+)( \(|$)", line))}


@pytest.mark.parametrize("env", [{}, SITE, {"DPLM2_GPUS": "0"}], ids=["default", "site", "cpu"])
def test_profile_names_only_rules_of_the_workflow(env, workflow_rules):
    """A misspelt rule name in set-resources is silently ignored by Snakemake: catch it here."""
    for profile in (SLURM_PROFILE, LOCAL_PROFILE):
        p = load_profile(profile, env)
        named = set(profile_table(p.get("set-resources", [])))
        named |= set(pairs(p.get("set-threads", [])))
        named |= set(pairs(p.get("groups", [])))
        assert named <= workflow_rules, f"{profile.name}: unknown rules {named - workflow_rules}"


def test_slurm_profile_defaults_are_a_paper_scale_gpu_site():
    p = load_profile(SLURM_PROFILE, {})
    assert p["executor"] == "slurm"
    assert p["slurm-status-command"] == "sacct"
    assert str(p["slurm-no-account"]) == "True"
    assert int(p["retries"]) >= 1
    res = profile_table(p["set-resources"])
    threads = pairs(p["set-threads"])
    assert res["train_lm"]["gpu"] == "8" and res["train_lm"]["nproc"] == "8"
    assert res["train_lm"]["slurm_partition"] == "gpu"
    assert res["train_tokenizer"]["gpu"] == "1"
    for rule in GPU_RULES:
        assert res[rule]["slurm_partition"] == "gpu", rule
    for rule in ("tokenize", "process_parse", "download_fetch"):
        assert "gpu" not in res[rule] and "slurm_partition" not in res[rule], rule
    assert int(threads["train_lm"]) == 32 and int(threads["tokenize"]) == 2
    assert pairs(p["groups"])["tokenize"] == "tokenize"
    assert int(pairs(p["group-components"])["tokenize"]) > 1


def test_site_settings_come_from_the_environment():
    p = load_profile(SLURM_PROFILE, SITE)
    assert "slurm-no-account" not in p
    default = pairs(p["default-resources"])
    assert default["slurm_account"] == "proj42" and default["slurm_partition"] == "cpu"
    res = profile_table(p["set-resources"])
    assert res["train_lm"]["gpu"] == "4" and res["train_lm"]["nproc"] == "4"
    assert res["train_lm"]["gpu_model"] == "a100"
    assert res["train_lm"]["slurm_partition"] == "a100q"
    assert res["train_lm"]["slurm_extra"] == "--qos=gpu"
    assert res["evaluate_refold"]["gpu"] == "1"


def test_without_gpus_everything_goes_to_the_cpu_partition_and_ddp_uses_two_processes():
    p = load_profile(SLURM_PROFILE, {"DPLM2_GPUS": "0", "DPLM2_SLURM_PARTITION": "cpu"})
    res = profile_table(p["set-resources"])
    for rule, values in res.items():
        assert "gpu" not in values and "gpu_model" not in values, rule
        assert values.get("slurm_partition", "cpu") == "cpu", rule
    assert res["train_lm"]["nproc"] == "2"


def test_memory_and_time_grow_with_the_attempt_up_to_the_node():
    env = {"DPLM2_MAX_MEM_MB": "100000", "DPLM2_MAX_RUNTIME": "600"}
    p = load_profile(SLURM_PROFILE, env)
    exprs = [("default", pairs(p["default-resources"]))]
    exprs += list(profile_table(p["set-resources"]).items())
    grown = 0
    for rule, values in exprs:
        mem = [_eval(values["mem_mb"], a) for a in (1, 2, 3)] if "mem_mb" in values else []
        if mem:
            assert mem == sorted(mem) and mem[-1] <= 100000, (rule, mem)
            grown += mem[1] > mem[0]
        if "runtime" in values:
            assert all(_eval(values["runtime"], a) <= 600 for a in (1, 2, 3)), rule
    assert grown >= 10
    assert _eval(pairs(p["default-resources"])["mem_mb"], 2) == 2 * _eval(
        pairs(p["default-resources"])["mem_mb"], 1)


def test_threads_are_capped_by_the_largest_node():
    p = load_profile(SLURM_PROFILE, {"DPLM2_MAX_CPUS": "2"})
    assert all(int(v) <= 2 for v in pairs(p["set-threads"]).values())
    assert int(p["cores"]) == 2  # group jobs are sized to one node too


def test_slurm_extra_never_repeats_what_resources_set():
    res = profile_table(load_profile(SLURM_PROFILE, SITE)["set-resources"])
    banned = re.compile(r"(^|\s)(-p|-A|-c|-t|-G|--partition|--account|--cpus-per-task|--mem|"
                        r"--time|--gpus|--gres)\b")
    for rule, values in res.items():
        assert not banned.search(values.get("slurm_extra", "")), rule


@pytest.mark.parametrize(
    ("env", "gpus"),
    [({"DPLM2_GPUS": "2"}, 2), ({"CUDA_VISIBLE_DEVICES": "0,1,2"}, 3),
     ({"CUDA_VISIBLE_DEVICES": ""}, 0), ({"DPLM2_GPUS": "0"}, 0)],
)
def test_local_profile_counts_gpus_and_limits_them_globally(env, gpus, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    p = load_profile(LOCAL_PROFILE, env)
    assert pairs(p["resources"])["gpu"] == str(gpus)
    res = profile_table(p["set-resources"])
    assert res["train_lm"]["gpu"] == str(gpus)
    assert res["train_lm"]["nproc"] == str(max(gpus, 1))
    assert ("train_tokenizer" in res) == (gpus > 0)
    assert "executor" not in p  # the local executor


@pytest.mark.parametrize("script", ["slurm_up.sh", "slurm_down.sh"])
def test_cluster_scripts_parse(script):
    r = subprocess.run(["bash", "-n", str(REPO / "workflow" / "scripts" / script)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None,
                    reason="needs root to run the script as an unprivileged user")
def test_slurm_up_refuses_to_run_unprivileged():
    script = REPO / "workflow" / "scripts" / "slurm_up.sh"
    r = subprocess.run(["runuser", "-u", "nobody", "--", "bash", str(script)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "must run as root" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the teardown script needs root")
def test_slurm_down_stops_only_what_slurm_up_recorded(tmp_path):
    r = subprocess.run(["bash", str(REPO / "workflow" / "scripts" / "slurm_down.sh")],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "SLURM_UP_STATE": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "nothing recorded" in r.stderr
