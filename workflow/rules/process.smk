# process stage: download manifests (+ the local sources' manifest) -> parse shards (one job
# each) -> gather: Rg filter, dedup, split -> results/chains/chains-{i}-of-{n}.parquet +
# metadata.parquet + filter_report.md.
#
# Local sources (config section `local`: label -> folders / files / globs of your own
# structures) are listed by `local_manifest`; its inputs are the files found when the DAG is
# built, so adding, removing or editing a file reruns the stage.
#
# Parse shards take every `process.parse_shards`-th manifest row (round-robin over the pooled,
# sorted PDB + AFDB manifests); the count is a config value, so the DAG is known up front
# (no checkpoint). The parse shards are temp(): bulky, and rebuilt from the manifests.

import os

PROC = config["process"]
PROC_PARSE_N = PROC["parse_shards"]
PROC_PARSE_SHARDS = [f"{i:05d}-of-{PROC_PARSE_N:05d}" for i in range(PROC_PARSE_N)]

PROCESS_TARGETS = CHAIN_SHARDS + [
    res("chains", "metadata.parquet"),
    res("chains", "filter_report.md"),
]


wildcard_constraints:
    pshard=r"\d{5}",


rule local_manifest:
    input:
        local_files,
    output:
        res("process", "local_manifest.parquet"),
    log:
        res("logs", "process", "local_manifest.log"),
    benchmark:
        res("benchmarks", "process", "local_manifest.tsv")
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 1000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    params:
        code=code_version("process", "structure"),
        cfg=section("local"),
    shell:
        "dplm2 process local-manifest --params {params.cfg:q} --output {output:q} "
        "> {log:q} 2>&1"


rule process_parse:
    input:
        unpack(parse_manifests),
    output:
        temp(res("process", f"parsed-{{pshard}}-of-{PROC_PARSE_N:05d}.parquet")),
    log:
        res("logs", "process", "parse-{pshard}.log"),
    benchmark:
        res("benchmarks", "process", "parse-{pshard}.tsv")
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    params:
        code=code_version("process", "structure"),
        cfg=section("process"),
        shard=lambda wc: int(wc.pshard),
        shards=PROC_PARSE_N,
        local=lambda wc, input: f"--local-manifest {input.local!r}" if "local" in input.keys() else "",
    shell:
        "dplm2 process parse --pdb-manifest {input.pdb:q} --afdb-manifest {input.afdb:q} "
        "{params.local} --shard {params.shard} --shards {params.shards} --output {output:q} "
        "--params {params.cfg:q} > {log:q} 2>&1"


rule process_gather:
    input:
        [res("process", f"parsed-{s}.parquet") for s in PROC_PARSE_SHARDS],
    output:
        chains=CHAIN_SHARDS,
        metadata=res("chains", "metadata.parquet"),
        report=report(
            res("chains", "filter_report.md"),
            category="Data",
            labels={"stage": "process", "table": "filter report"},
        ),
    log:
        res("logs", "process", "gather.log"),
    benchmark:
        res("benchmarks", "process", "gather.tsv")
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    params:
        code=code_version("process", "structure"),
        cfg=section("process"),
        outdir=lambda wc, output: os.path.dirname(output.metadata),
    shell:
        "dplm2 process gather --parsed {input:q} --outdir {params.outdir:q} "
        "--params {params.cfg:q} > {log:q} 2>&1"
