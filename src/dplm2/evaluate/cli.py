"""``dplm2 evaluate <metric>``: one sub-subcommand per metric table, plus summary and plots.

Every command takes explicit paths and ``--params JSON`` (the matching part of the config
section ``evaluate:``); heavy imports happen inside the command functions.
"""

from __future__ import annotations

import logging

from dplm2.evaluate.config import TASK_METRICS

log = logging.getLogger("dplm2.evaluate")



def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="metrics of generated samples (designability, accuracy, diversity, "
        "novelty, motif)",
        description="Metrics of generated samples, one command per metric table, plus the "
        "summary and report figures. Each command takes explicit paths and --params JSON (the "
        "matching part of the config section 'evaluate').")
    sub = p.add_subparsers(dest="evaluate_command", metavar="<metric>", required=True)

    def cmd(name, func, help_, *, samples=True, task=True, params=True):
        c = sub.add_parser(name, help=help_, description=help_)
        if samples:
            c.add_argument("--samples", required=True, help="results/generate/{task}/samples.parquet")
        if task:
            c.add_argument("--task", required=True, choices=sorted(TASK_METRICS))
        if params:
            c.add_argument("--params", default="{}", help="JSON of the config sub-section")
        c.set_defaults(func=func)
        return c

    c = cmd("refold", _refold, "fold every sample's sequence with the folding backend (cached)")
    c.add_argument("--out", required=True, help="refold.parquet")
    c.add_argument("--pdb-dir", help="folder for one PDB per sample (pLDDT as B-factor)")
    c.add_argument("--lm", help="LM folder (backend dplm2)")
    c.add_argument("--tokenizer", help="tokenizer folder (backend dplm2)")

    c = cmd("self-consistency", _self_consistency, "scTM, scRMSD, pLDDT, designability")
    c.add_argument("--refold", required=True)
    c.add_argument("--out", required=True)

    c = cmd("fold-accuracy", _fold_accuracy, "folding task: RMSD / TM vs the true structure")
    c.add_argument("--out", required=True)

    c = cmd("recovery", _recovery, "inverse folding: amino-acid recovery", params=False)
    c.add_argument("--out", required=True)

    c = cmd("diversity", _diversity, "inner-TM per length and clusters of designable samples")
    c.add_argument("--self-consistency", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--threads", type=int, default=1, help="processes running TM-align")

    c = cmd("novelty", _novelty, "max TM-score to the training structures (one job)")
    c.add_argument("--chains", nargs="+", required=True, help="process stage chain shards")
    c.add_argument("--out", required=True)
    c.add_argument("--threads", type=int, default=1, help="processes running TM-align")

    c = cmd("novelty-part", _novelty_part,
            "best training structure of each sample in one range of the references")
    c.add_argument("--chains", nargs="+", required=True, help="process stage chain shards (all)")
    c.add_argument("--part", type=int, required=True, help="0-based part index")
    c.add_argument("--parts", type=int, required=True, help="number of parts")
    c.add_argument("--out", required=True)
    c.add_argument("--threads", type=int, default=1, help="processes running TM-align")

    c = cmd("novelty-merge", _novelty_merge, "novelty table from the parts")
    c.add_argument("--part-tables", nargs="+", required=True, help="novelty-part outputs (all)")
    c.add_argument("--out", required=True)

    c = cmd("motif", _motif, "motif-scaffolding success")
    c.add_argument("--self-consistency", required=True)
    c.add_argument("--out", required=True)

    c = cmd("summary", _summary, "summary.parquet + summary.md of one task", samples=False, params=False)
    c.add_argument("--metrics", nargs="+", required=True, help="metric tables of the task")
    c.add_argument("--out", required=True)
    c.add_argument("--markdown", required=True)

    c = cmd("plot-metrics", _plot_metrics, "metric distributions per length (PNG)",
            samples=False, params=False)
    c.add_argument("--metrics", nargs="+", required=True)
    c.add_argument("--out", required=True)

    c = cmd("views", _views, "HTML page of the best and typical designs in 3D (for the report)",
            params=False)
    c.add_argument("--metrics", nargs="+", required=True, help="metric tables of the task")
    c.add_argument("--refold", help="the task's refold.parquet (all tasks but folding)")
    c.add_argument("--typical", type=int, default=3, help="typical designs shown besides the best")
    c.add_argument("--out", required=True)

    c = cmd("plot-training", _plot_training, "training curves of the tokenizer or the LM (PNG)",
            samples=False, task=False, params=False)
    c.add_argument("--metrics", required=True,
                   help="the training's metrics table, e.g. results/lm/metrics.parquet")
    c.add_argument("--out", required=True)


def _meta(args) -> dict:
    from dplm2.io import read_parquet_metadata

    meta = {"params": args.params} if getattr(args, "params", None) else {}
    samples = getattr(args, "samples", None)
    if samples:
        up = read_parquet_metadata(samples)
        meta["samples_config"] = up.get("config_hash", up.get("config", "unknown"))
    return meta


def _refold(args) -> int:
    from dplm2.evaluate.config import FoldingConfig
    from dplm2.evaluate.refold import make_backend, refold_samples
    from dplm2.evaluate.samples import read_samples

    cfg = FoldingConfig.from_json(args.params, "evaluate.folding")
    samples = read_samples(args.samples, args.task)
    backend = make_backend(cfg, lm=args.lm, tokenizer=args.tokenizer)
    log.info("refolding %d samples of %s with %s", samples.height, args.task, backend.name)
    refold_samples(samples, backend, args.out, args.pdb_dir, _meta(args))
    return 0


def _self_consistency(args) -> int:
    from dplm2.evaluate.config import SelfConsistencyConfig
    from dplm2.evaluate.refold import read_refold
    from dplm2.evaluate.samples import read_samples
    from dplm2.evaluate.self_consistency import designed_structure, self_consistency_table
    from dplm2.io import write_parquet

    cfg = SelfConsistencyConfig.from_json(args.params, "evaluate.self_consistency")
    samples = read_samples(args.samples, args.task)
    table = self_consistency_table(samples, read_refold(args.refold), designed_structure(args.task), cfg)
    write_parquet(table, args.out, {"stage": "evaluate.self_consistency", **_meta(args)})
    _log_mean(table, ("sctm", "scrmsd_ca", "designable_sctm", "designable_scrmsd"))
    return 0


def _fold_accuracy(args) -> int:
    from dplm2.evaluate.config import FoldAccuracyConfig
    from dplm2.evaluate.fold_accuracy import fold_accuracy_table
    from dplm2.evaluate.samples import read_samples
    from dplm2.io import read_parquet_metadata, write_parquet

    cfg = FoldAccuracyConfig.from_json(args.params, "evaluate.fold_accuracy")
    samples = read_samples(args.samples, args.task)
    # The folding task's "folding backend" is the generating model itself.
    model = read_parquet_metadata(args.samples).get("model", "lm")
    table = fold_accuracy_table(samples, cfg, backend=f"dplm2-generate:{model}")
    write_parquet(table, args.out, {"stage": "evaluate.fold_accuracy", **_meta(args)})
    _log_mean(table, ("tm", "rmsd", "tm_pass"))
    return 0


def _recovery(args) -> int:
    from dplm2.evaluate.recovery import recovery_table
    from dplm2.evaluate.samples import read_samples
    from dplm2.io import write_parquet

    table = recovery_table(read_samples(args.samples, args.task))
    write_parquet(table, args.out, {"stage": "evaluate.recovery", **_meta(args)})
    _log_mean(table, ("aar",))
    return 0


def _diversity(args) -> int:
    from dplm2.evaluate.config import DiversityConfig
    from dplm2.evaluate.diversity import designable_samples, diversity_table
    from dplm2.evaluate.samples import read_samples, resolve, sample_structure
    from dplm2.io import read_parquet_checked, write_parquet

    cfg = DiversityConfig.from_json(args.params, "evaluate.diversity")
    samples = read_samples(args.samples, args.task)
    designable, folding_backend = designable_samples(
        samples, read_parquet_checked(args.self_consistency), cfg.designable_by,
        source=args.self_consistency)
    rows = list(samples.iter_rows(named=True))
    structures = [sample_structure(r) for r in rows]
    paths = [str(resolve(r["pdb_path"], r["_base"])) for r in rows]
    table = diversity_table(
        samples, structures, designable, threshold=cfg.tm_threshold, linkage=cfg.linkage,
        backend=cfg.backend, pdb_paths=paths, foldseek_binary=cfg.foldseek_binary,
        folding_backend=folding_backend,
        threads=args.threads,
    )
    write_parquet(table, args.out, {"stage": "evaluate.diversity", **_meta(args)})
    n_clusters = table["cluster"].drop_nulls().n_unique()
    log.info("%d designable samples in %d clusters", int(table["designable"].sum()), n_clusters)
    return 0


def _novelty(args) -> int:
    from dplm2.evaluate.config import NoveltyConfig
    from dplm2.evaluate.novelty import load_references, novelty_table
    from dplm2.evaluate.samples import read_samples, sample_structure
    from dplm2.io import write_parquet

    cfg = NoveltyConfig.from_json(args.params, "evaluate.novelty")
    samples = read_samples(args.samples, args.task)
    ids, refs = load_references(args.chains, cfg.split, cfg.max_references)
    log.info("novelty against %d %s chains on %d processes", len(ids), cfg.split, args.threads)
    structures = [sample_structure(r) for r in samples.iter_rows(named=True)]
    table = novelty_table(samples, structures, ids, refs, prefilter=cfg.prefilter,
                          threads=args.threads)
    write_parquet(table, args.out, {"stage": "evaluate.novelty", "n_references": len(ids), **_meta(args)})
    _log_novelty(table)
    return 0


def _novelty_part(args) -> int:
    from dplm2.evaluate.config import NoveltyConfig
    from dplm2.evaluate.novelty import novelty_part, reference_part
    from dplm2.evaluate.samples import read_samples, sample_structure
    from dplm2.io import write_parquet

    cfg = NoveltyConfig.from_json(args.params, "evaluate.novelty")
    samples = read_samples(args.samples, args.task)
    total, start, stop, (ids, index, refs) = reference_part(args.chains, cfg.split, cfg.max_references,
                                                            args.part, args.parts)
    log.info("novelty part %d/%d: references %d..%d of %d %s chains, %d processes",
             args.part + 1, args.parts, start, stop - 1, total, cfg.split, args.threads)
    structures = [sample_structure(r) for r in samples.iter_rows(named=True)]
    table = novelty_part(samples, structures, ids, index, refs, prefilter=cfg.prefilter,
                         threads=args.threads)
    write_parquet(table, args.out, {"stage": "evaluate.novelty_part", "part": [args.part, args.parts],
                                    "n_references": total, **_meta(args)})
    pairs = samples.height * len(refs)
    log.info("%d of %d sample-reference pairs aligned (%d skipped by the %s prefilter)",
             int(table["n_aligned"].sum()), pairs, pairs - int(table["n_aligned"].sum()),
             cfg.prefilter)
    return 0


def _novelty_merge(args) -> int:
    from dplm2.evaluate.novelty import merge_part_files
    from dplm2.evaluate.samples import read_samples
    from dplm2.io import write_parquet

    samples = read_samples(args.samples, args.task)
    table, metas = merge_part_files(samples, args.part_tables, _meta(args).get("samples_config"))
    n = len(args.part_tables)
    write_parquet(table, args.out, {"stage": "evaluate.novelty", "parts": n,
                                    "n_references": metas[0].get("n_references"), **_meta(args)})
    _log_novelty(table)
    return 0


def _log_novelty(table) -> None:
    _log_mean(table, ("pdb_tm",))
    pairs = int(table["n_references"].sum())
    log.info("TM-align runs: %d of %d sample-reference pairs", int(table["n_aligned"].sum()), pairs)


def _motif(args) -> int:
    import numpy as np

    from dplm2.evaluate.config import MotifConfig
    from dplm2.evaluate.motif import motif_table, problems_solved
    from dplm2.evaluate.samples import read_samples, reference_chain, sample_structure
    from dplm2.io import read_parquet_checked, write_parquet

    cfg = MotifConfig.from_json(args.params, "evaluate.motif")
    samples = read_samples(args.samples, args.task)
    sc = read_parquet_checked(args.self_consistency, ["sample_id", "sctm", "folding_backend"])
    rows = list(samples.iter_rows(named=True))
    structures = [sample_structure(r) for r in rows]
    refs = [np.asarray(reference_chain(r).coords, dtype=np.float64) for r in rows]
    table = motif_table(samples, structures, refs, sc, motif_rmsd_max=cfg.motif_rmsd,
                        sctm_min=cfg.sctm, atoms=cfg.atoms)
    write_parquet(table, args.out, {"stage": "evaluate.motif", **_meta(args)})
    per = problems_solved(table)
    log.info("%d of %d problems solved", int(per["solved"].sum()), per.height)
    return 0


def _summary(args) -> int:
    from dplm2.evaluate.summary import metric_name, write_summary

    paths = {metric_name(p): p for p in args.metrics}
    s = write_summary(args.task, paths, args.out, args.markdown)
    log.info("%s: %d summary rows -> %s", args.task, s.height, args.markdown)
    return 0


def _plot_metrics(args) -> int:
    from dplm2.evaluate.plots import plot_metric_distributions
    from dplm2.evaluate.summary import metric_name
    from dplm2.io import read_parquet_checked

    tables = {metric_name(p): read_parquet_checked(p, ["sample_id", "length"]) for p in args.metrics}
    plot_metric_distributions(args.task, tables, args.out)
    return 0


def _views(args) -> int:
    from dplm2.evaluate.views import write_views_page

    views = write_views_page(args.task, args.samples, args.metrics, args.refold, args.out, args.typical)
    log.info("%s: %d designs in 3D -> %s", args.task, len(views), args.out)
    return 0


def _plot_training(args) -> int:
    from dplm2.evaluate.plots import plot_training
    from dplm2.io import read_parquet_checked

    df = read_parquet_checked(args.metrics, ["step", "loss"])
    try:
        plot_training(df, args.out)
    except ValueError as exc:
        raise ValueError(f"{args.metrics}: {exc}") from exc
    log.info("%d training steps -> %s", df.height, args.out)
    return 0


def _log_mean(table, cols) -> None:
    for c in cols:
        if c in table.columns and table[c].drop_nulls().len():
            log.info("mean %s = %.4f (n=%d)", c, float(table[c].drop_nulls().cast(float).mean()),
                     table[c].drop_nulls().len())

