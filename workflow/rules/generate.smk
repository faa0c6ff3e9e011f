# generate stage: sample proteins from the trained LM, decode structures with the tokenizer.
#
#   LM (results/lm/model, or results/released/lm with config released.lm)
#   + tokenizer (results/tokenizer, or results/released/tokenizer) --generate_<task>--> results/generate/<task>/
#       samples.parquet (one row per sample), aatype.fasta, struct_token.fasta, pdb/, references/
#
# One rule per task; config `generate.tasks` picks which the workflow builds. Folding and
# inverse folding take the `split` rows of the token shards (true backbones from the chain
# shards); scaffolding reads the benchmark table and/or the user's own structure files.
# ss_cogen (secondary-structure-conditioned co-generation) needs the p(SS | token) table that
# rule ss_table counts on the training chains: results/generate/ss_table.parquet.

import json
import os

GEN_TASKS = [t for t in config["generate"]["tasks"] if lm_serves(t)]
if len(GEN_TASKS) < len(config["generate"]["tasks"]):
    logger.warning(
        "generate.tasks: skipping "
        + ", ".join(f"{t} ({BIT_REFUSED_TASKS[t]})" for t in config["generate"]["tasks"] if not lm_serves(t))
        + ": the LM is a DPLM-2 Bit model"
    )

GENERATE_TARGETS = [res("generate", task, "samples.parquet") for task in GEN_TASKS]


# Narrow params: the keys one task's command reads (editing another task reruns nothing).
GEN_COMMON = {k: config["generate"][k] for k in ("seed", "batch_size", "decode_batch_size")}
GEN_PARAMS = {
    task: json.dumps({**GEN_COMMON, task: config["generate"].get(task, {})}, sort_keys=True)
    for task in ("cogen", "sequence", "backbone", "folding", "inverse_folding", "scaffold", "ss_cogen")
}
GEN_SS = config["generate"].get("ss_cogen", {})
GEN_SS_TABLE_PARAMS = json.dumps(
    {"ss_cogen": {k: GEN_SS[k] for k in ("table_split", "table_smoothing") if k in GEN_SS}},
    sort_keys=True,
)

# Scaffolding inputs: the benchmark table and the user problems' structure files.
GEN_SCAFFOLD_INPUTS = [p["pdb"] for p in config["generate"]["scaffold"].get("problems", [])] + (
    [config["generate"]["scaffold"]["benchmark"]]
    if config["generate"]["scaffold"].get("benchmark")
    else []
)

# The LM and tokenizer every task reads: the workflow's own or the released ones (common.smk).
GEN_MODELS = dict(**LM_FILES, **TOKENIZER_FILES)


