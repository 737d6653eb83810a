# The study: config.yaml -> runs -> Parquet tables -> figures (E0-E4). See README.md.
from snakemake.utils import min_version, validate

min_version("9.0")


# A study named with --configfile replaces config.yaml: snakemake would deep-merge the two, and keys of the
# default study (its epochs, its imp_rate) would leak into every other study.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


validate(config, "sparsenet/schemas/config.schema.yaml")


# the report's first page: the four questions answered (results/answers.rst, written by rule summary)
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analyses.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        tables=TABLES,
        figures=FIGURES,
        summary="results/summary.md",
