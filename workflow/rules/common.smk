# Shared helpers of the rule files (output folder, code-version params, JSON params).
import copy
import hashlib
import json
from pathlib import Path

import yaml


def apply_schema_defaults(cfg, schema_path):
    """Fill schema defaults into ``cfg`` in place, following ``$ref``s into the stage schemas
    (Snakemake's `validate` sets defaults only in the schema file it is given, not behind a
    `$ref`). Objects missing from the config start empty so their own defaults apply."""
    stack = [(yaml.safe_load(Path(schema_path).read_text()), cfg, Path(schema_path).parent)]
    while stack:
        schema, node, base = stack.pop()
        if "$ref" in schema:
            ref = base / schema["$ref"]
            schema, base = yaml.safe_load(ref.read_text()), ref.parent
        for key, sub in schema.get("properties", {}).items():
            if key not in node:
                if "default" in sub:
                    node[key] = copy.deepcopy(sub["default"])
                elif sub.get("type") == "object" or "$ref" in sub:
                    node[key] = {}
            if isinstance(node.get(key), dict):
                stack.append((sub, node[key], base))


apply_schema_defaults(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")

RESULTS = Path(config.get("results", "results"))
SRC = Path(workflow.basedir) / "src" / "dplm2"


def res(*parts):
    """Path under the results folder (config key `results`)."""
    return str(RESULTS.joinpath(*parts))


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


def section(*keys):
    """JSON of one config section, passed to `dplm2 ... --params`; params are narrow so only
    changing the keys a rule uses reruns it."""
    node = config
    for k in keys:
        node = node[k]
    return json.dumps(node, sort_keys=True)


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
