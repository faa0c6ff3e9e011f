"""Helpers of the cluster tests: run Snakemake, read the jobs it plans or ran from its own
output, read the jobs SLURM ran from `scontrol`, and load a profile the way Snakemake does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SLURM_PROFILE = REPO / "workflow" / "profiles" / "slurm"
LOCAL_PROFILE = REPO / "workflow" / "profiles" / "local"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


@dataclass
class Job:
    """One job as Snakemake prints it (dry-run, or the log of a SLURM job)."""

    rule: str
    wildcards: dict[str, str] = field(default_factory=dict)
    threads: int = 1
    resources: dict[str, str] = field(default_factory=dict)
    log: str | None = None
    benchmark: str | None = None
    group: str | None = None
    shell: str | None = None

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.rule, tuple(sorted(self.wildcards.items()))

    def res_int(self, name: str) -> int:
        return int(self.resources[name])


_RULE = re.compile(r"^(?P<indent>\s*)(?:local)?(?:rule|checkpoint) (?P<name>\w+):\s*$")
_GROUP = re.compile(r"Group job (?P<name>\S+) \(jobs in lexicogr\. order\):")
_FIELD = re.compile(r"^\s+(?P<key>[a-z_]+): (?P<value>.*)$")
# "a=1, b=x, c=--qos=gpu" -> pairs; a value runs up to the next ", name=" or the end
_PAIRS = re.compile(r"(\w+)=(.*?)(?=, \w+=|$)")


def parse_jobs(text: str) -> list[Job]:
    """The jobs in Snakemake's printed job blocks, with their group, threads and resources.

    Works on `snakemake -n` output and on the log of a SLURM job (the snakemake run inside the
    allocation prints the same blocks). Jobs of a group job are the indented blocks after a
    ``Group job NAME`` line.
    """
    jobs: list[Job] = []
    current: Job | None = None
    indent = ""
    group: str | None = None
    for line in text.splitlines():
        if m := _GROUP.search(line):
            group, current = m["name"], None
            continue
        if m := _RULE.match(line):
            if not m["indent"]:
                group = None
            current = Job(rule=m["name"], group=group)
            indent = m["indent"]
            jobs.append(current)
            continue
        if current is None:
            continue
        if line.startswith("Shell command: "):
            current.shell = line[len("Shell command: ") :]
            current = None
            continue
        m = _FIELD.match(line)
        if m is None or len(line) - len(line.lstrip()) <= len(indent):
            if line.strip() and not line.startswith(indent + " "):
                current = None
            continue
        key, value = m["key"], m["value"]
        if key == "wildcards":
            current.wildcards = dict(_PAIRS.findall(value))
        elif key == "threads":
            current.threads = int(value)
        elif key == "resources":
            current.resources = dict(_PAIRS.findall(value))
        elif key == "log":
            current.log = value
        elif key == "benchmark":
            current.benchmark = value
    return jobs


def generated_tasks(jobs: list[Job]) -> list[str]:
    """The tasks of the planned generation jobs (the generate rule over {task}, and its
    generate_sequences variant for the tasks without decoded structures), sorted."""
    return sorted(j.wildcards["task"] for j in jobs if j.rule in ("generate", "generate_sequences"))


def job_stats(text: str) -> dict[str, int]:
    """The "Job stats" table of a Snakemake run: rule -> number of jobs (with 'total')."""
    stats: dict[str, int] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith("Job stats:"):
            break
    else:
        raise AssertionError("no 'Job stats' table in the Snakemake output")
    next(lines), next(lines)  # header and rule line
    for line in lines:
        parts = line.split()
        if len(parts) != 2:
            break
        stats[parts[0]] = int(parts[1])
    return stats


def run_snakemake(
    args: list[str], env: dict[str, str] | None = None, cwd: Path = REPO, timeout: int = 600
) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env["PATH"] = f"{SNAKEMAKE.parent}{os.pathsep}{full_env.get('PATH', '')}"
    full_env.update(env or {})
    return subprocess.run(
        [str(SNAKEMAKE), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def load_profile(profile: Path, env: dict[str, str]) -> dict[str, object]:
    """The profile's command-line arguments as Snakemake reads them (YTE evaluated under
    ``env``); lists of ``NAME=VALUE`` strings for resources, threads and groups."""
    from snakemake.profiles import ProfileConfigFileParser

    saved = dict(os.environ)
    try:
        os.environ.update(env)
        for k in [k for k in os.environ if k.startswith("DPLM2_") and k not in env]:
            del os.environ[k]
        with open(profile / "config.yaml") as fh:
            return dict(ProfileConfigFileParser().parse(fh))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def profile_table(entries: list[str]) -> dict[str, dict[str, str]]:
    """``["rule:name=value", ...]`` -> {rule: {name: value}}."""
    table: dict[str, dict[str, str]] = {}
    for entry in entries:
        rule, assign = entry.split(":", 1)
        name, value = assign.split("=", 1)
        table.setdefault(rule, {})[name] = value
    return table


def pairs(entries: list[str]) -> dict[str, str]:
    """``["name=value", ...]`` -> {name: value}."""
    return dict(e.split("=", 1) for e in entries)


# --- SLURM -------------------------------------------------------------------------------------
_SCONTROL_PAIR = re.compile(r"(\S+?)=(.*?)(?= \S+?=|$)")


def slurm_jobs(workdir: Path) -> list[dict[str, str]]:
    """Every job slurmctld still knows (finished ones for MinJobAge) whose working directory is
    ``workdir``, as `scontrol show job -o` describes it."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True
    ).stdout
    jobs = []
    for line in out.splitlines():
        fields = dict(_SCONTROL_PAIR.findall(line.strip()))
        if fields.get("WorkDir") == str(workdir):
            jobs.append(fields)
    return sorted(jobs, key=lambda j: int(j["JobId"]))


def slurm_minutes(limit: str) -> int:
    """A SLURM time limit ("[D-]HH:MM:SS" or "MM:SS") in minutes."""
    days = 0
    if "-" in limit:
        d, limit = limit.split("-", 1)
        days = int(d)
    parts = [int(p) for p in limit.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    h, m, s = parts
    return days * 1440 + h * 60 + m + (1 if s else 0)


def slurm_mem_mb(value: str) -> int:
    """MinMemoryNode ("2000M", "4G") in MB."""
    m = re.fullmatch(r"(\d+)([MGT]?)", value)
    assert m, f"unexpected memory value {value!r}"
    return int(m[1]) * {"": 1, "M": 1, "G": 1024, "T": 1024**2}[m[2]]
