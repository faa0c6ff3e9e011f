# Helpers of the generate rule file (kept apart from the rules, as Snakemake's linter asks);
# included by generate.smk.

import json

GEN = config["generate"]
GEN_TASKS = [t for t in GEN["tasks"] if lm_serves(t)]
if len(GEN_TASKS) < len(GEN["tasks"]):
    logger.warning(
        "generate.tasks: skipping "
        + ", ".join(f"{t} ({BIT_REFUSED_TASKS[t]})" for t in GEN["tasks"] if not lm_serves(t))
        + ": the LM is a DPLM-2 Bit model"
    )

# Tasks whose samples carry no structure to write (sequences alone, or sequences designed for a
# given backbone): their rule has no pdb/ output.
GEN_SEQUENCE_TASKS = ["sequence", "inverse_folding"]
GEN_STRUCTURE_TASKS = [t for t in GENERATE_TASKS if t not in GEN_SEQUENCE_TASKS]

# Narrow params: the keys one task's command reads (editing another task reruns nothing).
GEN_PARAMS = {
    task: json.dumps(
        {**{k: GEN[k] for k in ("seed", "batch_size", "decode_batch_size")}, task: GEN[task]},
        sort_keys=True,
    )
    for task in GENERATE_TASKS
}
GEN_SS_TABLE_PARAMS = json.dumps(
    {"ss_cogen": {k: GEN["ss_cogen"][k] for k in ("table_split", "table_smoothing")}},
    sort_keys=True,
)


def gen_task_inputs(wildcards):
    """The LM and tokenizer every task reads (the workflow's own or the released ones:
    common.smk), and the task's own inputs; those named tokens, chains and ss_table are passed
    to the command as --tokens, --chains and --ss-table (gen_input_args)."""
    own = {
        "folding": dict(tokens=TOKEN_SHARDS, chains=CHAIN_SHARDS),
        "inverse_folding": dict(tokens=TOKEN_SHARDS, chains=CHAIN_SHARDS),
        # read through the params (scaffold.problems / scaffold.benchmark): inputs so that
        # editing the files reruns the task
        "scaffold": dict(
            problems=[p["pdb"] for p in GEN["scaffold"]["problems"]]
            + ([GEN["scaffold"]["benchmark"]] if GEN["scaffold"]["benchmark"] else [])
        ),
        "ss_cogen": dict(ss_table=rules.ss_table.output[0]),
    }
    return {**LM_FILES, **TOKENIZER_FILES, **own.get(wildcards.task, {})}


def gen_input_args(wildcards, input):
    return input_flags(input, ("tokens", "chains", "ss_table"))
