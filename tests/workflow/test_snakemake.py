"""The workflow as users run it: dry-run, lint, config validation errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def run_snakemake(*args: str, cwd: Path = REPO, timeout: int = 120) -> subprocess.CompletedProcess:
    exe = str(SNAKEMAKE) if SNAKEMAKE.exists() else shutil.which("snakemake")
    assert exe, "snakemake not installed"
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}:{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def test_dry_run_default_config(tmp_path):
    out = run_snakemake("-n", "--config", f"results={tmp_path}/results")
    assert out.returncode == 0, out.stderr[-3000:]
    from tests.cluster.jobs import generated_tasks, parse_jobs

    # the demo's LM (index) plans every listed task, each once
    tasks = yaml.safe_load((REPO / "config.yaml").read_text())["generate"]["tasks"]
    assert generated_tasks(parse_jobs(out.stdout)) == sorted(tasks)


def test_lint_is_clean():
    out = run_snakemake("--lint")
    text = out.stdout + out.stderr
    assert "Congratulations" in text or out.returncode == 0 and "Lints for" not in text, text[-4000:]


def _overlay(tmp_path: Path, section: str, key: str, value) -> Path:
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg.setdefault(section, {})[key] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_unknown_key_is_rejected_naming_it(tmp_path):
    bad = _overlay(tmp_path, "lm", "learnin_rate", 0.1)
    out = run_snakemake("-n", "--configfile", str(bad))
    assert out.returncode != 0
    assert "learnin_rate" in out.stdout + out.stderr


def test_wrong_type_is_rejected_naming_the_key(tmp_path):
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["results"] = 42
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    out = run_snakemake("-n", "--configfile", str(bad))
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "results" in text and "string" in text


def test_local_source_joins_the_process_stage(tmp_path):
    """A `local` section adds the local_manifest job, whose inputs are the files found, and
    every parse job reads its manifest (the demo config has no such job: the other dry runs)."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["results"] = str(tmp_path / "results")
    cfg["local"] = {"lab": {"paths": ["resources/chain_cases", "resources/mirror/pdb/pub/pdb/data/"
                                      "structures/divided/mmCIF/kc/*.cif.gz"], "plddt": False}}
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(cfg))
    target = str(tmp_path / "results" / "chains" / "metadata.parquet")
    out = run_snakemake("-n", "-p", "--configfile", str(path), "--", target)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "rule local_manifest:" in text and "dplm2 process local-manifest" in text
    assert "chain_cases/1pfe.cif.gz" in text and "kc/3kcs.cif.gz" in text  # the job's inputs
    assert text.count("--local-manifest") == 2  # both parse shards
    # the schema names a bad label (checked here without Snakemake's start-up time)
    from dplm2.config import ConfigError, validate

    with pytest.raises(ConfigError, match="local: 'Lab' does not match"):
        validate({"Lab": {"paths": ["x"]}}, "local")
    with pytest.raises(ConfigError, match="local.lab: 'paths' is a required property"):
        validate({"lab": {"plddt": True}}, "local")


def test_yaml_syntax_error_in_config_names_file_and_line(tmp_path):
    (tmp_path / "config.yaml").write_text("lm:\n  train:\n    max_steps: [1, 2\n  foo: bar\n")
    out = run_snakemake("-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path))
    assert out.returncode != 0
    assert "config.yaml:4:6: not valid YAML" in out.stdout + out.stderr


def test_every_planned_command_is_accepted_by_the_cli(tmp_path):
    """Each `dplm2 ...` shell command the rules build (every generation task and metric planned)
    parses with the CLI's own parser: a rule naming a subcommand or flag the CLI lacks fails here,
    not hours into a run."""
    import shlex

    from dplm2.cli import build_parser

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["results"] = str(tmp_path / "results")
    cfg["generate"]["tasks"] = ["cogen", "sequence", "backbone", "folding", "inverse_folding",
                                "scaffold", "ss_cogen"]
    cfg["evaluate"]["tasks"] = ["cogen", "folding", "inverse_folding", "scaffold", "ss_cogen"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = run_snakemake("-n", "-p", "--configfile", str(path))
    assert out.returncode == 0, out.stderr[-3000:]
    commands = [line[len("Shell command: dplm2 "):] for line in out.stdout.splitlines()
                if line.startswith("Shell command: dplm2 ")]
    parser = build_parser()
    seen = set()
    for cmd in commands:
        argv = shlex.split(cmd.split(" > ")[0])
        try:
            parser.parse_args(argv)
        except SystemExit:
            raise AssertionError(f"the CLI rejects a planned command: dplm2 {cmd[:300]}") from None
        seen.add(tuple(argv[:2]))
    for want in [("generate", t) for t in ("cogen", "sequence", "backbone", "folding",
                                           "inverse-folding", "scaffold", "ss-cogen", "ss-table")] + \
                [("evaluate", m) for m in ("refold", "self-consistency", "fold-accuracy", "recovery",
                                           "diversity", "motif", "novelty-part", "novelty-merge",
                                           "summary")] + [("download", "fetch"), ("download", "gather")]:
        assert want in seen, want
