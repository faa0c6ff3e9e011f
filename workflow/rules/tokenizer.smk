# tokenizer stage: train the LFQ structure tokenizer on the chain shards, then tokenize every
# chain shard (one job per shard, all splits in one file with a `split` column).
#
#   results/chains/chains-{i}-of-{n}.parquet --train_tokenizer--> results/tokenizer/
#       model.safetensors, config.json, metrics.parquet, training_record.json, state/
#   results/chains/chains-{i}-of-{n}.parquet + tokenizer --tokenize--> results/tokens/tokens-{i}-of-{n}.parquet
#
# n = config["process"]["n_shards"] (2 when the key is absent). The weights are not protected():
# a rerun after a code or config change must be able to replace them; the training state in
# state/ makes an interrupted run resume where it stopped.
#
#   config released.tokenizer (hub id or folder) --import_released_tokenizer--> results/released/tokenizer/
#       config.json + model.safetensors (the layout of results/tokenizer); read instead of
#       results/tokenizer by tokenize and every other consumer when released.tokenizer is set
#       (TOKENIZER_DIR in common.smk), so train_tokenizer is not needed.

import os


TOK_RELEASED_FILES = ["model.safetensors", "config.json", "released_from.json"]
# The tokenizer the workflow uses (trained here, or the imported release) + the token shards.
TOKENIZER_TARGETS = (
    [res("released", "tokenizer", f) for f in TOK_RELEASED_FILES]
    if RELEASED_TOKENIZER
    else [
        res("tokenizer", "model.safetensors"),
        res("tokenizer", "config.json"),
        res("tokenizer", "metrics.parquet"),
        res("tokenizer", "training_record.json"),
    ]
) + TOKEN_SHARDS


wildcard_constraints:
    tokshard=r"\d{5}-of-\d{5}",


# model.encoder esm_if1: ESM-IF1's weights (tokenizer.encoder_checkpoint), fetched first when a URL.
TOK_ENCODER_SOURCE = (
    config["tokenizer"]["encoder_checkpoint"] if config["tokenizer"]["model"]["encoder"] == "esm_if1" else None
)
TOK_ENCODER_IS_URL = bool(TOK_ENCODER_SOURCE) and "://" in TOK_ENCODER_SOURCE
TOK_ENCODER_FILE = (
    res("tokenizer_encoder", "esm_if1.pt")
    if TOK_ENCODER_IS_URL
    else TOK_ENCODER_SOURCE
)


localrules:
    fetch_tokenizer_encoder,


rule fetch_tokenizer_encoder:
    """ESM-IF1's pretrained weights for tokenizer.model.encoder esm_if1 (a URL in
    tokenizer.encoder_checkpoint), downloaded once, atomically, with retries."""
    output:
        res("tokenizer_encoder", "esm_if1.pt"),
    log:
        res("logs", "tokenizer", "fetch_encoder.log"),
    benchmark:
        res("benchmarks", "tokenizer", "fetch_encoder.tsv")
    conda:
        "../../envs/torch.yaml"
    params:
        url=TOK_ENCODER_SOURCE if TOK_ENCODER_IS_URL else "",
    shell:
        "dplm2 tokenizer fetch-encoder --url {params.url:q} --out {output:q} > {log:q} 2>&1"


rule train_tokenizer:
    input:
        chains=CHAIN_SHARDS,
        encoder=[TOK_ENCODER_FILE] if TOK_ENCODER_FILE else [],
    output:
        weights=res("tokenizer", "model.safetensors"),
        config=res("tokenizer", "config.json"),
        metrics=res("tokenizer", "metrics.parquet"),
        record=res("tokenizer", "training_record.json"),
    log:
        res("logs", "tokenizer", "train_tokenizer.log"),
    benchmark:
        res("benchmarks", "tokenizer", "train_tokenizer.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
        gpu=0,  # a GPU profile sets `set-resources: train_tokenizer:gpu=1`
    params:
        code=code_version("tokenizer"),
        cfg=section("tokenizer"),
        out_dir=lambda wc, output: os.path.dirname(output.weights),
        encoder=lambda wc, input: (
            f"--encoder-checkpoint '{input.encoder[0]}'" if input.encoder else ""
        ),
    shell:
        "dplm2 tokenizer train --chains {input.chains:q} --out-dir {params.out_dir:q} "
        "--threads {threads} --params {params.cfg:q} {params.encoder} > {log:q} 2>&1"


localrules:
    import_released_tokenizer,


rule import_released_tokenizer:
    """The released structure tokenizer (config released.tokenizer) converted once into the
    layout of results/tokenizer."""
    input:
        released_source_files(
            RELEASED_TOKENIZER,
            [
                "config.yaml",
                "dplm2_struct_tokenizer.ckpt",
                ".hydra/config.yaml",
                ".hydra/dplm2_struct_tokenizer.ckpt",
            ],
        ),
    output:
        [res("released", "tokenizer", f) for f in TOK_RELEASED_FILES],
    log:
        res("logs", "released", "import_tokenizer.log"),
    benchmark:
        res("benchmarks", "released", "import_tokenizer.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    params:
        code=code_version("tokenizer"),
        source=RELEASED_TOKENIZER or "",
        out=lambda wc, output: os.path.dirname(output[0]),
    shell:
        "dplm2 tokenizer import-official --source {params.source:q} --out {params.out:q} "
        "> {log:q} 2>&1"


rule tokenize:
    input:
        chains=res("chains", "chains-{tokshard}.parquet"),
        **TOKENIZER_FILES,
    output:
        res("tokens", "tokens-{tokshard}.parquet"),
    log:
        res("logs", "tokenizer", "tokenize-{tokshard}.log"),
    benchmark:
        res("benchmarks", "tokenizer", "tokenize-{tokshard}.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 3000 * attempt,
        runtime=lambda wc, attempt: 20 * attempt,
        gpu=0,
    params:
        code=code_version("tokenizer"),
        cfg=section("tokenizer", "tokenize"),
        tokenizer=lambda wc, input: os.path.dirname(input.tok_weights),
    shell:
        "dplm2 tokenizer tokenize --chains {input.chains:q} --tokenizer {params.tokenizer:q} "
        "--out {output:q} --threads {threads} --params {params.cfg:q} > {log:q} 2>&1"
