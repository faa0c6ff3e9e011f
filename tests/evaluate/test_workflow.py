"""The evaluate CLI and Snakemake rules end to end on real structures (tiny ESMFold backend)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from dplm2.cli import main as dplm2_main
from dplm2.io import read_parquet_checked, write_parquet

from .helpers import DATA, GLOBINS, TIMS, chain

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def _samples(root: Path, task: str, names, **extra) -> Path:
    folder = root / "generate" / task
    (folder / "pdb").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, name in enumerate(names):
        shutil.copy(DATA / f"{name}.pdb.gz", folder / "pdb" / f"{name}.pdb.gz")
        c = chain(name)
        rows.append({"sample_id": f"{task}_{i}", "task": task, "length": len(c),
                     "sequence": c.sequence, "struct_tokens": [0] * len(c),
                     "pdb_path": f"pdb/{name}.pdb.gz",
                     **{k: v[i] for k, v in extra.items()}})
    return write_parquet(pl.DataFrame(rows), folder / "samples.parquet", {"stage": "generate"})


def _chain_shards(root: Path) -> list[Path]:
    out = []
    for k, names in enumerate([("d1asha_", "1tim_A"), ("d1hlba_", "3lzm_A")]):
        rows = []
        for n in names:
            r = chain(n).to_row()
            rows.append({"id": r["id"], "source": "pdb", "split": "train", "sequence": r["sequence"],
                         "length": r["length"], "coords": r["coords"].tolist(),
                         "atom_mask": r["atom_mask"].tolist()})
        out.append(write_parquet(pl.DataFrame(rows), root / "chains" / f"chains-{k:05d}-of-00002.parquet",
                                 {"stage": "process"}))
    return out


def test_cli_inverse_folding_folding_and_scaffold(tmp_path, tiny_esmfold):
    root = tmp_path / "results"
    fold = json.dumps({"backend": "esmfold", "esmfold_model": str(tiny_esmfold), "device": "cpu"})
    ev = root / "evaluate"

    # inverse folding: the native sequence recovers 100 %; the refold is the tiny ESMFold's
    names = ["1hml_A", "d1mbaa_"]
    seqs = [chain(n).sequence for n in names]
    designed = [seqs[0], "A" * len(seqs[1])]
    s = _samples(root, "inverse_folding", names, target_id=names,
                 reference_path=[f"pdb/{n}.pdb.gz" for n in names])
    df = pl.read_parquet(s).with_columns(sequence=pl.Series(designed))
    write_parquet(df, s)
    assert dplm2_main(["evaluate", "recovery", "--task", "inverse_folding", "--samples", str(s),
                       "--out", str(ev / "if" / "recovery.parquet")]) == 0
    rec = pl.read_parquet(ev / "if" / "recovery.parquet")
    assert rec["aar"][0] == 1.0 and rec["aar"][1] == pytest.approx(seqs[1].count("A") / len(seqs[1]))
    assert rec["folding_backend"].to_list() == ["none", "none"]
    assert dplm2_main(["evaluate", "refold", "--task", "inverse_folding", "--samples", str(s),
                       "--out", str(ev / "if" / "refold.parquet"), "--pdb-dir", str(ev / "if" / "refold"),
                       "--params", fold]) == 0
    assert len(list((ev / "if" / "refold").glob("*.pdb"))) == 2
    assert dplm2_main(["evaluate", "self-consistency", "--task", "inverse_folding", "--samples", str(s),
                       "--refold", str(ev / "if" / "refold.parquet"),
                       "--out", str(ev / "if" / "self_consistency.parquet")]) == 0
    sc = pl.read_parquet(ev / "if" / "self_consistency.parquet")
    assert sc.height == 2 and sc["folding_backend"][0] == f"esmfold:{tiny_esmfold}"
    assert ((sc["sctm"] > 0) & (sc["sctm"] <= 1)).all() and (sc["plddt"] <= 100).all()

    # folding: a TIM "predicted" as the other species' TIM, a globin predicted exactly
    s = _samples(root, "folding", ["8tim_A", "d1mbaa_"], target_id=["1tim_A", "d1mbaa_"],
                 reference_path=["pdb/1tim_A.pdb.gz", "pdb/d1mbaa_.pdb.gz"])
    shutil.copy(DATA / "1tim_A.pdb.gz", s.parent / "pdb" / "1tim_A.pdb.gz")
    out = ev / "folding" / "fold_accuracy.parquet"
    assert dplm2_main(["evaluate", "fold-accuracy", "--task", "folding", "--samples", str(s),
                       "--out", str(out)]) == 0
    fa = pl.read_parquet(out)
    assert fa["tm"][1] == pytest.approx(1.0, abs=1e-6) and fa["tm_pass"].to_list() == [True, True]
    assert 0.8 < fa["tm"][0] < 1.0

    # scaffold: the 1ycr motif (positions 2..10 of 1ycr_reference) sits in the samples 1ycr_B
    s = _samples(root, "scaffold", ["1ycr_B", "d1mbaa_"], target_id=["1YCR", "1YCR"],
                 reference_path=["pdb/1ycr_reference.pdb.gz"] * 2,
                 motif_positions=[list(range(2, 11)), list(range(2, 11))],
                 reference_motif_positions=[list(range(2, 11))] * 2)
    shutil.copy(DATA / "1ycr_reference.pdb.gz", s.parent / "pdb" / "1ycr_reference.pdb.gz")
    sc = pl.DataFrame({"sample_id": ["scaffold_0", "scaffold_1"], "length": [13, 146],
                       "sctm": [0.9, 0.95], "folding_backend": ["esmfold:test"] * 2})
    write_parquet(sc, ev / "scaffold" / "self_consistency.parquet")
    assert dplm2_main(["evaluate", "motif", "--task", "scaffold", "--samples", str(s),
                       "--self-consistency", str(ev / "scaffold" / "self_consistency.parquet"),
                       "--out", str(ev / "scaffold" / "motif.parquet")]) == 0
    mo = pl.read_parquet(ev / "scaffold" / "motif.parquet")
    assert mo["success"].to_list() == [True, False] and mo["motif_rmsd"][0] < 1e-3
    assert dplm2_main(["evaluate", "summary", "--task", "scaffold", "--metrics",
                       str(ev / "scaffold" / "self_consistency.parquet"), str(ev / "scaffold" / "motif.parquet"),
                       "--out", str(ev / "scaffold" / "summary.parquet"),
                       "--markdown", str(ev / "scaffold" / "summary.md")]) == 0
    summ = pl.read_parquet(ev / "scaffold" / "summary.parquet")
    assert summ.filter(pl.col("metric") == "n_solved")["value"].item() == 1.0


def test_cli_rejects_bad_samples(tmp_path):
    s = _samples(tmp_path, "cogen", ["1hml_A"])
    df = pl.read_parquet(s).with_columns(length=pl.lit(5, dtype=pl.Int64))
    write_parquet(df, s)
    assert dplm2_main(["evaluate", "recovery", "--task", "inverse_folding", "--samples", str(s),
                       "--out", str(tmp_path / "x.parquet")]) == 2  # missing target_id: clear error
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.slow
@pytest.mark.skipif(not SNAKEMAKE.exists() and shutil.which("snakemake") is None,
                    reason="snakemake not installed")
def test_snakemake_cogen_rules_and_single_metric_rerun(tmp_path, tiny_esmfold, require_tool):
    root = tmp_path / "results"
    _samples(root, "cogen", list(GLOBINS[:3]) + list(TIMS))
    _chain_shards(root)
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["results"] = str(root)
    cfg["evaluate"]["folding"].update(backend="esmfold", esmfold_model=str(tiny_esmfold), device="cpu")
    cfg["evaluate"]["diversity"]["designable_by"] = "all"
    cfgfile = tmp_path / "config.yaml"
    cfgfile.write_text(yaml.safe_dump(cfg))
    exe = str(SNAKEMAKE) if SNAKEMAKE.exists() else shutil.which("snakemake")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    targets = [str(root / "evaluate/cogen/summary.md"), str(root / "report/evaluate_cogen.png"),
               str(root / "report/designs_cogen.html")]

    # the samples and chain shards here are hand-made: only evaluation rules may run
    allowed = ["evaluate_refold", "evaluate_metric", "evaluate_diversity", "evaluate_novelty_part",
               "evaluate_summary", "report_metric_plots", "report_designs"]

    def run(*args):
        p = subprocess.run([exe, "--cores", "2", *args, "--allowed-rules", *allowed,
                            "--configfile", str(cfgfile)], cwd=REPO,
                           capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stderr[-4000:]
        return p.stdout + p.stderr

    run(*targets)
    ev = root / "evaluate" / "cogen"
    for m in ("refold", "self_consistency", "diversity", "novelty", "summary"):
        t = read_parquet_checked(ev / f"{m}.parquet", ["folding_backend"] if m != "summary" else [])
        assert t.height > 0
    div = pl.read_parquet(ev / "diversity.parquet")
    globin_clusters = div.filter(pl.col("length") != 247)["cluster"].unique().to_list()
    tim_clusters = div.filter(pl.col("length") == 247)["cluster"].unique().to_list()
    assert len(globin_clusters) == 1 and len(tim_clusters) == 1 and globin_clusters != tim_clusters
    nov = pl.read_parquet(ev / "novelty.parquet")
    assert (nov["pdb_tm"] > 0.6).all()  # every sample has a family member in the training set
    # scattered over the references: one part per chain shard, merged
    assert sorted(p.name for p in (ev / "novelty").iterdir()) == [
        "part-00000-of-00002.parquet", "part-00001-of-00002.parquet"]
    assert (nov["n_references"] == 4).all()
    md = (ev / "summary.md").read_text()
    assert "n_clusters" in md and f"esmfold:{tiny_esmfold}" in md
    assert (root / "report" / "evaluate_cogen.png").stat().st_size > 1000

    # delete one metric table: only that rule reruns
    before = {m: (ev / f"{m}.parquet").stat().st_mtime_ns for m in ("refold", "self_consistency", "novelty")}
    (ev / "diversity.parquet").unlink()
    log = run(str(ev / "diversity.parquet"))
    assert "rule evaluate_diversity:" in log  # "rule" or "localrule" header of a job
    assert "rule evaluate_refold:" not in log and "rule evaluate_metric:" not in log
    assert (ev / "diversity.parquet").exists()
    for m, t in before.items():
        assert (ev / f"{m}.parquet").stat().st_mtime_ns == t
    np.testing.assert_array_equal(pl.read_parquet(ev / "diversity.parquet")["cluster"].to_numpy(),
                                  div["cluster"].to_numpy())

    # the report, as a reader opens it: Evaluation -> cogen -> designs in 3D, in headless
    # Chromium; every view drawn, none blank, no console error, nothing fetched
    report = tmp_path / "report.html"
    p = subprocess.run([exe, *targets, "--configfile", str(cfgfile), "--allowed-rules", *allowed,
                        "--report", str(report)],
                       cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-4000:]
    require_tool("chromium", "chromium-browser", "google-chrome", install="apt-get install chromium")
    sys.path.insert(0, str(REPO / "tools"))
    import report_views_check

    assert report_views_check.check(report) == []


def test_cli_ss_cogen_samples_are_evaluated_like_cogen(tmp_path, tiny_esmfold):
    root = tmp_path / "results"
    fold = json.dumps({"backend": "esmfold", "esmfold_model": str(tiny_esmfold), "device": "cpu"})
    ev = root / "evaluate" / "ss_cogen"
    s = _samples(root, "ss_cogen", ["1hml_A", "d1mbaa_"])
    assert dplm2_main(["evaluate", "refold", "--task", "ss_cogen", "--samples", str(s),
                       "--out", str(ev / "refold.parquet"), "--pdb-dir", str(ev / "refold"),
                       "--params", fold]) == 0
    assert dplm2_main(["evaluate", "self-consistency", "--task", "ss_cogen", "--samples", str(s),
                       "--refold", str(ev / "refold.parquet"),
                       "--out", str(ev / "self_consistency.parquet")]) == 0
    sc = pl.read_parquet(ev / "self_consistency.parquet")
    assert sc.height == 2 and sc["sctm"].is_between(0, 1).all()
    # a cogen table is not an ss_cogen table: rows must belong to the task asked for
    other = _samples(tmp_path / "other", "cogen", ["1hml_A"])
    assert dplm2_main(["evaluate", "refold", "--task", "ss_cogen", "--samples", str(other),
                       "--out", str(tmp_path / "x.parquet"), "--pdb-dir", str(tmp_path / "x"),
                       "--params", fold]) == 2
