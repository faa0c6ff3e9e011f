"""A slice of the demo workflow (download -> process -> tokenizer training -> tokenize) run on a
real SLURM cluster through `--profile workflow/profiles/slurm`, checked from SLURM's side.

The cluster is the single-node one of workflow/scripts/slurm_up.sh (`make test-slurm`). What
SLURM itself reports (`scontrol show job`, the job logs) must show that every job of the slice
ran as a SLURM job with the CPUs, memory and time limit Snakemake resolved for it from the rule
and the profile, that the grouped shard jobs ran bundled, and that a job that fails once (the
real `download_pdb_ids` rule, made to fail while its allocation is below the first attempt's
memory, as an out-of-memory kill would) is resubmitted with more memory and the run completes.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from tests.cluster.jobs import (
    REPO,
    SLURM_PROFILE,
    SNAKEMAKE,
    job_stats,
    parse_jobs,
    run_snakemake,
    slurm_jobs,
    slurm_mem_mb,
    slurm_minutes,
)

pytestmark = pytest.mark.slurm

SHIM = Path(__file__).parent / "shim"
SLICE = Path(__file__).parent / "slice.yaml"
FAILING_RULE = "download_pdb_ids"
FAILING_ARGS = "download ids --source pdb"


def _targets() -> list[str]:
    demo = yaml.safe_load((REPO / "config.yaml").read_text())
    n = int((demo.get("process") or {}).get("n_shards", 2))
    return [
        "results/chains/metadata.parquet",
        "results/tokenizer/model.safetensors",
        *[f"results/tokens/tokens-{i:05d}-of-{n:05d}.parquet" for i in range(n)],
    ]


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    """Plan the slice (dry run), run it through SLURM, return what both sides report."""
    workdir = tmp_path_factory.mktemp("slurm_run")
    env = {
        "PATH": f"{SHIM}{os.pathsep}{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}",
        "DPLM2_TEST_REAL": str(shutil.which("dplm2", path=str(SNAKEMAKE.parent))),
        # the profile's site settings for this one-node, GPU-less cluster
        "DPLM2_GPUS": "0",
        "DPLM2_MAX_CPUS": str(slurm_cluster.cpus),
        "DPLM2_MAX_MEM_MB": str(slurm_cluster.mem_mb),
    }
    args = [
        *_targets(),
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--profile", str(SLURM_PROFILE),
        # no accounting database on the test cluster: poll squeue, not sacct
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-keep-successful-logs",
        "--configfile", str(REPO / "config.yaml"), str(SLICE),
    ]
    plan = run_snakemake([*args, "--dry-run"], env=env, timeout=300)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    planned = parse_jobs(plan.stdout)
    first = [j for j in planned if j.rule == FAILING_RULE]
    assert len(first) == 1, f"the slice has no single {FAILING_RULE} job: {plan.stdout[-3000:]}"
    env["DPLM2_TEST_FAIL_ARGS"] = FAILING_ARGS
    env["DPLM2_TEST_FAIL_BELOW_MB"] = str(first[0].res_int("mem_mb") + 1)

    t0 = time.monotonic()
    run = run_snakemake(args, env=env, timeout=1500)
    seconds = time.monotonic() - t0
    log = run.stdout + run.stderr
    (workdir / "snakemake.out").write_text(log)
    assert run.returncode == 0, f"the SLURM run failed after {seconds:.0f} s:\n{log[-6000:]}"

    ran = []
    for sj in slurm_jobs(workdir):
        stdout = Path(sj["StdOut"])
        inner = parse_jobs(stdout.read_text()) if stdout.exists() else []
        # the job log repeats a job's block for every attempt inside the allocation
        unique = {j.key: j for j in inner}
        ran.append((sj, list(unique.values())))
    return {"planned": planned, "stats": job_stats(plan.stdout), "ran": ran,
            "workdir": workdir, "log": log, "seconds": seconds, "cluster": slurm_cluster}


def _completed(ran):
    return [(sj, jobs) for sj, jobs in ran if sj["JobState"] == "COMPLETED"]


def test_every_planned_job_ran_as_one_completed_slurm_job(slurm_run):
    planned = {j.key for j in slurm_run["planned"]}
    assert len(planned) == slurm_run["stats"]["total"]
    seen: dict = {}
    for sj, jobs in _completed(slurm_run["ran"]):
        for j in jobs:
            assert j.key not in seen, f"{j.key} ran in SLURM jobs {seen[j.key]} and {sj['JobId']}"
            seen[j.key] = sj["JobId"]
    assert set(seen) == planned, (
        f"planned but not run under SLURM: {planned - set(seen)}; "
        f"run but not planned: {set(seen) - planned}"
    )
    cluster = slurm_run["cluster"]
    for sj, _ in slurm_run["ran"]:
        assert sj["Partition"] == cluster.partition
        assert sj["BatchHost"] == cluster.node
        assert sj["BatchFlag"] == "1"  # sbatch, not a local run


def test_single_jobs_got_the_resources_snakemake_resolved(slurm_run):
    """threads -> --cpus-per-task, mem_mb -> --mem, runtime -> -t, as SLURM allocated them."""
    planned = {j.key: j for j in slurm_run["planned"]}
    checked = 0
    for sj, jobs in _completed(slurm_run["ran"]):
        if len(jobs) != 1 or jobs[0].rule == FAILING_RULE:
            continue
        want = planned[jobs[0].key]
        assert int(sj["NumCPUs"]) == want.threads, (want.rule, sj["NumCPUs"])
        assert slurm_mem_mb(sj["MinMemoryNode"]) == want.res_int("mem_mb"), want.rule
        assert slurm_minutes(sj["TimeLimit"]) == want.res_int("runtime"), want.rule
        checked += 1
    assert checked >= 5


def test_training_job_has_the_profiles_resources(slurm_run):
    """The profile asks 8 CPUs and 64 GB for train_tokenizer; on this node both are capped to
    the node (DPLM2_MAX_CPUS / DPLM2_MAX_MEM_MB)."""
    cluster = slurm_run["cluster"]
    jobs = [sj for sj, js in _completed(slurm_run["ran"]) if [j.rule for j in js] == ["train_tokenizer"]]
    assert len(jobs) == 1
    sj = jobs[0]
    assert int(sj["NumCPUs"]) == min(8, cluster.cpus)
    assert slurm_mem_mb(sj["MinMemoryNode"]) == min(64000, cluster.mem_mb)
    assert sj["Comment"].strip() == "rule_train_tokenizer"
    weights = slurm_run["workdir"] / "results" / "tokenizer" / "model.safetensors"
    assert weights.stat().st_size > 0


def test_shard_jobs_ran_grouped(slurm_run):
    """download, parse and tokenize shards run bundled: one SLURM job holds all of a group's
    shards here (fewer than group-components), sized to fit one node."""
    cluster = slurm_run["cluster"]
    planned = slurm_run["planned"]
    for group in ("download", "parse", "tokenize"):
        members = {j.key for j in planned if j.group == group}
        assert len(members) >= 2, f"no grouped {group} jobs planned"
        holders = [(sj, js) for sj, js in _completed(slurm_run["ran"])
                   if {j.key for j in js} & members]
        assert len(holders) == 1, f"{group} shards spread over {len(holders)} SLURM jobs"
        sj, js = holders[0]
        assert {j.key for j in js} == members
        assert int(sj["NumCPUs"]) <= cluster.cpus
        assert slurm_mem_mb(sj["MinMemoryNode"]) <= cluster.mem_mb
        assert "group" in sj["StdOut"]


def test_failed_job_is_resubmitted_with_more_memory_and_run_completes(slurm_run):
    tries = [(sj, js) for sj, js in slurm_run["ran"] if [j.rule for j in js] == [FAILING_RULE]
             or sj["Comment"].strip() == f"rule_{FAILING_RULE}"]
    states = [sj["JobState"] for sj, _ in tries]
    assert states[0] == "FAILED" and states[-1] == "COMPLETED", states
    assert len(tries) == 2, states
    first, second = (slurm_mem_mb(sj["MinMemoryNode"]) for sj, _ in tries)
    planned = next(j for j in slurm_run["planned"] if j.rule == FAILING_RULE)
    assert first == planned.res_int("mem_mb")
    assert second > first
    log = slurm_run["workdir"] / planned.log
    assert "running" in log.read_text()  # the shim's line of the attempt that ran
    ids = slurm_run["workdir"] / "results" / "download" / "pdb_ids.txt"
    assert ids.read_text().strip()


def test_every_job_wrote_its_log_and_benchmark(slurm_run):
    workdir = slurm_run["workdir"]
    for j in slurm_run["planned"]:
        assert j.log and (workdir / j.log).exists(), f"{j.rule}: no log {j.log}"
        assert j.benchmark and (workdir / j.benchmark).exists(), f"{j.rule}: no benchmark"
