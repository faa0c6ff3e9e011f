"""Report figures: the training curves as a reader wants them."""

from __future__ import annotations

import math

import polars as pl
import pytest

from dplm2.evaluate.plots import plot_training, smooth, training_kind
from dplm2.io import write_parquet


def _lm_table(steps: int = 60) -> pl.DataFrame:
    rows = []
    for s in range(1, steps + 1):
        # every 3rd step holds only inverse-folding rows: no structure position was trained
        no_struct = s % 3 == 0
        row = {"step": s, "lr": 1e-3, "loss": 5.0 / s ** 0.3, "grad_norm": 1.0,
               "loss_aa": 3.0 / s ** 0.3, "acc_full_aa": 0.1, "masked_aa": 40.0,
               "loss_struct": 0.0 if no_struct else 8.0 / s ** 0.3,
               "acc_full_struct": 0.0 if no_struct else 0.05, "masked_struct": 0.0 if no_struct else 35.0,
               "task_loss_inverse_folding_aa": 3.1}
        if not no_struct:
            row["task_loss_joint_struct"] = 8.0
        if s % 20 == 0:
            row.update(val_joint_nll_full_struct=8.5, val_joint_nll_full_aa=3.2,
                       val_folding_nll_full_struct=8.4, val_joint_acc_full_aa=0.1)
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


def test_lm_figure_separates_kinds_and_skips_untrained_modality(tmp_path):
    df = _lm_table()
    assert training_kind(df) == "lm"
    drawn = plot_training(df, tmp_path / "lm.png")
    assert (tmp_path / "lm.png").stat().st_size > 20_000
    loss = drawn["training loss"]
    assert loss == {"total": 60, "structure": 40, "amino acids": 60}  # 20 steps trained no structure
    assert drawn["training accuracy (masked positions)"]["structure"] == 40
    assert drawn["training loss per task"] == {"joint (structure)": 40, "inverse_folding (amino acids)": 60}
    assert drawn["validation loss, structure tokens"] == {"joint": 3, "folding": 3}
    assert drawn["validation loss, amino acids"] == {"joint": 3}


def test_tokenizer_figure_has_quality_panels(tmp_path):
    rows = [{"step": s, "lr": 1e-3, "loss": 50.0 / s, "fape": 1.0 / s, "distogram": 2.0, "aa": 3.0,
             "violation": 0.0, "batch_codes_used": 10.0 + s} for s in range(1, 31)]
    for r in rows[9::10]:
        r.update(val_ca_rmsd=12.0, val_ca_rmsd_median=11.0, val_ca_rmsd_shuffled=14.0, val_tm=0.2,
                 val_tm_median=0.2, val_tm_shuffled=0.1, val_codes_used=40.0, val_perplexity=30.0)
    df = pl.DataFrame(rows, infer_schema_length=None)
    write_parquet(df, tmp_path / "metrics.parquet")
    from dplm2.cli import main

    assert main(["evaluate", "plot-training", "--metrics", str(tmp_path / "metrics.parquet"),
                 "--out", str(tmp_path / "tok.png")]) == 0
    drawn = plot_training(df, tmp_path / "tok2.png")
    assert drawn["validation CA-RMSD (reconstruction)"] == {"mean": 3, "median": 3, "shuffled tokens (mean)": 3}
    assert drawn["codebook use"] == {"per training batch": 30, "validation set": 3}
    assert set(drawn["loss terms"]) == {"fape", "distogram", "aa"}  # violation 0 throughout: off
    assert "codebook perplexity (validation)" in drawn


def test_bad_metrics_table_is_a_clear_error(tmp_path):
    write_parquet(pl.DataFrame({"step": [1], "loss": [1.0], "x": [2.0]}), tmp_path / "m.parquet")
    from dplm2.cli import main

    assert main(["evaluate", "plot-training", "--metrics", str(tmp_path / "m.parquet"),
                 "--out", str(tmp_path / "x.png")]) == 2
    assert not (tmp_path / "x.png").exists()


def test_smoothing_is_debiased_and_follows_a_step():
    assert smooth([2.0] * 5) == pytest.approx([2.0] * 5)  # no pull towards 0 at the start
    out = smooth([0.0] * 50 + [1.0] * 50, span=5)
    assert out[49] == 0.0 and 0.2 < out[50] < 0.5 and math.isclose(out[-1], 1.0, abs_tol=1e-6)
