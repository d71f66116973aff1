# Helpers shared by the rules: paths derived from the validated config and the study's vocabulary
# (equihand.vocabulary: objectives, run folders, figures), each compute rule's threads and
# resources, and the config sections each `equihand` call receives on its command line (so the
# command is one a user can type, and Snakemake reruns a step exactly when its own section of the
# config changes).
import json
import os
import re
import shlex

from snakemake.exceptions import WorkflowError

DATA_DIR = config["data_dir"]
RESULTS = config["results_dir"]
STUDY = config["study"]


def cli_config(*sections):
    """`--set section={...}` arguments carrying these validated config sections to the CLI."""
    keys = ("progress", *sections)
    return " ".join(
        "--set " + shlex.quote(f"{key}={json.dumps(config[key], sort_keys=True)}")
        for key in keys
    )


# --- paths ---------------------------------------------------------------------------------------


def raw_dataset(dataset):
    return f"{DATA_DIR}/{dataset}"


def prepared_cache(dataset):
    return f"{RESULTS}/prepared/{dataset}"


CACHE = prepared_cache(config["dataset"])
TABLES_DIR = f"{RESULTS}/tables"
FIGURES_DIR = f"{RESULTS}/figures"
# the figures `equihand figures` writes (captions in report/)
FIGURE_NAMES = list(vocabulary.FIGURES)


def run_dir(step, **fields):
    """A run folder of `step` (equihand.vocabulary.RUN_FOLDERS) below results_dir: of one run
    given its fields, else the pattern whose fields are the rule's wildcards."""
    return f"{RESULTS}/{vocabulary.run_folder(step, **fields)}"


def run_file(step, name, **fields):
    """File `name` in a run folder of `step` (see run_dir)."""
    return f"{run_dir(step, **fields)}/{name}"


def run_log(step):
    """The log of a job of `step`, named like its run folder."""
    return f"logs/{vocabulary.run_folder(step)}.log"


def run_benchmark(step):
    """The timings of a job of `step`, named like its run folder."""
    return f"benchmarks/{vocabulary.run_folder(step)}.tsv"


# --- threads and resources of the compute rules ---------------------------------------------------


def all_cores():
    """The cores given to Snakemake (1 where none are, e.g. under --report or --lint)."""
    try:
        return workflow.cores or 1
    except WorkflowError:  # raised when no --cores was given
        return 1


def job_threads(rule_name):
    """Threads of a compute rule from study.resources (0 = all cores given to Snakemake)."""
    return STUDY["resources"][rule_name]["threads"] or all_cores()


def job_resources(rule_name):
    """Memory, wall time and GPUs of a compute rule from study.resources; the GPU model and the
    CPUs per GPU are unset (None) when empty/0: any GPU model, and --cpus-per-task=threads. A
    data-parallel job (tasks or nodes above 1) adds what the SLURM executor needs for it.
    """
    job = STUDY["resources"][rule_name]
    return {
        "mem_mb": job["mem_mb"],
        "runtime": job["runtime"],
        "gpu": job["gpu"],
        "gpu_model": job["gpu_model"] or None,
        "cpus_per_gpu": job["cpus_per_gpu"] or None,
        **rank_resources(rule_name),
    }


DATA_PARALLEL_RULES = ("pretrain", "finetune")


def rank_resources(rule_name):
    """study.resources.<rule>.tasks and .nodes as snakemake-executor-plugin-slurm reads them:
    nothing for one task on one node (the job stays as it always was); else `mpi: srun`, so
    that the plugin runs the rule's shell once in the allocation, which starts the ranks with
    srun itself (`launcher`), `tasks` (sbatch --ntasks), `nodes` (--nodes) and, for a GPU job,
    `tasks_per_gpu: 1` (--ntasks-per-gpu; the plugin would otherwise use `tasks` there).
    """
    job = STUDY["resources"][rule_name]
    tasks, nodes = job["tasks"], job["nodes"]
    if tasks == 1 and nodes == 1:
        return {}
    where = f"study.resources.{rule_name}"
    if rule_name not in DATA_PARALLEL_RULES:
        raise WorkflowError(
            f"{where}: tasks {tasks}, nodes {nodes}: only pretrain and finetune run on several "
            "ranks; set tasks: 1 and nodes: 1"
        )
    if tasks % nodes:
        raise WorkflowError(f"{where}.tasks {tasks} is not a multiple of nodes {nodes}")
    if job["gpu"] not in (0, tasks):
        raise WorkflowError(
            f"{where}.gpu {job['gpu']} must be 0 or equal tasks {tasks} (one GPU per rank)"
        )
    resources = {"mpi": "srun", "tasks": tasks, "nodes": nodes}
    if job["gpu"]:
        resources["tasks_per_gpu"] = 1
    return resources


