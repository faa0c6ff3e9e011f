"""`released.lm` naming a DPLM-2 Bit checkpoint (a tiny one in the released layout of
``airkingbd/dplm2_bit_650m``): the DAG imports it instead of training, every LM consumer reads
the imported folder, the source folder's files are the import rule's inputs, and the import
command writes the files the rule declares (dry runs; the import itself runs in-process)."""

from __future__ import annotations

import re

from tests.cluster.jobs import generated_tasks, job_stats, parse_jobs
from tests.workflow.test_released import _config, _dry_run

TASKS = ["cogen", "folding", "inverse_folding"]  # what a bit model serves (README)


def test_released_bit_lm_dry_run(tmp_path):
    from dplm2.cli import main as dplm2_main
    from tests.lm.helpers import write_official_bit

    src = tmp_path / "dplm2_bit_tiny"
    write_official_bit(src)
    res = tmp_path / "results"
    cfg = _config(tmp_path, {"lm": str(src), "tokenizer": None},
                  generate={"tasks": TASKS}, evaluate={"tasks": TASKS})
    text = _dry_run(cfg, extra=("-p",))
    jobs = job_stats(text)
    assert jobs.get("import_released_lm") == 1, jobs
    assert not {"train_lm", "warm_start"} & set(jobs), jobs
    assert generated_tasks(parse_jobs(text)) == sorted(TASKS) and "embed" in jobs, jobs
    released_lm = str(res / "released" / "lm")
    shells = [line[len("Shell command: "):] for line in text.splitlines()
              if line.startswith("Shell command: dplm2 ")]
    (imp,) = [c for c in shells if c.startswith("dplm2 lm import-official")]
    assert re.search(rf"--source '?{re.escape(str(src))}'?", imp), imp
    readers = [c for c in shells if re.search(r"--lm ", c)]
    assert readers
    for cmd in readers:
        for m in re.finditer(r"--lm '?([^ ']+)'?", cmd):
            assert m.group(1) == released_lm, cmd

    # the import command on this folder writes every file the rule declares
    out = tmp_path / "imported"
    assert dplm2_main(["lm", "import-official", "--source", str(src), "--out", str(out)]) == 0
    declared = re.findall(rf"{re.escape(released_lm)}/([\w.]+)", text)
    assert {"config.json", "model.safetensors", "official.json"} <= set(declared)
    for name in set(declared):
        assert (out / name).is_file(), name

    # the source's files are the import rule's inputs (replacing one reruns the import)
    (job,) = [b for b in text.split("\n\n") if "rule import_released_lm:" in b]
    (inputs,) = [ln for ln in job.splitlines() if ln.strip().startswith("input:")]
    assert str(src / "model.safetensors") in inputs and str(src / "config.json") in inputs, job


def test_bit_lm_skips_the_tasks_it_refuses_while_planning(tmp_path):
    """Default generate/evaluate tasks with a bit LM (released folder, or lm.objective: bit
    trained here): sequence, backbone and ss_cogen are left out with a warning naming why;
    asking for one of them explicitly stops the planning with a clear error."""
    from tests.lm.helpers import write_official_bit
    from tests.workflow.test_released import run_snakemake

    src = tmp_path / "dplm2_bit_tiny"
    write_official_bit(src)
    every = ["cogen", "sequence", "backbone", "folding", "inverse_folding", "ss_cogen"]
    for released, lm in (({"lm": str(src), "tokenizer": None}, {}),
                         (None, {"objective": "bit"})):
        cfg = _config(tmp_path, released, generate={"tasks": every},
                      evaluate={"tasks": ["cogen", "ss_cogen"]}, lm=lm)
        text = _dry_run(cfg)
        assert generated_tasks(parse_jobs(text)) == ["cogen", "folding", "inverse_folding"]
        assert "skipping sequence" in text and "reads both halves" in text, text[-2000:]
    target = str(tmp_path / "results" / "generate" / "backbone" / "samples.parquet")
    out = run_snakemake("-n", "--configfile", str(cfg), "--", target)
    assert out.returncode != 0
    assert "DPLM-2 Bit model, which cannot run backbone" in out.stdout + out.stderr
    # (an index LM plans every task: the demo's own dry runs, tests/workflow/test_snakemake.py)
