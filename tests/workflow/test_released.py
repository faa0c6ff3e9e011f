"""Config section `released`: released DPLM-2 checkpoints used by the Snakemake targets.

Dry runs check the DAG (import rules in, training rules out; both null = today's DAG) and that
every consumer reads the one folder common.smk picks; a slow test runs the import rules and
generation (and the dplm2 refolding and embeddings) on tiny checkpoints written in the released
layouts.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from tests.cluster.jobs import generated_tasks, job_stats, parse_jobs
from tests.workflow.test_snakemake import REPO, run_snakemake

LM_HUB = "airkingbd/dplm2_150m"
TOK_HUB = "airkingbd/struct_tokenizer"
IMPORTS = {"lm": "import_released_lm", "tokenizer": "import_released_tokenizer"}
TRAINING = {"lm": "train_lm", "tokenizer": "train_tokenizer"}


def _config(tmp_path: Path, released: dict | None, **sections) -> Path:
    """config.yaml with results under tmp_path, `released` set (None: the section left out)
    and the given sections' keys replaced."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["results"] = str(tmp_path / "results")
    cfg.pop("released", None)
    if released is not None:
        cfg["released"] = released
    for name, keys in sections.items():
        cfg.setdefault(name, {}).update(keys)
    path = tmp_path / f"config-{len(list(tmp_path.glob('config-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _dry_run(cfg: Path, *targets: str, extra: tuple[str, ...] = ()) -> str:
    out = run_snakemake("-n", *extra, "--configfile", str(cfg), "--", *targets)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout + out.stderr


COGEN = "generate/cogen/samples.parquet"


@pytest.mark.parametrize("which", [("lm",), ("tokenizer",), ("lm", "tokenizer")])
def test_released_model_replaces_its_training_in_the_dag(tmp_path, which):
    released = {"lm": LM_HUB if "lm" in which else None,
                "tokenizer": TOK_HUB if "tokenizer" in which else None}
    cfg = _config(tmp_path, released)
    jobs = job_stats(_dry_run(cfg, str(tmp_path / "results" / COGEN), extra=("--quiet", "rules")))
    assert jobs["generate"] == 1  # the target: cogen's samples
    for part in ("lm", "tokenizer"):
        if part in which:
            assert jobs.get(IMPORTS[part]) == 1 and TRAINING[part] not in jobs, jobs
        else:
            assert IMPORTS[part] not in jobs and jobs.get(TRAINING[part]) == 1, jobs
    if "lm" in which:
        assert "warm_start" not in jobs
    if which == ("lm", "tokenizer"):  # nothing but the two imports and the sampling
        assert set(jobs) == {"import_released_lm", "import_released_tokenizer", "generate", "total"}


def test_both_null_leave_the_dag_as_it_was(tmp_path):
    """Explicit nulls = no section = the DAG before `released` existed (no import rules)."""
    target = str(tmp_path / "results" / COGEN)
    nulls = job_stats(_dry_run(_config(tmp_path, {"lm": None, "tokenizer": None}), target,
                               extra=("--quiet", "rules")))
    absent = job_stats(_dry_run(_config(tmp_path, None), target, extra=("--quiet", "rules")))
    assert nulls == absent
    assert not set(IMPORTS.values()) & set(nulls)
    assert {"warm_start", "train_lm", "train_tokenizer", "tokenize"} <= set(nulls)


def test_every_consumer_reads_the_released_folders(tmp_path):
    """Default target, both released: no training rule (nor its loss plot) is planned, and the
    tokenize, generate, refold and embed commands all name results/released/{lm,tokenizer}."""
    res = tmp_path / "results"
    text = _dry_run(_config(tmp_path, {"lm": LM_HUB, "tokenizer": TOK_HUB}), extra=("-p",))
    jobs = job_stats(text)
    for rule in ("train_lm", "train_tokenizer", "warm_start", "report_training"):
        assert rule not in jobs, rule
    for rule in ("tokenize", "evaluate_refold", "embed", "generate"):
        assert rule in jobs, rule
    assert {"cogen", "folding"} <= set(generated_tasks(parse_jobs(text)))
    shells = [line[len("Shell command: "):] for line in text.splitlines()
              if line.startswith("Shell command: dplm2 ")]
    released_lm, released_tok = str(res / "released" / "lm"), str(res / "released" / "tokenizer")
    readers = {"tokenizer tokenize": 0, "generate": 0, "evaluate refold": 0, "embed": 0}
    for cmd in shells:
        for flag, folder in (("--lm", released_lm), ("--tokenizer", released_tok)):
            for m in re.finditer(rf"{flag} '?([^ ']+)'?", cmd):
                assert m.group(1) == folder, cmd  # no other model folder anywhere
        for reader in readers:
            if cmd.split()[1:1 + len(reader.split())] == reader.split():
                readers[reader] += 1
                assert f"--tokenizer {released_tok}" in cmd, cmd
                assert reader == "tokenizer tokenize" or f"--lm {released_lm}" in cmd, cmd
    assert all(readers.values()), readers
    assert f"--source {LM_HUB}" in text and f"--source {TOK_HUB}" in text