def launcher(rule_name):
    """What starts a training job's ranks, put before its `equihand` command: nothing for one
    task; else srun with one process per task (`threads` or cpus_per_gpu CPUs and one GPU each),
    the job taken down when a rank fails (--kill-on-bad-exit). equihand reads each rank from
    SLURM's variables (equihand.train.launch).
    """
    job = STUDY["resources"][rule_name]
    if not rank_resources(rule_name):
        return ""
    cpus = job["cpus_per_gpu"] or job_threads(rule_name)
    gpus = " --gpus-per-task=1" if job["gpu"] else ""
    return (
        f"srun --ntasks={job['tasks']} --nodes={job['nodes']} --cpus-per-task={cpus}{gpus}"
        " --kill-on-bad-exit=1 "
    )


# --- the study grid ----------------------------------------------------------------------------


def all_evaluations():
    """metrics.json of every evaluation in the study grid."""
    return [
        run_file(
            "evaluate", "metrics.json", objective=o, backbone=b, fraction=f, seed=s
        )
        for o in STUDY["objectives"]
        for b in STUDY["backbones"]
        for f in STUDY["label_fractions"]
        for s in vocabulary.seeds_at(STUDY, f)
    ]


def probe_encoders():
    """The probe's encoders: random init, supervised (the `none` runs), every pretrained one."""
    return vocabulary.probe_encoders(STUDY["objectives"])


def all_probes():
    return [
        run_file("probe", "probe.csv", encoder=e, backbone=b, seed=s)
        for e in probe_encoders()
        for b in STUDY["backbones"]
        for s in STUDY["seeds"]
    ]


# --- inputs that depend on the wildcards or the config ---------------------------------------------


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


def part_aware_inputs():
    """The part-aware table and figure the report reads, when the probe is enabled (the claims
    are read beside the table: `--part-aware TABLE FIGURE`)."""
    if not config["probe"]["enabled"]:
        return {}
    return {
        "part_aware_table": rules.part_aware.output.csv,
        "part_aware_figure": rules.part_aware.output.png,
    }


# --- params: command-line values derived from a rule's files ---------------------------------------


def output_folder(wildcards, output):
    """The folder of a rule's first output (the run folder the CLI writes into)."""
    return os.path.dirname(output[0])


def input_folder(key):
    """The folder of a rule's input `key` (its first file when it names several)."""

    def folder(wildcards, input):
        files = input[key]
        return os.path.dirname(files if isinstance(files, str) else files[0])

    return folder


def output_stem(key):
    """A rule's output `key` without its suffix (the CLI adds the suffixes it writes)."""

    def stem(wildcards, output):
        return os.path.splitext(output[key])[0]

    return stem


def pretrained_arg(wildcards, input):
    """`--pretrained`: the pretraining run's model.pt, or none (finetuning from scratch)."""
    return input.get("pretrained", "none")


def checkpoint_arg(wildcards, input):
    """`--checkpoint`: the encoder's model.pt, or random (an untrained encoder)."""
    return input.get("checkpoint", "random")


def part_aware_arg(wildcards, input):
    """`--part-aware TABLE FIGURE` for `equihand report` when the probe is enabled."""
    if "part_aware_table" not in input.keys():
        return ""
    table = input.part_aware_table.removesuffix(".csv")
    return f"--part-aware {table} {input.part_aware_figure}"


def one_of(names):
    """A wildcard constraint matching exactly these names."""
    return "|".join(re.escape(name) for name in names)


wildcard_constraints:
    dataset="synth|freihand",
    objective=one_of(vocabulary.study_objectives()),
    encoder=one_of(vocabulary.encoders()),
    backbone=one_of(vocabulary.BACKBONES),
    seed="[0-9]+",
    fraction="[0-9.]+",
