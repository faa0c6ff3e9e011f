# Helpers of the evaluate and report rule files (kept apart from the rules, as Snakemake's
# linter asks); included by evaluate.smk.

import shlex

EVAL = config["evaluate"]

# Tasks evaluated: those configured that the workflow's LM can generate (every generation task
# has a rule; a DPLM-2 Bit model refuses some).
EVAL_TASKS = [t for t in EVAL["tasks"] if lm_serves(t)]

# How evaluate_metric computes each metric table: the `dplm2 evaluate` command; the inputs
# besides the samples table, each passed as --<name>; whether the command takes --threads and
# its config section (--params evaluate.<metric>); the first attempt's runtime (min) and memory (MB).
EVAL_METRIC_RUN = {
    "self_consistency": dict(command="self-consistency", inputs=["refold"], params=True, runtime=60),
    "fold_accuracy": dict(command="fold-accuracy", params=True, runtime=60),
    "recovery": dict(command="recovery", runtime=30),
    "diversity": dict(
        command="diversity", inputs=["self_consistency"], threads=True, params=True, runtime=120
    ),
    "motif": dict(command="motif", inputs=["self_consistency"], params=True, runtime=30),
    # merge of the evaluate_novelty_part tables
    "novelty": dict(command="novelty-merge", inputs=["part_tables"], runtime=10, mem_mb=1000),
}
if set(EVAL_METRIC_RUN) != set(EVALUATE_METRICS):
    raise WorkflowError(f"evaluate_common.smk: EVAL_METRIC_RUN lacks {set(EVALUATE_METRICS) - set(EVAL_METRIC_RUN)}")


def eval_samples(task):
    return res("generate", task, "samples.parquet")


# Novelty scatters over the references: `evaluate.novelty.parts` jobs (default: one per chain
# shard), merged by evaluate_metric's novelty table.
EVAL_NOVELTY_PARTS = int(EVAL["novelty"]["parts"] or N_SHARDS)


def eval_novelty_parts(wildcards):
    return [
        res("evaluate", wildcards.task, "novelty", f"part-{k:05d}-of-{EVAL_NOVELTY_PARTS:05d}.parquet")
        for k in range(EVAL_NOVELTY_PARTS)
    ]


def eval_metric_inputs(wildcards):
    task, wanted = wildcards.task, EVAL_METRIC_RUN[wildcards.metric].get("inputs", [])
    found = {
        "refold": res("evaluate", task, "refold.parquet"),
        "self_consistency": res("evaluate", task, "self_consistency.parquet"),
        "part_tables": eval_novelty_parts(wildcards),
    }
    return {"samples": eval_samples(task), **{name: found[name] for name in wanted}}


def eval_metric_args(wildcards, input, output, threads):
    """The `dplm2 evaluate` command line of one metric table (EVAL_METRIC_RUN)."""
    run = EVAL_METRIC_RUN[wildcards.metric]
    args = [run["command"], "--task", wildcards.task, "--samples", input.samples]
    options = ["--out", output[0]]
    if run.get("threads"):
        options += ["--threads", str(threads)]
    if run.get("params"):
        options += ["--params", section("evaluate", wildcards.metric)]
    return " ".join([shlex.join(args), input_flags(input, run.get("inputs", [])), shlex.join(options)])


def eval_refold_models(wildcards):
    """The DPLM-2 folding backend reads the workflow's LM and tokenizer (trained here or
    released: LM_FILES / TOKENIZER_FILES in common.smk); ESMFold reads neither."""
    if EVAL["folding"]["backend"] != "dplm2":
        return {}
    return {"lm": LM_FILES["lm_weights"], "tokenizer": TOKENIZER_FILES["tok_weights"]}


def eval_refold_args(wildcards, input):
    if EVAL["folding"]["backend"] != "dplm2":
        return ""
    return f"--lm {Path(input.lm).parent} --tokenizer {Path(input.tokenizer).parent}"


def eval_metric_tables(task):
    return [res("evaluate", task, f"{m}.parquet") for m in TASK_METRICS[task]]


def report_training_inputs():
    """Training metrics tables; a model taken from a release (config `released`) has no
    training here to plot."""
    wanted = {}
    if not RELEASED_TOKENIZER:
        wanted["tokenizer"] = res("tokenizer", "metrics.parquet")
    if not RELEASED_LM:
        wanted["lm"] = res("lm", "metrics.parquet")
    return wanted
