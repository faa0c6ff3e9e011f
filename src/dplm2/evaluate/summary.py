"""Summary of one task's metric tables: a long Parquet table and a Markdown page.

``summary.parquet`` has one row per (metric table, column, group, statistic): ``task, table,
metric, group, n, value, folding_backend``. Groups are ``all``, ``length=<L>`` (every task) and
``target=<id>`` (scaffolding). Statistics: the mean of every score column (a fraction for the
boolean ones: designable, tm_pass, success), plus ``n_clusters`` / ``n_designable`` (diversity)
and ``n_solved`` / ``n_problems`` / ``mean_success_rate`` (scaffolding), the figures the
paper reports.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

#: Score columns summarised per metric table (others are identifiers).
SCORES: dict[str, tuple[str, ...]] = {
    "self_consistency": ("sctm", "scrmsd", "scrmsd_ca", "plddt", "designable_sctm", "designable_scrmsd"),
    "fold_accuracy": ("tm", "rmsd", "rmsd_ca", "tm_pass"),
    "recovery": ("aar",),
    "diversity": ("inner_tm", "designable"),
    "novelty": ("pdb_tm",),
    "motif": ("motif_rmsd", "sctm", "success"),
}


def _backend(df: pl.DataFrame) -> str:
    names = sorted({str(x) for x in df["folding_backend"].to_list()}) if "folding_backend" in df.columns else []
    return ",".join(names) or "none"


def summarize(task: str, tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Long summary of ``tables`` (metric name -> per-sample table) for ``task``.

    Examples
    --------
    >>> t = pl.DataFrame({"sample_id": ["a", "b"], "length": [50, 50], "aar": [0.5, 0.7],
    ...                   "folding_backend": ["none", "none"]})
    >>> s = summarize("inverse_folding", {"recovery": t})
    >>> s.filter(pl.col("group") == "all").select("metric", "n", "value").rows()
    [('aar', 2, 0.6)]
    """
    out: list[dict] = []
    for name, df in tables.items():
        if name not in SCORES:
            raise ValueError(f"no summary rule for metric table {name!r}; known: {sorted(SCORES)}")
        backend = _backend(df)
        cols = [c for c in SCORES[name] if c in df.columns]
        groupings: list[tuple[str, pl.DataFrame]] = [("all", df)]
        for (length,), part in sorted(df.group_by("length"), key=lambda kv: kv[0][0]):
            groupings.append((f"length={length}", part))
        if "target_id" in df.columns and task == "scaffold":
            for (tid,), part in sorted(df.group_by("target_id"), key=lambda kv: str(kv[0][0])):
                groupings.append((f"target={tid}", part))
        for group, part in groupings:
            for col in cols:
                vals = part[col].drop_nulls().cast(pl.Float64).drop_nans()
                if vals.len() == 0:
                    continue
                out.append(_row(task, name, col, group, vals.len(), float(vals.mean()), backend))
            if name == "diversity":
                des = part.filter(pl.col("designable"))
                out.append(_row(task, name, "n_designable", group, part.height, float(des.height), backend))
                if group == "all":
                    n_clusters = des["cluster"].drop_nulls().n_unique()
                    out.append(_row(task, name, "n_clusters", group, des.height, float(n_clusters), backend))
        if name == "motif":
            from dplm2.evaluate.motif import problems_solved

            per = problems_solved(df)
            out.append(_row(task, name, "n_solved", "all", per.height, float(per["solved"].sum()), backend))
            out.append(_row(task, name, "n_problems", "all", per.height, float(per.height), backend))
            out.append(_row(task, name, "mean_success_rate", "all", per.height,
                            float(per["success_rate"].mean()), backend))
    return pl.DataFrame(
        out,
        schema={"task": pl.String, "table": pl.String, "metric": pl.String, "group": pl.String,
                "n": pl.Int64, "value": pl.Float64, "folding_backend": pl.String},
    )


def _row(task, table, metric, group, n, value, backend) -> dict:
    return {"task": task, "table": table, "metric": metric, "group": group, "n": int(n),
            "value": value, "folding_backend": backend}


def to_markdown(task: str, summary: pl.DataFrame) -> str:
    """Markdown page: one table per metric table, groups as rows, statistics as columns."""
    lines = [f"# Evaluation summary: {task}", ""]
    if summary.height == 0:
        return "\n".join(lines + ["No metrics.", ""])
    for table in dict.fromkeys(summary["table"].to_list()):
        part = summary.filter(pl.col("table") == table)
        metrics = list(dict.fromkeys(part["metric"].to_list()))
        groups = list(dict.fromkeys(part["group"].to_list()))
        backend = part["folding_backend"][0]
        lines += [f"## {table}", "", f"Folding backend: `{backend}`.", ""]
        lines.append("| group | n | " + " | ".join(metrics) + " |")
        lines.append("|---|---:|" + "---:|" * len(metrics))
        for g in groups:
            gp = part.filter(pl.col("group") == g)
            values = {r["metric"]: r for r in gp.iter_rows(named=True)}
            n = max(r["n"] for r in values.values())
            cells = [_fmt(values[m]["value"], m) if m in values else "" for m in metrics]
            lines.append(f"| {g} | {n} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _fmt(x: float, metric: str) -> str:
    return f"{x:.0f}" if metric.startswith("n_") else f"{x:.3f}"


def write_summary(
    task: str,
    metric_paths: dict[str, str | os.PathLike],
    out_parquet: str | os.PathLike,
    out_markdown: str | os.PathLike,
    metadata: dict | None = None,
) -> pl.DataFrame:
    """Read the metric tables, write ``summary.parquet`` and ``summary.md`` atomically."""
    from dplm2.io import atomic_write_text, read_parquet_checked, write_parquet

    tables = {
        name: read_parquet_checked(p, ["sample_id", "length", "folding_backend"])
        for name, p in metric_paths.items()
    }
    summary = summarize(task, tables)
    write_parquet(summary, out_parquet, {"stage": "evaluate.summary", "task": task, **(metadata or {})})
    atomic_write_text(out_markdown, to_markdown(task, summary))
    return summary


def metric_name(path: str | os.PathLike) -> str:
    """``results/evaluate/cogen/self_consistency.parquet`` -> ``self_consistency``."""
    return Path(path).name.removesuffix(".parquet")
