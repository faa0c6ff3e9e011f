"""The paper-scale configs (650M = config/paper.yaml; 150M and 3B overlays beside it) dry-run
with the SLURM profile to the full DAG: one job per download / parse / tokenize shard, shards
bundled into group jobs, and the training and tokenize rules asking SLURM for what the profile
says (GPUs, partition, CPUs, memory, time; torchrun processes = GPUs)."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import yaml

from tests.cluster.jobs import (
    REPO,
    SLURM_PROFILE,
    Job,
    generated_tasks,
    job_stats,
    parse_jobs,
    run_snakemake,
)

PAPER = REPO / "config" / "paper.yaml"
OVERLAYS = sorted((REPO / "config").glob("paper-*.yaml"))
# the documented defaults of the profile's site settings (workflow/profiles/slurm/config.yaml)
SITE_DEFAULTS = {"DPLM2_GPUS": "8", "DPLM2_MAX_CPUS": "32", "DPLM2_MAX_MEM_MB": "256000",
                 "DPLM2_MAX_RUNTIME": "2880", "DPLM2_SLURM_GPU_PARTITION": "gpu",
                 "DPLM2_SLURM_PARTITION": "", "DPLM2_SLURM_ACCOUNT": "", "DPLM2_GPU_MODEL": "",
                 "DPLM2_GPU_SLURM_EXTRA": ""}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _dry_run(configs, tmp_path, **env):
    args = ["--dry-run", "--profile", str(SLURM_PROFILE), "--configfile", *map(str, configs),
            "--config", f"results={tmp_path / 'results'}"]
    out = run_snakemake(args, env={**SITE_DEFAULTS, **env}, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    cfg = {}
    for c in configs:
        cfg = _merge(cfg, yaml.safe_load(c.read_text()) or {})
    return cfg, parse_jobs(out.stdout), job_stats(out.stdout), out.stdout


@pytest.fixture(scope="module", params=[[PAPER]] + [[PAPER, o] for o in OVERLAYS],
                ids=lambda cs: "+".join(c.stem for c in cs))
def paper(request, tmp_path_factory):
    return _dry_run(request.param, tmp_path_factory.mktemp("paper"))


def _only(jobs: list[Job], rule: str) -> Job:
    found = [j for j in jobs if j.rule == rule]
    assert len(found) == 1, f"{len(found)} {rule} jobs"
    return found[0]


def test_one_job_per_shard(paper):
    cfg, jobs, stats, _ = paper
    dl, proc = cfg["download"], cfg.get("process", {})
    n_pdb = dl["pdb"]["shards"] if dl["pdb"].get("enabled", True) else 0
    n_afdb = dl["afdb"]["shards"] if dl["afdb"].get("enabled", True) else 0
    n_parse = int(proc.get("parse_shards", 2))
    n_chain = int(proc.get("n_shards", 2))
    assert n_pdb > 1 and n_parse > 1 and n_chain > 1, "the paper run is sharded"

    def shards(rule, wildcard):
        values = [j.wildcards[wildcard] for j in jobs if j.rule == rule]
        assert len(values) == len(set(values)), f"{rule}: a shard twice"
        return set(values)

    fetch = [j for j in jobs if j.rule == "download_fetch"]
    for source, n in (("pdb", n_pdb), ("afdb", n_afdb)):
        items = [j.wildcards["scatteritem"] for j in fetch if j.wildcards["source"] == source]
        assert sorted(items) == sorted(f"{i}-of-{n}" for i in range(1, n + 1)), source
    assert shards("process_parse", "pshard") == {f"{i:05d}" for i in range(n_parse)}
    assert shards("tokenize", "tokshard") == {f"{i:05d}-of-{n_chain:05d}" for i in range(n_chain)}


def test_job_count(paper):
    cfg, jobs, stats, _ = paper
    dl, proc = cfg["download"], cfg.get("process", {})
    n_pdb = dl["pdb"]["shards"] if dl["pdb"].get("enabled", True) else 0
    n_afdb = dl["afdb"]["shards"] if dl["afdb"].get("enabled", True) else 0
    expected = {
        "download_pdb_ids": 1, "download_gather": 2,
        "download_fetch": n_pdb + n_afdb,
        "download_swissprot": int(dl["afdb"]["swissprot"]["enabled"]),
        "process_parse": int(proc.get("parse_shards", 2)), "process_gather": 1,
        "train_tokenizer": 1, "tokenize": int(proc.get("n_shards", 2)),
        "warm_start": 1, "train_lm": 1, "all": 1,
    }
    assert generated_tasks(jobs) == sorted(cfg["generate"]["tasks"])
    if dl["afdb"].get("enabled", True):
        expected["download_afdb_ids"] = 1
    tok = cfg["tokenizer"]
    # the paper's frozen ESM-IF1 encoder: its weights are downloaded once before training
    expected["fetch_tokenizer_encoder"] = int(
        tok["model"].get("encoder") == "esm_if1" and "://" in tok.get("encoder_checkpoint", ""))
    assert expected["fetch_tokenizer_encoder"] == 1  # config/paper.yaml
    # novelty scatters over the references: `parts` jobs per task that has novelty
    novelty_tasks = [t for t in cfg["evaluate"]["tasks"] if t in ("cogen", "ss_cogen")]
    expected["evaluate_novelty_part"] = len(novelty_tasks) * _novelty_parts(cfg)
    assert expected["evaluate_novelty_part"] > len(novelty_tasks)
    for rule, n in expected.items():
        assert stats.get(rule, 0) == n, f"{rule}: {stats.get(rule, 0)} jobs, expected {n}"
    # evaluation / report / embedding: per task or per input set, never per shard
    n_tasks = len(set(cfg["generate"]["tasks"]) | set(cfg["evaluate"]["tasks"]))
    per_step = Counter((j.rule, j.wildcards.get("metric")) for j in jobs if j.rule not in expected)
    for step, n in per_step.items():
        assert 1 <= n <= n_tasks, f"{step}: {n} jobs"
    assert sum(n for r, n in stats.items() if r != "total") == stats["total"] == len(jobs)
    shard_jobs = sum(expected[r] for r in ("download_fetch", "process_parse", "tokenize"))
    assert stats["total"] > shard_jobs > 100


def _novelty_parts(cfg: dict) -> int:
    return int(cfg["evaluate"].get("novelty", {}).get("parts")
               or cfg.get("process", {}).get("n_shards", 2))


def test_novelty_scatters_over_the_references(paper):
    """One evaluate_novelty_part job per range of the training chains, each on the profile's
    threads (`--threads` = its CPUs), all merged by one small novelty job of evaluate_metric."""
    cfg, jobs, _, _ = paper
    n = _novelty_parts(cfg)
    parts = [j for j in jobs if j.rule == "evaluate_novelty_part"]
    for task in {j.wildcards["task"] for j in parts}:
        mine = [j for j in parts if j.wildcards["task"] == task]
        assert sorted(j.wildcards["npart"] for j in mine) == [f"{k:05d}" for k in range(n)]
    for j in parts:
        assert j.threads == 8 and f"--threads {j.threads}" in j.shell
        assert f"--parts {n}" in j.shell and j.group is None
        assert j.res_int("mem_mb") == 8000
    merge = [j for j in jobs if j.rule == "evaluate_metric" and j.wildcards["metric"] == "novelty"]
    assert merge and all(j.threads == 1 and "novelty-merge" in j.shell for j in merge)


def test_shards_are_grouped_into_fewer_slurm_jobs(paper):
    cfg, jobs, _, out = paper
    n_chain = int(cfg.get("process", {}).get("n_shards", 2))
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    per_job = profile["group-components"]["tokenize"]
    assert out.count("Group job tokenize ") == math.ceil(n_chain / per_job)
    assert all(j.group == "tokenize" for j in jobs if j.rule == "tokenize")
    assert all(j.group == "download" for j in jobs if j.rule == "download_fetch")
    assert all(j.group == "parse" for j in jobs if j.rule == "process_parse")
    assert _only(jobs, "train_lm").group is None


def test_training_rules_ask_for_gpus_and_torchrun_matches(paper):
    _, jobs, _, _ = paper
    lm = _only(jobs, "train_lm")
    assert lm.res_int("gpu") == 8 and lm.res_int("nproc") == 8
    assert lm.resources["slurm_partition"] == "gpu"
    assert lm.threads == 32
    assert lm.res_int("mem_mb") == 256000 and lm.res_int("runtime") == 2880
    assert lm.shell.startswith("torchrun ") and "--standalone" in lm.shell
    assert f"--nproc_per_node={lm.res_int('gpu')}" in lm.shell

    tok = _only(jobs, "train_tokenizer")
    assert tok.res_int("gpu") == 1 and tok.resources["slurm_partition"] == "gpu"
    assert tok.threads == 8 and tok.res_int("mem_mb") == 64000


def test_tokenize_rule_resources(paper):
    _, jobs, _, _ = paper
    tokenize = [j for j in jobs if j.rule == "tokenize"]
    for j in tokenize:
        assert j.threads == 2
        assert j.res_int("mem_mb") == 8000 and j.res_int("runtime") == 120
        assert int(j.resources.get("gpu", 0)) == 0 and "slurm_partition" not in j.resources
        assert f"--threads {j.threads}" in j.shell


def test_every_job_has_log_and_benchmark(paper):
    _, jobs, _, _ = paper
    missing = sorted({j.rule for j in jobs if j.rule != "all" and not (j.log and j.benchmark)})
    assert not missing, f"rules without log: or benchmark: {missing}"


def test_torchrun_processes_follow_the_gpus_of_the_site(tmp_path):
    """A site with 4 GPUs per node: the training job asks 4 GPUs and runs 4 processes, with no
    edit of the config (the number comes from the rule's resources)."""
    _, jobs, _, _ = _dry_run([PAPER], tmp_path, DPLM2_GPUS="4")
    lm = _only(jobs, "train_lm")
    assert lm.res_int("gpu") == 4
    assert "--nproc_per_node=4" in lm.shell, lm.shell[:200]
