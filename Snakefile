# equihand: which self-supervised pretraining objective gives the best encoder for 3D hand pose?
# This file only wires steps together; every rule is one `equihand <step>` call (see rules/).
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: f"{workflow.basedir}/config/default.yaml"


report: "report/workflow.rst"


validate(config, f"{workflow.basedir}/src/equihand/schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/probe.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        rules.aggregate.output,
        rules.report.output,
