# Shared helpers of the rule files (output folder, code-version params, JSON params).
import hashlib
import json
import os
import shlex
import signal
from pathlib import Path

from snakemake.exceptions import WorkflowError


# --- jobs end with Snakemake --------------------------------------------------------------------
# Every job learns the Snakemake process that started it ($PPID of the job's `bash -c`): the
# `dplm2` CLI stops when that process is gone (dplm2/lifeline.py), so a killed Snakemake leaves
# no orphaned training writing into results/. The prefix keeps Snakemake's default strict mode.
shell.prefix("set -euo pipefail; export DPLM2_STOP_WITH_PID=$PPID; ")


def _stop_jobs_then_interrupt(signum, frame):
    """SIGINT sent to Snakemake alone (`kill -INT`, a batch system; Ctrl-C reaches the whole
    process group anyway): Snakemake would wait for running jobs to finish, so a training runs
    to its end and its outputs are then flagged incomplete. Stop them first (SIGTERM: a
    training keeps its last checkpoint), then interrupt Snakemake as usual."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            child.terminate()
        except psutil.Error:
            pass
    raise KeyboardInterrupt


try:
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when ignored
        signal.signal(signal.SIGINT, _stop_jobs_then_interrupt)
except ValueError:  # not the main thread (Snakemake's API used from a thread): leave it
    pass


# The package is imported while planning (standard library, PyYAML and jsonschema only): from the
# environment, or from src/ when Snakemake runs from an environment without it installed.
try:
    import dplm2
except ImportError:
    import sys

    sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from dplm2.config import apply_schema_defaults, schema_node
from dplm2.evaluate.config import TASK_METRICS
from dplm2.lm.objective import BIT_REFUSED_TASKS, config_objective, source_objective

# Defaults of every key, also nested and behind the stage schemas' `$ref`s (Snakemake's `validate`
# sets them only in the file it is given): the package's schemas (src/dplm2/schemas) are the one
# place that holds them, and the CLIs fill the same ones.
apply_schema_defaults(config)

RESULTS = Path(config["results"])
SRC = Path(workflow.basedir) / "src" / "dplm2"


def res(*parts):
    """Path under the results folder (config key `results`)."""
    return str(RESULTS.joinpath(*parts))


# The chain and token shards (config process.n_shards), named once for every stage.
N_SHARDS = int(config["process"]["n_shards"])
SHARDS = [f"{i:05d}-of-{N_SHARDS:05d}" for i in range(N_SHARDS)]
CHAIN_SHARDS = [res("chains", f"chains-{s}.parquet") for s in SHARDS]
TOKEN_SHARDS = [res("tokens", f"tokens-{s}.parquet") for s in SHARDS]

# The generation tasks (the generate schema's list), and the metric tables each evaluated task
# gets (dplm2.evaluate.config.TASK_METRICS): the {task} and {metric} wildcards take these values.
GENERATE_TASKS = schema_node("generate.tasks")["items"]["enum"]
EVALUATE_METRICS = sorted({m for metrics in TASK_METRICS.values() for m in metrics})


wildcard_constraints:
    task="|".join(GENERATE_TASKS),
    metric="|".join(EVALUATE_METRICS),


def code_version(*packages):
    """Hash of the package sources a rule runs, so editing that code reruns the rule
    (Snakemake tracks params, not imported modules). Narrow on purpose: editing the
    evaluation code never retrains a model."""
    h = hashlib.sha256()
    for pkg in ("io", "config.py", "structure", "train") + packages:
        p = SRC / pkg
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            if f.exists():
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def input_flags(input, names):
    """``--<name> path ...`` (``_`` in a name becomes ``-``, paths quoted) for the named inputs
    of a job that its command takes as flags; names the job does not have are left out."""
    flags = []
    for name in names:
        if name in input.keys():
            paths = input[name]
            flags.append(shlex.join([f"--{name.replace('_', '-')}",
                                     *([paths] if isinstance(paths, str) else paths)]))
    return " ".join(flags)


def section(*keys):
    """JSON of one config section, passed to `dplm2 ... --params`; params are narrow so only
    changing the keys a rule uses reruns it."""
    node = config
    for k in keys:
        node = node[k]
    return json.dumps(node, sort_keys=True)


# --- which models the consumers read (config section `released`) -------------------------------
# The one place that picks the LM and tokenizer folders: null = the models trained here
# (train_lm -> results/lm/model, train_tokenizer -> results/tokenizer); a released checkpoint =
# its conversion by import_released_lm / import_released_tokenizer into results/released/.
# tokenize, generate, evaluate_refold and embed read only these, so with a released model the
# matching training rule is not in their DAG (the training rules still write their own folders).
RELEASED_LM = config["released"]["lm"] or None
RELEASED_TOKENIZER = config["released"]["tokenizer"] or None

LM_DIR = res("released", "lm") if RELEASED_LM else res("lm", "model")
TOKENIZER_DIR = res("released", "tokenizer") if RELEASED_TOKENIZER else res("tokenizer")

# The files a consumer depends on (named inputs; `**LM_FILES` / `**TOKENIZER_FILES`). A rule
# passes the folder on as `os.path.dirname(input.lm_weights)` / `...(input.tok_weights)`.
LM_FILES = dict(
    lm_weights=os.path.join(LM_DIR, "model.safetensors"),
    lm_config=os.path.join(LM_DIR, "config.json"),
)
TOKENIZER_FILES = dict(
    tok_weights=os.path.join(TOKENIZER_DIR, "model.safetensors"),
    tok_config=os.path.join(TOKENIZER_DIR, "config.json"),
)


# --- what the LM can serve: a DPLM-2 Bit model refuses some generation tasks -----------------
# Decided while planning from the LM's config.json (dplm2.lm.objective, standard library only):
# the released source (folder, or a hub id already in the local cache; otherwise its import,
# once done) or, for the LM trained here, config lm.objective.
def _lm_objective():
    if not RELEASED_LM:
        return config["lm"]["objective"]
    found = source_objective(RELEASED_LM)
    imported = Path(LM_DIR) / "config.json"
    if found is None and imported.is_file():
        found = config_objective(json.loads(imported.read_text()))
    return found or "index"  # unknown until imported: a bit model then fails at run time


LM_OBJECTIVE = _lm_objective()


def lm_serves(task):
    """False for a generation task the workflow's LM cannot run (a bit model's refusals)."""
    return not (LM_OBJECTIVE == "bit" and task in BIT_REFUSED_TASKS)


def lm_refusal(wildcards):
    """Input function of the generate rules: a clear planning error when the LM is a bit model
    that refuses the task (only evaluated when some target needs that task)."""
    if not lm_serves(wildcards.task):
        raise WorkflowError(
            f"generate {wildcards.task}: the LM ({RELEASED_LM or 'lm.objective: bit'}) is a DPLM-2 "
            f"Bit model, which cannot run {wildcards.task}: {BIT_REFUSED_TASKS[wildcards.task]}. "
            f"Remove {wildcards.task} from generate.tasks / evaluate.tasks or use a DPLM-2 (index) model."
        )
    return []


def released_source_files(source, names):
    """Inputs of an import rule: the named files of a local source folder (so replacing them
    reruns the import); nothing for a hub id (its `@revision` is in the rule's params)."""
    if not source or not os.path.isdir(source):
        return []
    return [str(Path(source) / n) for n in names if (Path(source) / n).is_file()]


def all_targets():
    """Final products of every stage (each rule file defines its <STAGE>_TARGETS list)."""
    return (
        DOWNLOAD_TARGETS
        + PROCESS_TARGETS
        + TOKENIZER_TARGETS
        + LM_TARGETS
        + GENERATE_TARGETS
        + EVALUATE_TARGETS
        + EMBED_TARGETS
        + REPORT_TARGETS
    )


# --- local sources (config section `local`, workflow/rules/process.smk) -------------------------
LOCAL_SOURCES = config["local"]


def local_files(wildcards=None):
    """Every non-hidden file under the local sources' paths (structure or not: the manifest
    lists the others as ignored); relative paths are relative to the workflow folder."""
    import glob as _glob

    found = set()
    for body in LOCAL_SOURCES.values():
        for item in body["paths"]:
            if any(ch in item for ch in "*?["):
                found.update(p for p in _glob.glob(item, recursive=True) if os.path.isfile(p))
            elif os.path.isdir(item):
                for root, dirs, files in os.walk(item):
                    dirs[:] = [d for d in dirs if not d.startswith(".")]
                    found.update(os.path.join(root, f) for f in files if not f.startswith("."))
            elif os.path.isfile(item):
                found.add(item)
    return sorted(found)


def parse_manifests(wildcards=None):
    out = {
        "pdb": res("download", "pdb_manifest.parquet"),
        "afdb": res("download", "afdb_manifest.parquet"),
    }
    if LOCAL_SOURCES:
        out["local"] = res("process", "local_manifest.parquet")
    return out
