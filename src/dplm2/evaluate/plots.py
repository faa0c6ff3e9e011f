"""Report figures (matplotlib, headless): metric distributions per length and loss curves."""

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


def plot_loss_curves(metrics: dict[str, pl.DataFrame], out: str | os.PathLike) -> None:
    """Training loss (and ``val_*`` / ``*loss*`` columns) against step, one panel per model."""
    from dplm2.io import atomic_path

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    for ax, (label, df) in zip(axes.flat, metrics.items(), strict=True):
        if "step" not in df.columns:
            raise ValueError(f"{label} metrics table has no 'step' column; has {df.columns}")
        cols = [c for c in df.columns if c != "step" and ("loss" in c or c.startswith("val_"))
                and df[c].dtype.is_numeric()]
        for c in cols:
            part = df.filter(pl.col(c).is_not_null() & pl.col(c).is_finite())
            if part.height:
                ax.plot(part["step"].to_list(), part[c].to_list(), label=c,
                        marker="o" if part.height < 30 else None, ms=3)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(f"{label} training")
        if cols:
            ax.legend(fontsize=7)
        if df.height and all((df[c].drop_nulls() > 0).all() for c in cols):
            ax.set_yscale("log")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
