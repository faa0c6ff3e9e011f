# embed stage: per-protein / per-residue representations from a chosen DPLM-2 layer.
#
#   LM (results/lm/model, or results/released/lm with config released.lm)
#   + tokenizer (results/tokenizer, or results/released/tokenizer; for structure files)
#   --embed--> results/embed/<set>.parquet (or .npy)
#
# One job per named input set (config `embed.sets`): FASTA / structure files or folders, or the
# workflow's token shards (a split of them). Which LM and tokenizer: LM_FILES / TOKENIZER_FILES
# (common.smk, config section `released`).

import os


EMBED = config["embed"]
EMBED_FORMAT = EMBED["settings"]["format"]
EMBED_SETS = EMBED["sets"]

EMBED_TARGETS = [res("embed", f"{name}.{EMBED_FORMAT}") for name in EMBED_SETS]


rule embed:
    wildcard_constraints:
        name="[A-Za-z0-9_-]+",
    input:
        **LM_FILES,
        **TOKENIZER_FILES,
        # a set's own files, or the token shards (so new inputs rerun it)
        data=lambda wc: (
            TOKEN_SHARDS if EMBED_SETS[wc.name]["source"] == "tokens" else EMBED_SETS[wc.name]["paths"]
        ),
    output:
        res("embed", f"{{name}}.{EMBED_FORMAT}"),
    log:
        res("logs", "embed", "{name}.log"),
    benchmark:
        res("benchmarks", "embed", "{name}.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    params:
        code=code_version("embed", "lm"),
        cfg=section("embed", "settings"),
        inputs=lambda wc, input: " ".join(f"'{p}'" for p in input.data),
        extra=lambda wc: (
            f"--split {EMBED_SETS[wc.name]['split']}"
            if EMBED_SETS[wc.name]["source"] == "tokens" and EMBED_SETS[wc.name]["split"]
            else ""
        ),
        lm=lambda wc, input: os.path.dirname(input.lm_weights),
        tokenizer=lambda wc, input: os.path.dirname(input.tok_weights),
    shell:
        "dplm2 embed --lm {params.lm:q} --tokenizer {params.tokenizer:q} "
        "--inputs {params.inputs} {params.extra} --out {output:q} --threads {threads} "
        "--params {params.cfg:q} > {log:q} 2>&1"
