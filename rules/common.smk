# Helpers shared by the rules: paths derived from the validated config, and the config sections
# each `equihand` call receives on its command line (so the command is one a user can type, and
# Snakemake reruns a step exactly when its own section of the config changes).
import json
import shlex

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
