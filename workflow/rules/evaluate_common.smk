# Helpers of the evaluate and report rule files (kept apart from the rules, as Snakemake's
# linter asks); included by evaluate.smk.

EVAL = config["evaluate"]

# Which metric tables each generation task gets (the paper's evaluation); mirrors dplm2.evaluate.config.TASK_METRICS.
EVAL_TASK_METRICS = {
    "cogen": ["self_consistency", "diversity", "novelty"],
    "folding": ["fold_accuracy"],
    "inverse_folding": ["recovery", "self_consistency"],
    "scaffold": ["self_consistency", "motif"],
    "ss_cogen": ["self_consistency", "diversity", "novelty"],
}


def _produced_by_a_rule(path):
    """True when some rule included so far writes exactly `path` (stages not built yet are
    skipped instead of breaking the DAG)."""
    return any(str(o) == path for r in workflow.rules for o in r.output)


def eval_samples(task):
    return res("generate", task, "samples.parquet")


# Tasks evaluated: those configured whose samples table some generate rule produces.
EVAL_TASKS = [t for t in EVAL.get("tasks", []) if _produced_by_a_rule(eval_samples(t)) and lm_serves(t)]


# Novelty scatters over the references: `evaluate.novelty.parts` jobs (default: one per chain
# shard), merged by evaluate_novelty.
EVAL_NOVELTY_PARTS = int(
    EVAL.get("novelty", {}).get("parts") or N_SHARDS
)


def eval_novelty_parts(wildcards):
    return [
        res("evaluate", wildcards.task, "novelty", f"part-{k:05d}-of-{EVAL_NOVELTY_PARTS:05d}.parquet")
        for k in range(EVAL_NOVELTY_PARTS)
    ]


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
    return [res("evaluate", task, f"{m}.parquet") for m in EVAL_TASK_METRICS[task]]


def report_training_inputs():
    """Training metrics tables that some rule writes (a stage not built yet is left out); a
    model taken from a release (config `released`) has no training here to plot."""
    wanted = {}
    if not RELEASED_TOKENIZER:
        wanted["tokenizer"] = res("tokenizer", "metrics.parquet")
    if not RELEASED_LM:
        wanted["lm"] = res("lm", "metrics.parquet")
    return {k: p for k, p in wanted.items() if _produced_by_a_rule(p)}
