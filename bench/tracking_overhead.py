"""Cost of the live dashboards: TensorBoard logging of one metrics row against a training step.

Replays the rows of a real training's ``metrics.parquet`` (the demo's LM by default) through
:class:`dplm2.train.tracking.RunTracker` into a temporary folder and prints the logging time per
row, the training's median step time (``step_time_s``, measured during that training) and the
ratio of the two, plus the event-file size per step.

    .venv/bin/python bench/tracking_overhead.py results/lm/metrics.parquet
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import polars as pl

from dplm2.train.tracking import RunTracker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics", nargs="?", default="results/lm/metrics.parquet")
    args = ap.parse_args()
    df = pl.read_parquet(args.metrics)
    rows = df.to_dicts()
    with tempfile.TemporaryDirectory() as tmp:
        tracker = RunTracker(tmp, "bench")
        t0 = time.perf_counter()
        for row in rows:
            tracker.log(row)
        tracker.close()
        per_row = (time.perf_counter() - t0) / len(rows)
        size = sum(p.stat().st_size for p in Path(tmp, "tensorboard").iterdir())
    step = float(df["step_time_s"].median()) if "step_time_s" in df.columns else float("nan")
    print(f"{args.metrics}: {len(rows)} rows, {len(df.columns)} columns")
    print(f"TensorBoard logging  {per_row * 1e3:.3f} ms/row, {size / len(rows):.0f} bytes/step")
    print(f"training step        {step * 1e3:.1f} ms (median step_time_s)")
    print(f"overhead ratio       {per_row / step:.5f}")


if __name__ == "__main__":
    main()
