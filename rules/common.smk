# Helpers shared by the rules: paths derived from the validated config, and the config sections
# each `equihand` call receives on its command line (so the command is one a user can type, and
# Snakemake reruns a step exactly when its own section of the config changes).
import json
import os
import re
import shlex

from snakemake.exceptions import WorkflowError

DATA_DIR = config["data_dir"]
RESULTS = config["results_dir"]


def cli_config(*sections):
    """`--set section={...}` arguments carrying these validated config sections to the CLI."""
    keys = ("progress", *sections)
    return " ".join(
        "--set " + shlex.quote(f"{key}={json.dumps(config[key], sort_keys=True)}")
        for key in keys
    )


def raw_dataset(dataset):
    return f"{DATA_DIR}/{dataset}"


def prepared_cache(dataset):
    return f"{RESULTS}/prepared/{dataset}"


wildcard_constraints:
    dataset="synth|freihand",


STUDY = config["study"]
CACHE = prepared_cache(config["dataset"])


def all_cores():
    """The cores given to Snakemake (1 where none are, e.g. under --report or --lint)."""
    try:
        return workflow.cores or 1
    except WorkflowError:  # raised when no --cores was given
        return 1


def job_threads(rule_name):
    """Threads of a training rule from study.resources (0 = all cores given to Snakemake)."""
    return STUDY["resources"][rule_name]["threads"] or all_cores()


def job_resource(rule_name, key):
    return STUDY["resources"][rule_name][key]


def run_dir(step, **fields):
    """A run folder of `step` (equihand.vocabulary.RUN_FOLDERS) below results_dir: of one run
    given its fields, else the pattern whose fields are the rule's wildcards."""
    return f"{RESULTS}/{vocabulary.run_folder(step, **fields)}"


def run_file(step, name, **fields):
    """File `name` in a run folder of `step` (see run_dir)."""
    return f"{run_dir(step, **fields)}/{name}"


def evaluate_dir(objective, backbone, fraction, seed):
    return run_dir(
        "evaluate", objective=objective, backbone=backbone, fraction=fraction, seed=seed
    )


def finetune_input(wildcards):
    """The prepared cache, plus the pretrained encoder unless the objective is `none`."""
    inputs = {"cache": CACHE}
    if wildcards.objective != vocabulary.NO_PRETRAINING:
        w = wildcards
        inputs["pretrained"] = run_file(
            "pretrain",
            "model.pt",
            objective=w.objective,
            backbone=w.backbone,
            seed=w.seed,
        )
    return inputs


def output_folder(wildcards, output):
    """The folder of a rule's first output (the run folder the CLI writes into)."""
    return os.path.dirname(output[0])


def pretrained_arg(wildcards, input):
    return input.get("pretrained", "none")


def all_evaluations(*names):
    """Files `names` (default metrics.json) of every evaluation in the study grid."""
    return [
        f"{evaluate_dir(o, b, f, s)}/{name}"
        for o in STUDY["objectives"]
        for b in STUDY["backbones"]
        for f in STUDY["label_fractions"]
        for s in STUDY["seeds"]
        for name in names or ("metrics.json",)
    ]


def all_training_metrics():
    """metrics.csv of every finetuning run and of every pretraining run it starts from."""
    grid = [
        (o, b, s)
        for o in STUDY["objectives"]
        for b in STUDY["backbones"]
        for s in STUDY["seeds"]
    ]
    finetune = [
        run_file("finetune", "metrics.csv", objective=o, backbone=b, fraction=f, seed=s)
        for o, b, s in grid
        for f in STUDY["label_fractions"]
    ]
    pretrain = [
        run_file("pretrain", "metrics.csv", objective=o, backbone=b, seed=s)
        for o, b, s in grid
        if o != vocabulary.NO_PRETRAINING
    ]
    return finetune + pretrain


def probe_encoders():
    """The probe's encoders: random init, supervised (the `none` runs), every pretrained one."""
    return vocabulary.probe_encoders(STUDY["objectives"])


def probe_input(wildcards):
    """The probe sets, plus the encoder's checkpoint (none for random init). The supervised
    encoder is the `none` run finetuned on the largest label fraction."""
    w = wildcards
    inputs = {"data": rules.probe_data.output.meta}
    if w.encoder == vocabulary.SUPERVISED_ENCODER:
        inputs["checkpoint"] = run_file(
            "finetune",
            "model.pt",
            objective=vocabulary.NO_PRETRAINING,
            backbone=w.backbone,
            fraction=max(STUDY["label_fractions"]),
            seed=w.seed,
        )
    elif w.encoder != vocabulary.RANDOM_ENCODER:
        inputs["checkpoint"] = run_file(
            "pretrain",
            "model.pt",
            objective=w.encoder,
            backbone=w.backbone,
            seed=w.seed,
        )
    return inputs


def all_probes():
    return [
        run_file("probe", "probe.csv", encoder=e, backbone=b, seed=s)
        for e in probe_encoders()
        for b in STUDY["backbones"]
        for s in STUDY["seeds"]
    ]


def part_aware_outputs():
    """The part-aware table and figure the report reads, when the probe is enabled."""
    if not config["probe"]["enabled"]:
        return {}
    return {
        "part_aware_table": f"{RESULTS}/tables/part_aware.csv",
        "part_aware_claims": f"{RESULTS}/tables/part_aware_claims.csv",
        "part_aware_figure": f"{RESULTS}/figures/part_aware.png",
    }


def part_aware_arg(wildcards, input):
    """`--part-aware TABLE FIGURE` for `equihand report` when the probe is enabled."""
    if "part_aware_table" not in input.keys():
        return ""
    table = input.part_aware_table.removesuffix(".csv")
    return f"--part-aware {table} {input.part_aware_figure}"


# the figures `equihand figures` writes (captions in report/)
FIGURE_NAMES = list(vocabulary.FIGURES)


def one_of(names):
    """A wildcard constraint matching exactly these names."""
    return "|".join(re.escape(name) for name in names)


wildcard_constraints:
    objective=one_of(vocabulary.study_objectives()),
    encoder=one_of(vocabulary.encoders()),
    backbone="resnet[0-9]+",
    seed="[0-9]+",
    fraction="[0-9.]+",
