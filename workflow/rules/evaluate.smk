# evaluate stage rules: one table per metric, results/evaluate/{task}/{metric}.parquet (rule
# evaluate_metric; which metrics a task gets: dplm2.evaluate.config.TASK_METRICS), plus
# summary.parquet + summary.md per task. See src/dplm2/evaluate/ and src/dplm2/schemas/evaluate.schema.yaml.
#
# Recompute one metric only: delete its table and ask for it, e.g.
#   rm results/evaluate/cogen/diversity.parquet
#   snakemake --cores 2 results/evaluate/cogen/diversity.parquet
# (the refold cache and the other metric tables are left alone; `summary` reruns when asked for).


include: "evaluate_common.smk"


wildcard_constraints:
    npart=r"\d{5}",


rule evaluate_refold:
    """Fold every sample's sequence once with the folding backend (cached for all sc metrics)."""
    input:
        unpack(eval_refold_models),
        samples=rules.generate.output.samples,
    output:
        table=res("evaluate", "{task}", "refold.parquet"),
        pdb=directory(res("evaluate", "{task}", "refold")),
    log:
        res("logs", "evaluate", "{task}", "refold.log"),
    benchmark:
        res("benchmarks", "evaluate", "{task}", "refold.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
        gpu=0,  # a GPU profile sets `set-resources: evaluate_refold:gpu=1`
    params:
        code=code_version("evaluate"),
        cfg=section("evaluate", "folding"),
        models=eval_refold_args,
    shell:
        "dplm2 evaluate refold --task {wildcards.task} --samples {input.samples} "
        "--out {output.table} --pdb-dir {output.pdb} {params.models} "
        "--params {params.cfg:q} > {log} 2>&1"


rule evaluate_metric:
    """One metric table of one task ({metric}.parquet; how: EVAL_METRIC_RUN)."""
    # self_consistency: scTM, scRMSD, pLDDT, designability; fold_accuracy: RMSD/TM vs the true
    # structure; recovery: AAR; diversity; motif; novelty: merge of the evaluate_novelty_part tables
    input:
        unpack(eval_metric_inputs),
    output:
        res("evaluate", "{task}", "{metric}.parquet"),
    wildcard_constraints:
        metric="|".join(m for m in EVAL_METRIC_RUN if m != "diversity"),
    log:
        res("logs", "evaluate", "{task}", "{metric}.log"),
    benchmark:
        res("benchmarks", "evaluate", "{task}", "{metric}.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: EVAL_METRIC_RUN[wc.metric].get("mem_mb", 2000) * attempt,
        runtime=lambda wc, attempt: EVAL_METRIC_RUN[wc.metric]["runtime"] * attempt,
    params:
        code=code_version("evaluate"),
        args=eval_metric_args,
    shell:
        "dplm2 evaluate {params.args} > {log} 2>&1"


use rule evaluate_metric as evaluate_diversity with:
    wildcard_constraints:
        metric="diversity",
    threads: 2


rule evaluate_novelty_part:
    """Best training chain of each sample in one range of the references (novelty scatter)."""
    # one of `evaluate.novelty.parts` jobs (default: one per chain shard), each on all its threads
    input:
        samples=rules.generate.output.samples,
        chains=CHAIN_SHARDS,
    output:
        res("evaluate", "{task}", "novelty", f"part-{{npart}}-of-{EVAL_NOVELTY_PARTS:05d}.parquet"),
    log:
        res("logs", "evaluate", "{task}", "novelty-{npart}.log"),
    benchmark:
        res("benchmarks", "evaluate", "{task}", "novelty-{npart}.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 240 * attempt,
    params:
        code=code_version("evaluate"),
        cfg=section("evaluate", "novelty"),
        part=lambda wildcards: int(wildcards.npart),
        parts=EVAL_NOVELTY_PARTS,
    shell:
        "dplm2 evaluate novelty-part --task {wildcards.task} --samples {input.samples} "
        "--chains {input.chains} --part {params.part} --parts {params.parts} "
        "--threads {threads} --out {output} --params {params.cfg:q} > {log} 2>&1"


rule evaluate_summary:
    """Summary table (Parquet) and page (Markdown) of one task's metric tables."""
    input:
        lambda wildcards: eval_metric_tables(wildcards.task),
    output:
        table=res("evaluate", "{task}", "summary.parquet"),
        md=res("evaluate", "{task}", "summary.md"),
    log:
        res("logs", "evaluate", "{task}", "summary.log"),
    benchmark:
        res("benchmarks", "evaluate", "{task}", "summary.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        code=code_version("evaluate"),
    shell:
        "dplm2 evaluate summary --task {wildcards.task} --metrics {input} "
        "--out {output.table} --markdown {output.md} > {log} 2>&1"


EVALUATE_TARGETS = [
    path
    for task in EVAL_TASKS
    for path in eval_metric_tables(task)
    + [res("evaluate", task, "summary.parquet"), res("evaluate", task, "summary.md")]
]
