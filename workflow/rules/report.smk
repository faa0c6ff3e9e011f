# report stage rules: figures for `snakemake --report` (metric distributions per length per task,
# the best and typical designs in 3D per task, training curves of both trainings). Build the page with:
#   snakemake --cores 2 && snakemake --report results/report.html


rule report_metric_plots:
    """Distribution of each metric per sample length, one figure per task."""
    input:
        lambda wildcards: eval_metric_tables(wildcards.task),
    output:
        report(
            res("report", "evaluate_{task}.png"),
            caption="../report/metric_distributions.rst",
            category="Evaluation",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "metric distributions per length"},
        ),
    log:
        res("logs", "report", "evaluate_{task}.log"),
    benchmark:
        res("benchmarks", "report", "evaluate_{task}.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        code=code_version("evaluate"),
    shell:
        "dplm2 evaluate plot-metrics --task {wildcards.task} --metrics {input} "
        "--out {output} > {log} 2>&1"


rule report_summary_page:
    """The task's summary table, attached to the report as a page."""
    input:
        rules.evaluate_summary.output.md,
    output:
        report(
            res("report", "summary_{task}.md"),
            caption="../report/summary.rst",
            category="Evaluation",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "summary table"},
        ),
    log:
        res("logs", "report", "summary_{task}.log"),
    conda:
        "../../envs/torch.yaml"
    benchmark:
        res("benchmarks", "report", "summary_{task}.tsv")
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "cp {input} {output} 2> {log}"


rule report_designs:
    """The task's best and typical designs in 3D (cartoon, pLDDT colours; 3Dmol.js inline)."""
    input:
        samples=lambda wildcards: eval_samples(wildcards.task),
        metrics=lambda wildcards: eval_metric_tables(wildcards.task),
        refold=lambda wildcards: (
            [] if wildcards.task == "folding" else [res("evaluate", wildcards.task, "refold.parquet")]
        ),
    output:
        report(
            res("report", "designs_{task}.html"),
            caption="../report/designs.rst",
            category="Evaluation",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "designs in 3D"},
        ),
    log:
        res("logs", "report", "designs_{task}.log"),
    benchmark:
        res("benchmarks", "report", "designs_{task}.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        code=code_version("evaluate"),
        refold=lambda wildcards, input: f"--refold {input.refold[0]}" if input.refold else "",
    shell:
        "dplm2 evaluate views --task {wildcards.task} --samples {input.samples} "
        "--metrics {input.metrics} {params.refold} --out {output} > {log} 2>&1"


rule report_training:
    """Training curves of one model (tokenizer or lm), one panel per kind of quantity."""
    input:
        lambda wildcards: report_training_inputs()[wildcards.model],
    output:
        report(
            res("report", "training_{model}.png"),
            caption="../report/training.rst",
            category="Training",
            labels={"model": "{model}", "figure": "training curves"},
        ),
    wildcard_constraints:
        model="tokenizer|lm",
    log:
        res("logs", "report", "training_{model}.log"),
    benchmark:
        res("benchmarks", "report", "training_{model}.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        code=code_version("evaluate"),
    shell:
        "dplm2 evaluate plot-training --metrics {input} --out {output} > {log} 2>&1"


REPORT_TARGETS = [
    path
    for task in EVAL_TASKS
    for path in (
        res("report", f"evaluate_{task}.png"),
        res("report", f"summary_{task}.md"),
        res("report", f"designs_{task}.html"),
    )
] + [res("report", f"training_{model}.png") for model in report_training_inputs()]
