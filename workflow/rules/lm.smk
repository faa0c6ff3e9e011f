# lm stage: DPLM-2 language model.
#
#   config lm.init (ESM-family checkpoint or from scratch) --warm_start--> results/lm/init/
#       config.json, model.safetensors, vocab.txt, dplm2_vocab.json, init.json
#   results/lm/init/ + results/tokens/tokens-{i}-of-{n}.parquet --train_lm--> results/lm/
#       model/ (config.json + model.safetensors + vocabulary: EsmForMaskedLM.from_pretrained
#       and dplm2.lm.model.DPLM2LM.from_pretrained read it), metrics.parquet, state/ (resumable)
#
# n = config["process"]["n_shards"] (2 when the key is absent). train_lm always launches through
# torchrun (one code path for 1..N processes); a GPU profile sets `gpu` and lm.nproc_per_node.
# state/ is not an output: an interrupted run resumes; a run with another config starts over.
#
#   config released.lm (hub id or folder) --import_released_lm--> results/released/lm/
#       same files as results/lm/model + official.json; read instead of results/lm/model by
#       every consumer when released.lm is set (LM_DIR in common.smk), so train_lm is not needed.

import json
import os

LM_INIT_FILES = ["config.json", "model.safetensors", "vocab.txt", "dplm2_vocab.json", "init.json"]
LM_MODEL_FILES = ["config.json", "model.safetensors", "vocab.txt", "dplm2_vocab.json"]

LM_RELEASED_FILES = LM_MODEL_FILES + ["official.json"]
# The LM the workflow uses: trained here, or (released.lm) the imported release.
LM_TARGETS = (
    [res("released", "lm", f) for f in LM_RELEASED_FILES]
    if RELEASED_LM
    else [res("lm", "model", f) for f in LM_MODEL_FILES] + [res("lm", "metrics.parquet")]
)


localrules:
    import_released_lm,


rule import_released_lm:
    """A released DPLM-2 LM (config released.lm) converted once into the layout of ours."""
    input:
        released_source_files(
            RELEASED_LM, ["config.json", "vocab.txt", "model.safetensors", "pytorch_model.bin"]
        ),
    output:
        [res("released", "lm", f) for f in LM_RELEASED_FILES],
    log:
        res("logs", "released", "import_lm.log"),
    benchmark:
        res("benchmarks", "released", "import_lm.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    params:
        code=code_version("lm"),
        source=RELEASED_LM or "",
        out=lambda wc, output: os.path.dirname(output[0]),
    shell:
        "dplm2 lm import-official --source {params.source:q} --out {params.out:q} > {log:q} 2>&1"


rule warm_start:
    output:
        [res("lm", "init", f) for f in LM_INIT_FILES],
    log:
        res("logs", "lm", "warm_start.log"),
    benchmark:
        res("benchmarks", "lm", "warm_start.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 20 * attempt,
    params:
        code=code_version("lm"),
        # only the init keys: changing training settings never re-runs the warm start
        cfg=json.dumps({k: config["lm"][k] for k in ("init", "objective")}, sort_keys=True),
        out_dir=lambda wc, output: os.path.dirname(output[0]),
    shell:
        "dplm2 lm warm-start --out {params.out_dir:q} --params {params.cfg:q} > {log:q} 2>&1"


rule train_lm:
    input:
        init=rules.warm_start.output,
        shards=TOKEN_SHARDS,
    output:
        model=[res("lm", "model", f) for f in LM_MODEL_FILES],
        metrics=res("lm", "metrics.parquet"),
    log:
        res("logs", "lm", "train_lm.log"),
    benchmark:
        res("benchmarks", "lm", "train_lm.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 6000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
        gpu=0,  # a GPU profile sets `set-resources: train_lm:gpu=N` and `nproc=N`
        # torchrun processes: a resource, so a profile that grants N GPUs also starts N ranks.
        nproc=config["lm"]["nproc_per_node"],
    params:
        code=code_version("lm"),
        cfg=section("lm"),
        init_dir=lambda wc, input: os.path.dirname(input.init[0]),
        out_dir=lambda wc, output: os.path.dirname(output.metrics),
        model_dir=lambda wc, output: os.path.dirname(output.model[0]),
    shell:
        "torchrun --standalone --nproc_per_node={resources.nproc} -m dplm2.cli lm train "
        "--init {params.init_dir:q} --shards {input.shards:q} --out {params.out_dir:q} "
        "--model {params.model_dir:q} --threads $(( {threads} / {resources.nproc} > 0 ? "
        "{threads} / {resources.nproc} : 1 )) --params {params.cfg:q} > {log:q} 2>&1"
