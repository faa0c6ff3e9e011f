# DPLM-2 workflow: raw structures -> chains -> structure tokenizer -> token shards -> LM ->
# generation -> evaluation -> report.  `snakemake --cores all` runs the demo (config.yaml);
# `snakemake --configfile config/paper.yaml --profile workflow/profiles/slurm` the paper run.

from snakemake.utils import min_version, validate

min_version("9.0")


def _check_yaml(path):
    """A YAML syntax error names the file, line and column (Snakemake's own message names
    neither). Files given with --configfile are read by Snakemake before this file runs."""
    import yaml
    from snakemake.exceptions import WorkflowError

    try:
        with open(path, encoding="utf-8") as fh:
            yaml.safe_load(fh)
    except FileNotFoundError:
        return
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise WorkflowError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})")


_check_yaml("config.yaml")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


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
