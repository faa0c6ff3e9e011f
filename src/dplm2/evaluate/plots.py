"""Report figures (matplotlib, headless): metric distributions per length and training curves."""

from __future__ import annotations

import os

import polars as pl

#: Numeric per-sample columns worth a distribution plot, per metric table.
PLOTTED: dict[str, tuple[str, ...]] = {
    "self_consistency": ("sctm", "scrmsd_ca", "plddt"),
    "fold_accuracy": ("tm", "rmsd"),
    "recovery": ("aar",),
    "diversity": ("inner_tm",),
    "novelty": ("pdb_tm",),
    "motif": ("motif_rmsd",),
}
LABELS = {
    "sctm": "scTM", "scrmsd_ca": "scRMSD (CA, Å)", "plddt": "pLDDT", "tm": "TM-score",
    "rmsd": "RMSD (N/CA/C, Å)", "aar": "AAR", "inner_tm": "inner-TM", "pdb_tm": "pdb-TM",
    "motif_rmsd": "motif RMSD (CA, Å)",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: rules run without a display
    import matplotlib.pyplot as plt

    return plt


def plot_metric_distributions(task: str, tables: dict[str, pl.DataFrame], out: str | os.PathLike) -> None:
    """One box plot per metric column: its distribution for each sample length."""
    from dplm2.io import atomic_path

    plt = _pyplot()
    panels = [(name, col) for name, df in tables.items() for col in PLOTTED.get(name, ())
              if col in df.columns and df[col].drop_nulls().len()]
    ncols = min(3, max(1, len(panels)))
    nrows = max(1, -(-len(panels) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    if not panels:
        axes.flat[0].text(0.5, 0.5, f"{task}: no numeric metrics", ha="center", va="center")
    for ax, (name, col) in zip(axes.flat, panels, strict=False):
        df = tables[name].filter(pl.col(col).is_not_null() & ~pl.col(col).cast(pl.Float64).is_nan())
        lengths = sorted(set(df["length"].to_list()))
        data = [df.filter(pl.col("length") == n)[col].to_list() for n in lengths]
        ax.boxplot(data, tick_labels=[str(n) for n in lengths], showmeans=True)
        ax.set_xlabel("length")
        ax.set_ylabel(LABELS.get(col, col))
        ax.set_title(f"{name}: {LABELS.get(col, col)}", fontsize=9)
    fig.suptitle(f"{task}: metric distributions per length")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


#: One panel of a training figure: title, y label, series, log y. A series is
#: ``(column, label, kind)`` with kind ``train`` (smoothed line over the raw curve drawn faint
#: when ``raw``), ``smooth`` (smoothed line only) or ``val`` (points at the validation steps).
Panel = tuple[str, str, list[tuple[str, str, str]], bool]

LM_TASKS = ("joint", "folding", "inverse_folding", "single_modality")
MODALITY = {"struct": "structure", "aa": "amino acids"}


def _lm_panels(cols: list[str]) -> list[Panel]:
    task_series = [(f"task_loss_{t}_{m}", f"{t} ({MODALITY[m]})", "smooth")
                   for t in LM_TASKS for m in MODALITY]
    val = {m: [(f"val_{t}_nll_full_{m}", t, "val") for t in LM_TASKS] for m in MODALITY}
    return [
        ("training loss", "loss", [("loss", "total", "raw"), ("loss_struct", "structure", "smooth"),
                                   ("loss_aa", "amino acids", "smooth")], False),
        ("training loss per task", "loss", task_series, False),
        ("training accuracy (masked positions)", "accuracy",
         [("acc_full_struct", "structure", "raw"), ("acc_full_aa", "amino acids", "raw")], False),
        ("validation loss, structure tokens", "NLL", val["struct"], False),
        ("validation loss, amino acids", "NLL", val["aa"], False),
        ("validation accuracy", "accuracy",
         [(f"val_{t}_acc_full_{m}", f"{t} ({MODALITY[m]})", "val") for t in LM_TASKS for m in MODALITY],
         False),
    ]


def _tokenizer_panels(cols: list[str]) -> list[Panel]:
    terms = [c for c in ("fape", "distogram", "aa", "plddt", "violation", "codebook", "commitment")
             if c in cols]
    return [
        ("training loss", "loss", [("loss", "total", "raw")], True),
        ("loss terms", "loss", [(c, c, "smooth") for c in terms], True),
        ("validation CA-RMSD (reconstruction)", "CA-RMSD (Å)",
         [("val_ca_rmsd", "mean", "val"), ("val_ca_rmsd_median", "median", "val"),
          ("val_ca_rmsd_shuffled", "shuffled tokens (mean)", "val")], False),
        ("validation TM-score (reconstruction)", "TM-score",
         [("val_tm", "mean", "val"), ("val_tm_median", "median", "val"),
          ("val_tm_shuffled", "shuffled tokens (mean)", "val")], False),
        ("codebook use", "codes used",
         [("batch_codes_used", "per training batch", "raw"), ("val_codes_used", "validation set", "val")],
         False),
        ("codebook perplexity (validation)", "perplexity", [("val_perplexity", "perplexity", "val")], False),
    ]


def training_kind(df: pl.DataFrame) -> str:
    """``lm`` or ``tokenizer``: which training a metrics table comes from (by its columns)."""
    if "loss_struct" in df.columns or "loss_aa" in df.columns:
        return "lm"
    if "fape" in df.columns:
        return "tokenizer"
    raise ValueError(f"not a tokenizer or LM metrics table (columns {df.columns[:12]}...)")


def _trained(df: pl.DataFrame, col: str) -> pl.DataFrame:
    """Rows where ``col`` is a real value: finite, and for a per-modality LM value only the
    steps whose tasks trained that modality (``masked_<m> > 0``; else the value is a 0 that
    means "not trained", not a loss)."""
    part = df.filter(pl.col(col).is_not_null() & pl.col(col).cast(pl.Float64).is_finite())
    for m in MODALITY:
        if col.endswith(f"_{m}") and f"masked_{m}" in part.columns and not col.startswith("val_"):
            part = part.filter(pl.col(f"masked_{m}") > 0)
    return part


def _points(df: pl.DataFrame, col: str, log_y: bool) -> pl.DataFrame:
    """:func:`_trained` rows, and on a log axis only the positive ones (a term that is 0
    throughout, e.g. a loss switched off, then draws nothing)."""
    part = _trained(df, col)
    return part.filter(pl.col(col) > 0) if log_y else part


def smooth(values: list[float], span: int | None = None) -> list[float]:
    """Exponential moving average with bias correction (as TensorBoard's smoothing); the span
    defaults to ~1/20 of the curve, so a 200-step run averages over ~10 steps."""
    n = len(values)
    span = span or max(1, round(n / 20))
    alpha = 2.0 / (span + 1)
    out, acc, weight = [], 0.0, 0.0
    for v in values:
        acc = (1 - alpha) * acc + alpha * v
        weight = (1 - alpha) * weight + alpha
        out.append(acc / weight)
    return out


def plot_training(df: pl.DataFrame, out: str | os.PathLike,
                  title: str | None = None) -> dict[str, dict[str, int]]:
    """The training figure of one model (tokenizer or LM; :func:`training_kind`): one panel per
    kind of quantity; training curves smoothed over the raw curve drawn faint, validation as
    points, per-modality LM values only on the steps that trained the modality.

    Returns what was drawn: ``{panel title: {series label: number of points}}``."""
    from dplm2.io import atomic_path

    if "step" not in df.columns:
        raise ValueError(f"metrics table has no 'step' column; has {df.columns}")
    kind = training_kind(df)
    panels = (_lm_panels if kind == "lm" else _tokenizer_panels)(df.columns)
    panels = [(t, y, [s for s in series if s[0] in df.columns and _points(df, s[0], log).height], log)
              for t, y, series, log in panels]
    panels = [p for p in panels if p[2]]
    plt = _pyplot()
    ncols = 3
    nrows = max(1, -(-len(panels) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.3 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn: dict[str, dict[str, int]] = {}
    for ax, (ptitle, ylabel, series, log_y) in zip(axes.flat, panels, strict=False):
        drawn[ptitle] = {}
        for i, (col, label, how) in enumerate(series):
            part = _points(df, col, log_y)
            x, y = part["step"].to_list(), part[col].cast(pl.Float64).to_list()
            drawn[ptitle][label] = len(x)
            # an LM task keeps its colour in every panel; amino acids dashed, structure solid
            task = next((t for t in LM_TASKS if label.startswith(t)), None)
            color = colors[(LM_TASKS.index(task) if task else i) % len(colors)]
            ls = "--" if task and "amino" in label else "-"
            if how == "val":
                ax.plot(x, y, marker="o", ms=4, lw=0.8, ls=":" if ls == "-" else "--",
                        color=color, label=label)
            else:
                if how == "raw":
                    ax.plot(x, y, lw=0.8, alpha=0.25, color=color)
                ax.plot(x, smooth(y), lw=1.6, ls=ls, color=color, label=label)
        ax.set_title(ptitle, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if len(series) > 1 or any(how == "val" for _, _, how in series):
            ax.legend(fontsize=7, framealpha=0.7, ncol=2 if len(series) > 4 else 1)
    name = {"lm": "DPLM-2 language model", "tokenizer": "structure tokenizer"}[kind]
    fig.suptitle(title or f"{name} training ({df['step'].max()} steps)")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return drawn
