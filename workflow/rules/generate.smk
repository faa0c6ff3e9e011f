# generate stage: sample proteins from the trained LM, decode structures with the tokenizer.
#
#   LM (results/lm/model, or results/released/lm with config released.lm)
#   + tokenizer (results/tokenizer, or results/released/tokenizer) --generate--> results/generate/<task>/
#       samples.parquet (one row per sample), aatype.fasta, struct_token.fasta, pdb/, references/
#
# One rule over the {task} wildcard (`dplm2 generate <task>`); config `generate.tasks` picks which
# the workflow builds. Folding and inverse folding take the `split` rows of the token shards (true
# backbones from the chain shards); scaffolding reads the benchmark table and/or the user's own
# structure files; ss_cogen (secondary-structure-conditioned co-generation) reads the
# p(SS | token) table that rule ss_table counts on the training chains.

import os


include: "generate_common.smk"


GENERATE_TARGETS = [res("generate", task, "samples.parquet") for task in GEN_TASKS]


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


rule generate:
    """Samples of one task ({task}/samples.parquet; pdb/: decoded structures, where made)."""
    input:
        unpack(gen_task_inputs),
        bit_model_check=lm_refusal,
    output:
        samples=res("generate", "{task}", "samples.parquet"),
        aatype=res("generate", "{task}", "aatype.fasta"),
        struct_token=res("generate", "{task}", "struct_token.fasta"),
        pdb=directory(res("generate", "{task}", "pdb")),
    wildcard_constraints:
        task="|".join(GEN_STRUCTURE_TASKS),
    log:
        res("logs", "generate", "{task}.log"),
    benchmark:
        res("benchmarks", "generate", "{task}.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
        gpu=0,
    params:
        code=code_version("generate", "lm", "tokenizer"),
        cfg=lambda wc: GEN_PARAMS[wc.task],
        command=lambda wc: wc.task.replace("_", "-"),
        inputs=gen_input_args,
        lm=lambda wc, input: os.path.dirname(input.lm_weights),
        tokenizer=lambda wc, input: os.path.dirname(input.tok_weights),
        out=lambda wc, output: os.path.dirname(output.samples),
    shell:
        "dplm2 generate {params.command} --lm {params.lm:q} --tokenizer {params.tokenizer:q} "
        "--out {params.out:q} --threads {threads} --params {params.cfg:q} {params.inputs} > {log:q} 2>&1"


use rule generate as generate_sequences with:
    output:
        samples=res("generate", "{task}", "samples.parquet"),
        aatype=res("generate", "{task}", "aatype.fasta"),
        struct_token=res("generate", "{task}", "struct_token.fasta"),
    wildcard_constraints:
        task="|".join(GEN_SEQUENCE_TASKS),