rule generate_cogen:
    input:
        **GEN_MODELS,
    output:
        samples=res("generate", "cogen", "samples.parquet"),
        aatype=res("generate", "cogen", "aatype.fasta"),
        struct_token=res("generate", "cogen", "struct_token.fasta"),
        pdb=directory(res("generate", "cogen", "pdb")),
    log:
        res("logs", "generate", "cogen.log"),
    benchmark:
        res("benchmarks", "generate", "cogen.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
        gpu=0,
    params:
        code=code_version("generate", "lm", "tokenizer"),
        cfg=GEN_PARAMS["cogen"],
        command="cogen",
        lm=lambda wc, input: os.path.dirname(input.lm_weights),
        tokenizer=lambda wc, input: os.path.dirname(input.tok_weights),
        out=lambda wc, output: os.path.dirname(output.samples),
    shell:
        "dplm2 generate {params.command} --lm {params.lm:q} --tokenizer {params.tokenizer:q} "
        "--out {params.out:q} --threads {threads} --params {params.cfg:q} > {log:q} 2>&1"


rule generate_sequence:
    input:
        bit_model_check=lm_refusal("sequence"),
        **GEN_MODELS,
    output:
        samples=res("generate", "sequence", "samples.parquet"),
        aatype=res("generate", "sequence", "aatype.fasta"),
        struct_token=res("generate", "sequence", "struct_token.fasta"),
    log:
        res("logs", "generate", "sequence.log"),
    benchmark:
        res("benchmarks", "generate", "sequence.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
        gpu=0,
    params:
        code=code_version("generate", "lm", "tokenizer"),
        cfg=GEN_PARAMS["sequence"],
        command="sequence",
        lm=lambda wc, input: os.path.dirname(input.lm_weights),
        tokenizer=lambda wc, input: os.path.dirname(input.tok_weights),
        out=lambda wc, output: os.path.dirname(output.samples),
    shell:
        "dplm2 generate {params.command} --lm {params.lm:q} --tokenizer {params.tokenizer:q} "
        "--out {params.out:q} --threads {threads} --params {params.cfg:q} > {log:q} 2>&1"


rule generate_backbone:
    input:
        bit_model_check=lm_refusal("backbone"),
        **GEN_MODELS,
    output:
        samples=res("generate", "backbone", "samples.parquet"),
        aatype=res("generate", "backbone", "aatype.fasta"),
        struct_token=res("generate", "backbone", "struct_token.fasta"),
        pdb=directory(res("generate", "backbone", "pdb")),
    log:
        res("logs", "generate", "backbone.log"),
    benchmark:
        res("benchmarks", "generate", "backbone.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
        gpu=0,
    params:
        code=code_version("generate", "lm", "tokenizer"),
        cfg=GEN_PARAMS["backbone"],
        command="backbone",
        lm=lambda wc, input: os.path.dirname(input.lm_weights),
        tokenizer=lambda wc, input: os.path.dirname(input.tok_weights),
        out=lambda wc, output: os.path.dirname(output.samples),
    shell:
        "dplm2 generate {params.command} --lm {params.lm:q} --tokenizer {params.tokenizer:q} "
        "--out {params.out:q} --threads {threads} --params {params.cfg:q} > {log:q} 2>&1"


rule generate_folding:
    input:
        **GEN_MODELS,
        tokens=TOKEN_SHARDS,
        chains=CHAIN_SHARDS,
    output:
        samples=res("generate", "folding", "samples.parquet"),
        aatype=res("generate", "folding", "aatype.fasta"),
        struct_token=res("generate", "folding", "struct_token.fasta"),
        pdb=directory(res("generate", "folding", "pdb")),
    log:
        res("logs", "generate", "folding.log"),
    benchmark:
        res("benchmarks", "generate", "folding.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
        gpu=0,
    params:
        code=code_version("generate", "lm", "tokenizer"),
        cfg=GEN_PARAMS["folding"],
        command="folding",
        lm=lambda wc, input: os.path.dirname(input.lm_weights),
        tokenizer=lambda wc, input: os.path.dirname(input.tok_weights),
        out=lambda wc, output: os.path.dirname(output.samples),
    shell:
        "dplm2 generate {params.command} --lm {params.lm:q} --tokenizer {params.tokenizer:q} "
        "--out {params.out:q} --threads {threads} --params {params.cfg:q} "
        "--tokens {input.tokens:q} --chains {input.chains:q} > {log:q} 2>&1"


rule generate_inverse_folding:
    input:
        **GEN_MODELS,
        tokens=TOKEN_SHARDS,
        chains=CHAIN_SHARDS,
    output:
        samples=res("generate", "inverse_folding", "samples.parquet"),
        aatype=res("generate", "inverse_folding", "aatype.fasta"),
        struct_token=res("generate", "inverse_folding", "struct_token.fasta"),
    log:
        res("logs", "generate", "inverse_folding.log"),
    benchmark:
        res("benchmarks", "generate", "inverse_folding.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
        gpu=0,
    params:
        code=code_version("generate", "lm", "tokenizer"),
        cfg=GEN_PARAMS["inverse_folding"],
        command="inverse-folding",
        lm=lambda wc, input: os.path.dirname(input.lm_weights),
        tokenizer=lambda wc, input: os.path.dirname(input.tok_weights),
        out=lambda wc, output: os.path.dirname(output.samples),
    shell:
        "dplm2 generate {params.command} --lm {params.lm:q} --tokenizer {params.tokenizer:q} "
        "--out {params.out:q} --threads {threads} --params {params.cfg:q} "
        "--tokens {input.tokens:q} --chains {input.chains:q} > {log:q} 2>&1"


rule generate_scaffold:
    input:
        **GEN_MODELS,
        problems=GEN_SCAFFOLD_INPUTS,
    output:
        samples=res("generate", "scaffold", "samples.parquet"),
        aatype=res("generate", "scaffold", "aatype.fasta"),
        struct_token=res("generate", "scaffold", "struct_token.fasta"),
        pdb=directory(res("generate", "scaffold", "pdb")),
    log:
        res("logs", "generate", "scaffold.log"),
    benchmark:
        res("benchmarks", "generate", "scaffold.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
        gpu=0,
    params:
        code=code_version("generate", "lm", "tokenizer"),
        cfg=GEN_PARAMS["scaffold"],
        command="scaffold",
        lm=lambda wc, input: os.path.dirname(input.lm_weights),
        tokenizer=lambda wc, input: os.path.dirname(input.tok_weights),
        out=lambda wc, output: os.path.dirname(output.samples),
    shell:
        "dplm2 generate {params.command} --lm {params.lm:q} --tokenizer {params.tokenizer:q} "
        "--out {params.out:q} --threads {threads} --params {params.cfg:q} > {log:q} 2>&1"


rule ss_table:
    """p(SS | structure token): tokens of the training chains x P-SEA on their real CA traces."""
    input:
        tokens=TOKEN_SHARDS,
        chains=CHAIN_SHARDS,
    output:
        res("generate", "ss_table.parquet"),
    log:
        res("logs", "generate", "ss_table.log"),
    benchmark:
        res("benchmarks", "generate", "ss_table.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    params:
        code=code_version("generate", "process", "tokenizer"),
        cfg=GEN_SS_TABLE_PARAMS,
    shell:
        "dplm2 generate ss-table --tokens {input.tokens:q} --chains {input.chains:q} "
        "--out {output:q} --params {params.cfg:q} > {log:q} 2>&1"


rule generate_ss_cogen:
    input:
        bit_model_check=lm_refusal("ss_cogen"),
        **GEN_MODELS,
        table=res("generate", "ss_table.parquet"),
    output:
        samples=res("generate", "ss_cogen", "samples.parquet"),
        aatype=res("generate", "ss_cogen", "aatype.fasta"),
        struct_token=res("generate", "ss_cogen", "struct_token.fasta"),
        pdb=directory(res("generate", "ss_cogen", "pdb")),
    log:
        res("logs", "generate", "ss_cogen.log"),
    benchmark:
        res("benchmarks", "generate", "ss_cogen.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
        gpu=0,
    params:
        code=code_version("generate", "lm", "tokenizer"),
        cfg=GEN_PARAMS["ss_cogen"],
        command="ss-cogen",
        lm=lambda wc, input: os.path.dirname(input.lm_weights),
        tokenizer=lambda wc, input: os.path.dirname(input.tok_weights),
        out=lambda wc, output: os.path.dirname(output.samples),
    shell:
        "dplm2 generate {params.command} --lm {params.lm:q} --tokenizer {params.tokenizer:q} "
        "--out {params.out:q} --threads {threads} --params {params.cfg:q} "
        "--ss-table {input.table:q} > {log:q} 2>&1"