def test_released_section_is_validated(tmp_path):
    bad = _config(tmp_path, {"lm": LM_HUB, "tokeniser": TOK_HUB})
    out = run_snakemake("-n", "--configfile", str(bad))
    assert out.returncode != 0 and "tokeniser" in out.stdout + out.stderr
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    assert cfg["released"] == {"lm": None, "tokenizer": None}  # the shipped default
    assert "lm" not in cfg["embed"]  # embed.lm moved to released.lm


# --- a real run on tiny checkpoints in the released layouts -----------------------------------
STRUCTURES = ("1ycr_B.pdb.gz", "2nwd_X.pdb.gz")  # 13 and 130 residues
def _released_extra_missing() -> str | None:
    for mod in ("esm", "torch_geometric"):
        if importlib.util.find_spec(mod) is None:
            return f"the released tokenizer's encoder needs the optional package {mod!r}"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_released_extra_missing() is not None, reason=str(_released_extra_missing()))
@pytest.mark.parametrize("objective", ["index", "bit"])
def test_generate_evaluate_embed_with_released_checkpoints(tmp_path, objective):
    """The released DPLM-2 (index) or DPLM-2 Bit LM and the released tokenizer, for real:
    import, co-generation, dplm2 refolding + self-consistency, embeddings."""
    from tests.lm.helpers import official_names, write_official_bit
    from tests.lm.helpers import write_official as write_official_lm
    from tests.tokenizer.test_official import write_official as write_official_tokenizer

    lm_src, tok_src = tmp_path / f"dplm2_{objective}_tiny", tmp_path / "struct_tokenizer_tiny"
    if objective == "bit":
        write_official_bit(lm_src)
    else:
        write_official_lm(lm_src, official_names())
    write_official_tokenizer(tok_src)
    res = tmp_path / "results"
    cfg = _config(
        tmp_path, {"lm": str(lm_src), "tokenizer": str(tok_src)},
        generate={"tasks": ["cogen"], "batch_size": 2, "decode_batch_size": 2,
                  "cogen": {"lengths": [12], "samples_per_length": 2, "sampling": {"max_iter": 2}}},
        evaluate={"tasks": ["cogen"],
                  "folding": {"backend": "dplm2", "device": "cpu", "batch_size": 2,
                              "dplm2_max_iter": 2, "esmfold_model": "facebook/esmfold_v1"}},
        embed={"settings": {"mode": "both", "layers": [-1], "device": "cpu", "max_batch_size": 2},
               "sets": {"structures": {"source": "files",
                                  "paths": [str(REPO / "tests/data/eval" / f) for f in STRUCTURES]}}},
    )
    targets = [str(res / COGEN), str(res / "evaluate/cogen/self_consistency.parquet"),
               str(res / "embed/structures.parquet")]
    out = run_snakemake("--cores", "2", "--configfile", str(cfg), "--", *targets, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    jobs = job_stats(out.stdout + out.stderr)
    assert jobs["import_released_lm"] == 1 and jobs["import_released_tokenizer"] == 1
    assert not {"train_lm", "train_tokenizer", "warm_start", "tokenize"} & set(jobs), jobs
    for t in targets:
        assert Path(t).is_file(), t
    assert (res / "released" / "lm" / "official.json").is_file()
    assert (res / "released" / "tokenizer" / "config.json").is_file()

    import polars as pl

    samples = pl.read_parquet(res / COGEN)
    assert samples.height == 2 and (samples["length"] == 12).all()
    if objective == "bit":  # the bit decoding: the 20 standard residues only
        assert all(set(seq) <= set("ACDEFGHIKLMNPQRSTVWY") for seq in samples["sequence"])
        assert "bit" in (res / "released" / "lm" / "config.json").read_text()
    assert pl.read_parquet(res / "evaluate/cogen/self_consistency.parquet").height == 2
    emb = pl.read_parquet(res / "embed/structures.parquet")
    assert emb.height == len(STRUCTURES)  # tokenized by the released tokenizer's encoder

    # the local source folders are inputs of the import rules: replacing a file reruns the
    # import and what read it, nothing else
    assert "Nothing to be done" in _dry_run(cfg, *targets)
    # new content, not only a new mtime: Snakemake skips files under 1 MB whose checksum it
    # recorded and that did not change (the tiny bit checkpoint is one); the last byte is a
    # weight's, so the file stays a valid checkpoint
    weights = bytearray((lm_src / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    (lm_src / "model.safetensors").write_bytes(bytes(weights))
    rerun = job_stats(_dry_run(cfg, *targets, extra=("--quiet", "rules")))
    assert "import_released_lm" in rerun and "import_released_tokenizer" not in rerun, rerun
