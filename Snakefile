# DPLM-2 workflow: raw structures -> chains -> structure tokenizer -> token shards -> LM ->
# generation -> evaluation -> report.  `snakemake --cores all` runs the demo (config.yaml);
# `snakemake --configfile config/paper.yaml --profile workflow/profiles/slurm` the paper run.

from snakemake.utils import min_version, validate

min_version("9.0")


# A YAML syntax error in config.yaml names the file, line and column (Snakemake's own message
# names neither). Files given with --configfile are read by Snakemake before this file runs.
import yaml as _yaml
from snakemake.exceptions import WorkflowError as _WorkflowError

try:
    with open("config.yaml", encoding="utf-8") as _fh:
        _yaml.safe_load(_fh)
except FileNotFoundError:
    pass
except _yaml.YAMLError as _exc:
    _mark = getattr(_exc, "problem_mark", None)
    _where = f"config.yaml:{_mark.line + 1}:{_mark.column + 1}" if _mark else "config.yaml"
    raise _WorkflowError(f"{_where}: not valid YAML ({getattr(_exc, 'problem', None) or _exc})")


configfile: "config.yaml"


validate(config, "src/dplm2/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/process.smk"
include: "workflow/rules/tokenizer.smk"
include: "workflow/rules/lm.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
