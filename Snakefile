# DPLM-2 workflow: raw structures -> chains -> structure tokenizer -> token shards -> LM ->
# generation -> evaluation -> report.  `snakemake --cores all` runs the demo (config.yaml);
# `snakemake --configfile config/paper.yaml --profile workflow/profiles/slurm` the paper run.

from snakemake.utils import min_version, validate

min_version("9.0")


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
