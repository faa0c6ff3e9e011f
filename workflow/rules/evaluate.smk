# evaluate stage rules: one rule (and one table) per metric, results/evaluate/{task}/{metric}.parquet,
# plus summary.parquet + summary.md per task. See src/dplm2/evaluate/ and src/dplm2/schemas/evaluate.schema.yaml.
#
# Recompute one metric only: delete its table and ask for it, e.g.
#   rm results/evaluate/cogen/diversity.parquet
#   snakemake --cores 2 results/evaluate/cogen/diversity.parquet
# (the refold cache and the other metric tables are left alone; `summary` reruns when asked for).


include: "evaluate_common.smk"


wildcard_constraints:
    task="cogen|folding|inverse_folding|scaffold|ss_cogen",
    npart=r"\d{5}",


rule evaluate_refold:
    """Fold every sample's sequence once with the folding backend (cached for all sc metrics)."""
    input:
        unpack(eval_refold_models),
        samples=res("generate", "{task}", "samples.parquet"),
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


rule evaluate_self_consistency:
    """scTM, scRMSD, pLDDT and both designability rules (cogen, inverse folding, scaffold)."""
    input:
        samples=res("generate", "{task}", "samples.parquet"),
        refold=res("evaluate", "{task}", "refold.parquet"),
    output:
        res("evaluate", "{task}", "self_consistency.parquet"),
    log:
        res("logs", "evaluate", "{task}", "self_consistency.log"),
    benchmark:
        res("benchmarks", "evaluate", "{task}", "self_consistency.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        code=code_version("evaluate"),
        cfg=section("evaluate", "self_consistency"),
    shell:
        "dplm2 evaluate self-consistency --task {wildcards.task} --samples {input.samples} "
        "--refold {input.refold} --out {output} --params {params.cfg:q} > {log} 2>&1"


rule evaluate_fold_accuracy:
    """Folding task: RMSD / TM-score of the predicted vs the true structure."""
    input:
        samples=res("generate", "{task}", "samples.parquet"),
    output:
        res("evaluate", "{task}", "fold_accuracy.parquet"),
    log:
        res("logs", "evaluate", "{task}", "fold_accuracy.log"),
    benchmark:
        res("benchmarks", "evaluate", "{task}", "fold_accuracy.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        code=code_version("evaluate"),
        cfg=section("evaluate", "fold_accuracy"),
    shell:
        "dplm2 evaluate fold-accuracy --task {wildcards.task} --samples {input.samples} "
        "--out {output} --params {params.cfg:q} > {log} 2>&1"


rule evaluate_recovery:
    """Inverse folding: amino-acid recovery against the native sequence."""
    input:
        samples=res("generate", "{task}", "samples.parquet"),
    output:
        res("evaluate", "{task}", "recovery.parquet"),
    log:
        res("logs", "evaluate", "{task}", "recovery.log"),
    benchmark:
        res("benchmarks", "evaluate", "{task}", "recovery.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        code=code_version("evaluate"),
    shell:
        "dplm2 evaluate recovery --task {wildcards.task} --samples {input.samples} "
        "--out {output} > {log} 2>&1"


rule evaluate_diversity:
    """Inner-TM per length and clusters of the designable samples (TM-align or Foldseek)."""
    input:
        samples=res("generate", "{task}", "samples.parquet"),
        sc=res("evaluate", "{task}", "self_consistency.parquet"),
    output:
        res("evaluate", "{task}", "diversity.parquet"),
    log:
        res("logs", "evaluate", "{task}", "diversity.log"),
    benchmark:
        res("benchmarks", "evaluate", "{task}", "diversity.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        code=code_version("evaluate"),
        cfg=section("evaluate", "diversity"),
    shell:
        "dplm2 evaluate diversity --task {wildcards.task} --samples {input.samples} "
        "--self-consistency {input.sc} --out {output} --threads {threads} "
        "--params {params.cfg:q} > {log} 2>&1"


rule evaluate_novelty_part:
    """Best training chain of each sample in one range of the references (novelty scatter)."""
    # one of `evaluate.novelty.parts` jobs (default: one per chain shard), each on all its threads
    input:
        samples=res("generate", "{task}", "samples.parquet"),
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


rule evaluate_novelty:
    """Max TM-score of each sample to the training chains (pdb-TM): merge of the parts."""
    input:
        samples=res("generate", "{task}", "samples.parquet"),
        parts=eval_novelty_parts,
    output:
        res("evaluate", "{task}", "novelty.parquet"),
    log:
        res("logs", "evaluate", "{task}", "novelty.log"),
    benchmark:
        res("benchmarks", "evaluate", "{task}", "novelty.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        code=code_version("evaluate"),
    shell:
        "dplm2 evaluate novelty-merge --task {wildcards.task} --samples {input.samples} "
        "--part-tables {input.parts} --out {output} > {log} 2>&1"


rule evaluate_motif:
    """Motif scaffolding: motif RMSD on the motif, success with scTM, problems solved."""
    input:
        samples=res("generate", "{task}", "samples.parquet"),
        sc=res("evaluate", "{task}", "self_consistency.parquet"),
    output:
        res("evaluate", "{task}", "motif.parquet"),
    log:
        res("logs", "evaluate", "{task}", "motif.log"),
    benchmark:
        res("benchmarks", "evaluate", "{task}", "motif.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        code=code_version("evaluate"),
        cfg=section("evaluate", "motif"),
    shell:
        "dplm2 evaluate motif --task {wildcards.task} --samples {input.samples} "
        "--self-consistency {input.sc} --out {output} --params {params.cfg:q} > {log} 2>&1"


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
