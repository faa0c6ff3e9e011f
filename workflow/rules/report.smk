# report stage rules: figures for `snakemake --report` (metric distributions per length per task,
# loss curves of both trainings). Build the page with:
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
        res("evaluate", "{task}", "summary.md"),
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


rule report_loss_curves:
    """Loss curves of the tokenizer and LM trainings (train loss terms and validation)."""
    input:
        **report_loss_inputs(),
    output:
        report(
            res("report", "loss_curves.png"),
            caption="../report/loss_curves.rst",
            category="Training",
            labels={"figure": "loss curves"},
        ),
    log:
        res("logs", "report", "loss_curves.log"),
    benchmark:
        res("benchmarks", "report", "loss_curves.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        code=code_version("evaluate"),
        pairs=lambda wildcards, input: " ".join(f"{k}={v}" for k, v in input.items()),
    shell:
        "dplm2 evaluate plot-losses --metrics {params.pairs} --out {output} > {log} 2>&1"


REPORT_TARGETS = [
    path
    for task in EVAL_TASKS
    for path in (res("report", f"evaluate_{task}.png"), res("report", f"summary_{task}.md"))
] + ([res("report", "loss_curves.png")] if report_loss_inputs() else [])
