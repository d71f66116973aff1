# equihand: which self-supervised pretraining objective gives the best encoder for 3D hand pose?
# This file only wires steps together; every rule is one `equihand <step>` call (see rules/).
import os
import sys

from snakemake.utils import min_version

min_version("9.0")

# this checkout's package: the study's vocabulary (equihand.vocabulary) and its config schema
if f"{workflow.basedir}/src" not in sys.path:
    sys.path.insert(0, f"{workflow.basedir}/src")
from equihand import vocabulary
from equihand.config import validate as validate_config


envvars:
    "PATH",


# every job calls `equihand`, installed beside the Python running Snakemake (a venv's bin/): put
# it first on the jobs' PATH, so `.venv/bin/snakemake` works without an activated venv
os.environ["PATH"] = os.pathsep.join(
    [os.path.dirname(sys.executable), os.environ["PATH"]]
)


configfile: f"{workflow.basedir}/config/default.yaml"


report: "report/workflow.rst"


# the schema (src/equihand/schema.yaml, objectives from the vocabulary), defaults filled in
validate_config(config, "given to Snakemake")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/probe.smk"
include: "rules/analysis.smk"


rule all:
    default_target: True
    input:
        rules.aggregate.output,
        rules.report.output,
